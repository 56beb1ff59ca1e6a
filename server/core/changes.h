// Admin changes as data, and the one place that says what each makes of
// the stored record of its upstream: the control plane applies them to its
// state, a dry run applies them to nothing.
//
//   Change change = PutTarget{"users", TargetPatch{.address = "10.0.0.1:8080"}};
//   absl::Status ok = PrepareChange(change, limits);        // stateless checks
//   absl::StatusOr<Mutation> m = ApplyChange(change, current, count, limits);
//
// Errors name the request field they are about (`target.address: ...`) and
// are the contract's codes: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
// RESOURCE_EXHAUSTED for a limit.
#ifndef PICKER_SERVER_CORE_CHANGES_H_
#define PICKER_SERVER_CORE_CHANGES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/config.h"
#include "server/core/record.h"

namespace picker::core {

// A bound on what admin writes may store, and the name the operator knows
// it by (the program sets a command-line flag's), which errors quote.
struct Limit {
  uint64_t value;
  std::string name;
};

struct Limits {
  Limit upstreams{100000, "max_upstreams"};
  Limit targets_per_upstream{100000, "max_targets_per_upstream"};
  Limit hash_policies{16, "max_hash_policies"};
};

// PutTarget's input: fields left out keep their value on an existing target.
struct TargetPatch {
  std::string address;                           // Any spelling; canonicalised.
  std::optional<uint32_t> weight;                // Unset keeps (or defaults to 100).
  std::string zone;                              // Empty keeps.
  std::string hash_key;                          // Empty keeps.
  std::optional<std::vector<std::string>> tags;  // Unset keeps.
};

struct CreateUpstream {
  UpstreamConfig config;
};
// Replaces the configuration, or with `update_mask` only the fields it
// names (update_mask.h); the targets stay.
struct UpdateUpstream {
  UpstreamConfig config;
  std::optional<std::vector<std::string>> update_mask;
};
struct DeleteUpstream {
  std::string name;
};
struct PutTarget {
  std::string upstream;
  TargetPatch patch;
};
struct DeleteTarget {
  std::string upstream;
  std::string address;
};
// The whole target set: targets already present keep their place. An empty
// set is refused unless `allow_empty`.
struct ReplaceTargets {
  std::string upstream;
  std::vector<TargetConfig> targets;
  bool allow_empty = false;
};
struct SetTargetHealth {
  std::string upstream;
  std::string address;
  HealthOverride health_override = HealthOverride::kNone;
};

using Change = std::variant<CreateUpstream, UpdateUpstream, DeleteUpstream, PutTarget, DeleteTarget,
                            ReplaceTargets, SetTargetHealth>;

// The upstream a change is about.
const std::string& UpstreamOf(const Change& change);

// The checks that need no stored state: field values, addresses (which it
// canonicalises in place), limits on sizes. A change that passes may still
// fail in ApplyChange.
absl::Status PrepareChange(Change& change, const Limits& limits);

// What a prepared change does to its upstream's record.
struct Mutation {
  std::string name;
  std::optional<UpstreamRecord> record;  // Unset: the upstream is deleted.
};

// Applies a prepared change to `current`, the stored record of its upstream
// (null when there is none), given how many upstreams exist. The upstream
// and each target keep their created_at; updated_at becomes `now_unix_s`
// for those whose configuration the change alters.
absl::StatusOr<Mutation> ApplyChange(const Change& change, const UpstreamRecord* current,
                                     size_t upstream_count, const Limits& limits,
                                     int64_t now_unix_s);

// NOT_FOUND naming the upstream (or INVALID_ARGUMENT for an empty name),
// as every lookup by name answers it.
absl::Status UnknownUpstream(absl::string_view name);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_CHANGES_H_
