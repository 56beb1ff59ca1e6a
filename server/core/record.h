// What is stored about one upstream: its configuration and its targets with
// their operator overrides, in host-set order. A record is written whole.
//
//   UpstreamRecord record;
//   record.config.name = "users";
//   record.targets.push_back({TargetConfig{.address = "10.0.0.1:8080"}});
#ifndef PICKER_SERVER_CORE_RECORD_H_
#define PICKER_SERVER_CORE_RECORD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/config.h"

namespace picker::core {

// Operator override of a target's health (SetTargetHealth).
enum class HealthOverride : uint8_t { kNone, kHealthy, kUnhealthy };

// When an entity was created and its configuration last changed, in Unix
// seconds (Kong's created_at and updated_at); 0 when unknown (written
// before picker kept them).
struct Timestamps {
  int64_t created_at = 0;
  int64_t updated_at = 0;
  bool operator==(const Timestamps&) const = default;
};

struct StoredTarget {
  TargetConfig config;
  HealthOverride health_override = HealthOverride::kNone;
  Timestamps times;
  bool operator==(const StoredTarget&) const = default;
};

struct UpstreamRecord {
  UpstreamConfig config;
  std::vector<StoredTarget> targets;  // Host-set order.
  Timestamps times;
  bool operator==(const UpstreamRecord&) const = default;
};

// A record shared, immutable, by the store's history, its watchers and the
// control plane, so that a write copies it once.
using RecordPtr = std::shared_ptr<const UpstreamRecord>;

// A record as a store holds it: with the revision of the change that wrote
// it last (its mod revision, as etcd calls it).
struct RevisionedRecord {
  UpstreamRecord record;
  uint64_t mod_revision = 0;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_RECORD_H_
