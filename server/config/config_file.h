// The declarative configuration file (--config FILE, YAML).
//
// It declares upstreams and their targets. The load-balancer part has the
// shape of Kong Mesh's MeshLoadBalancingStrategy, targets the shape of
// Kong's declarative targets:
//
//   upstreams:
//     - name: example
//       loadBalancer:
//         type: RingHash
//         ringHash:
//           hashFunction: XXHash        # or XX_HASH, MurmurHash2, MURMUR_HASH_2
//           minRingSize: 1024
//           hashPolicies:
//             - type: Header
//               header: {name: x-user}
//               terminal: true
//       localityAwareness: {disabled: true}
//       targets:
//         - target: 10.0.0.1:8080
//           weight: 100
//
// The file maps to core types; the rules are core's (validate.h), and an
// error names the file, the line and the field as the file spells it. The
// whole file is checked before anything is applied: a bad file changes
// nothing. Durations take Go's syntax (500ms, 1.5s, 1m30s).
//
// Folder: server/config owns the file's format. It may use core/ only.
#ifndef PICKER_SERVER_CONFIG_CONFIG_FILE_H_
#define PICKER_SERVER_CONFIG_CONFIG_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/changes.h"
#include "server/core/config.h"
#include "server/core/snapshot_map.h"

namespace picker::config {

struct DeclaredUpstream {
  core::UpstreamConfig config;
  std::vector<core::TargetConfig> targets;  // Canonical addresses.
};

// Parses and validates a file.
absl::StatusOr<std::vector<DeclaredUpstream>> LoadConfigFile(const std::string& path);
// Same, from text; `source` names it in errors.
absl::StatusOr<std::vector<DeclaredUpstream>> ParseConfig(const std::string& text,
                                                          const std::string& source);

// The changes that make the published upstreams match the declarations: a
// declared upstream is created, or has its configuration and target set
// replaced (targets already present keep their counters and health).
// Upstreams the file does not mention are left as they are, and those that
// already match need no change, so applying a file twice changes nothing.
std::vector<core::Change> PlanConfig(const std::vector<DeclaredUpstream>& upstreams,
                                     const core::SnapshotMap& current);

// The same over a state given as declarations (`current`, as picker-cli
// reads it from the Admin API). With `prune`, the upstreams of `current`
// that `declared` does not name are deleted too (decK's sync).
std::vector<core::Change> PlanChanges(const std::vector<DeclaredUpstream>& declared,
                                      const std::vector<DeclaredUpstream>& current, bool prune);

// The file that declares `upstreams`, every field written with its
// effective value: ParseConfig of it gives `upstreams` back.
std::string WriteConfig(const std::vector<DeclaredUpstream>& upstreams);

}  // namespace picker::config

#endif  // PICKER_SERVER_CONFIG_CONFIG_FILE_H_
