// The declarative configuration file (--config FILE, YAML).
//
// It declares upstreams and their targets at start. The load-balancer part
// has the shape of Kong Mesh's MeshLoadBalancingStrategy, targets the shape of
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
// The whole file is checked before anything is applied: a bad file is an
// error naming the file, line and field, and changes nothing.
#ifndef PICKER_SERVER_CONFIG_CONFIG_FILE_H_
#define PICKER_SERVER_CONFIG_CONFIG_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/config.h"
#include "server/core/registry.h"

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

// Makes the registry match the declarations: a declared upstream is created,
// or has its configuration and target set replaced (targets already present
// keep their counters and health). Upstreams the file does not mention are
// left as they are.
absl::Status ApplyConfig(const std::vector<DeclaredUpstream>& upstreams, core::Registry& registry);

}  // namespace picker::config

#endif  // PICKER_SERVER_CONFIG_CONFIG_FILE_H_
