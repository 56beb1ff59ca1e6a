#include "server/core/update_mask.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"

namespace picker::core {
namespace {

// One path of the mask and what it copies from the request. `member` is the
// load_balancer oneof member the path reaches into, if any.
struct MaskField {
  const char* path;
  std::optional<StrategyKind> member;
  void (*copy)(const UpstreamConfig& from, UpstreamConfig& to);
};

using K = StrategyKind;

void CopyRingHash(const UpstreamConfig& f, UpstreamConfig& t) {
  t.load_balancer.hash_function = f.load_balancer.hash_function;
  t.load_balancer.min_ring_size = f.load_balancer.min_ring_size;
  t.load_balancer.max_ring_size = f.load_balancer.max_ring_size;
  t.load_balancer.hash_policies = f.load_balancer.hash_policies;
  t.load_balancer.hash_balance_factor = f.load_balancer.hash_balance_factor;
}

void CopyMaglev(const UpstreamConfig& f, UpstreamConfig& t) {
  t.load_balancer.table_size = f.load_balancer.table_size;
  t.load_balancer.hash_policies = f.load_balancer.hash_policies;
  t.load_balancer.hash_balance_factor = f.load_balancer.hash_balance_factor;
}

// The fields' paths and copies. A strategy added to LoadBalancerConfig (or
// a field added anywhere) adds its paths here.
const MaskField kFields[] = {
    {"name", std::nullopt, [](const UpstreamConfig&, UpstreamConfig&) {}},
    {"load_balancer", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.load_balancer = f.load_balancer; }},
    {"load_balancer.round_robin", K::kRoundRobin, [](const UpstreamConfig&, UpstreamConfig&) {}},
    {"load_balancer.random", K::kRandom, [](const UpstreamConfig&, UpstreamConfig&) {}},
    {"load_balancer.least_request", K::kLeastRequest,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.choice_count = f.load_balancer.choice_count;
       t.load_balancer.active_request_bias = f.load_balancer.active_request_bias;
     }},
    {"load_balancer.least_request.choice_count", K::kLeastRequest,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.choice_count = f.load_balancer.choice_count;
     }},
    {"load_balancer.least_request.active_request_bias", K::kLeastRequest,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.active_request_bias = f.load_balancer.active_request_bias;
     }},
    {"load_balancer.ring_hash", K::kRingHash, CopyRingHash},
    {"load_balancer.ring_hash.hash_function", K::kRingHash,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.hash_function = f.load_balancer.hash_function;
     }},
    {"load_balancer.ring_hash.min_ring_size", K::kRingHash,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.min_ring_size = f.load_balancer.min_ring_size;
     }},
    {"load_balancer.ring_hash.max_ring_size", K::kRingHash,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.max_ring_size = f.load_balancer.max_ring_size;
     }},
    {"load_balancer.ring_hash.hash_policies", K::kRingHash,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.hash_policies = f.load_balancer.hash_policies;
     }},
    {"load_balancer.ring_hash.hash_balance_factor", K::kRingHash,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.hash_balance_factor = f.load_balancer.hash_balance_factor;
     }},
    {"load_balancer.maglev", K::kMaglev, CopyMaglev},
    {"load_balancer.maglev.table_size", K::kMaglev,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.table_size = f.load_balancer.table_size;
     }},
    {"load_balancer.maglev.hash_policies", K::kMaglev,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.hash_policies = f.load_balancer.hash_policies;
     }},
    {"load_balancer.maglev.hash_balance_factor", K::kMaglev,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.load_balancer.hash_balance_factor = f.load_balancer.hash_balance_factor;
     }},
    {"locality_awareness", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.locality_aware = f.locality_aware; }},
    {"locality_awareness.disabled", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.locality_aware = f.locality_aware; }},
    {"health_checks", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.passive = f.passive;
       t.active = f.active;
     }},
    {"health_checks.passive", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.passive = f.passive; }},
    {"health_checks.passive.consecutive_failures", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.passive.consecutive_failures = f.passive.consecutive_failures;
     }},
    {"health_checks.passive.base_ejection_time", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.passive.base_ejection_time = f.passive.base_ejection_time;
     }},
    {"health_checks.passive.max_ejection_time", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.passive.max_ejection_time = f.passive.max_ejection_time;
     }},
    {"health_checks.passive.max_ejection_percent", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.passive.max_ejection_percent = f.passive.max_ejection_percent;
     }},
    {"health_checks.active", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.active = f.active; }},
    {"health_checks.active.type", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.active.type = f.active.type; }},
    {"health_checks.active.http_path", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.active.http_path = f.active.http_path; }},
    {"health_checks.active.healthy_http_statuses", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.active.healthy_http_statuses = f.active.healthy_http_statuses;
     }},
    {"health_checks.active.interval", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.active.interval = f.active.interval; }},
    {"health_checks.active.timeout", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.active.timeout = f.active.timeout; }},
    {"health_checks.active.healthy_successes", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.active.healthy_successes = f.active.healthy_successes;
     }},
    {"health_checks.active.unhealthy_failures", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.active.unhealthy_failures = f.active.unhealthy_failures;
     }},
    {"panic_threshold_percent", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.panic_threshold_percent = f.panic_threshold_percent;
     }},
    {"lease_ttl", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.lease_ttl = f.lease_ttl; }},
    {"max_active_requests_per_target", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.max_active_requests_per_target = f.max_active_requests_per_target;
     }},
    {"max_active_requests", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) {
       t.max_active_requests = f.max_active_requests;
     }},
    {"client_configs", std::nullopt,
     [](const UpstreamConfig& f, UpstreamConfig& t) { t.client_configs = f.client_configs; }},
    {"tags", std::nullopt, [](const UpstreamConfig& f, UpstreamConfig& t) { t.tags = f.tags; }},
};

const MaskField* Find(const std::string& path) {
  for (const MaskField& field : kFields) {
    if (path == field.path) return &field;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<UpstreamConfig> MergeUpstreamConfig(const UpstreamConfig& stored,
                                                   const UpstreamConfig& requested,
                                                   const std::vector<std::string>& paths) {
  if (paths.empty()) return absl::InvalidArgumentError("update_mask.paths: is empty");
  if (std::find(paths.begin(), paths.end(), "*") != paths.end()) {
    if (paths.size() > 1) {
      return absl::InvalidArgumentError("update_mask.paths: \"*\" must be the only path");
    }
    return requested;
  }
  // Naming the oneof whole changes the strategy: its members' paths then
  // read from the request's strategy.
  const bool whole_load_balancer =
      std::find(paths.begin(), paths.end(), "load_balancer") != paths.end();
  UpstreamConfig merged = stored;
  for (size_t i = 0; i < paths.size(); ++i) {
    const MaskField* field = Find(paths[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("update_mask.paths[", i, "]: unknown field \"", paths[i], "\""));
    }
    if (field->member && !whole_load_balancer && *field->member != stored.load_balancer.kind) {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_mask.paths[", i, "]: \"", paths[i], "\" is not in the stored strategy (",
          StrategyName(stored.load_balancer.kind),
          "); name \"load_balancer\" in the mask to change the strategy"));
    }
  }
  // Whole blocks first, so that a path inside one takes precedence whatever
  // the order of the mask.
  std::vector<const MaskField*> ordered;
  for (const std::string& path : paths) ordered.push_back(Find(path));
  std::stable_sort(ordered.begin(), ordered.end(), [](const MaskField* a, const MaskField* b) {
    return std::string_view(a->path).size() < std::string_view(b->path).size();
  });
  for (const MaskField* field : ordered) field->copy(requested, merged);
  merged.name = stored.name;
  return merged;
}

std::vector<std::string> UpdateMaskPaths() {
  std::vector<std::string> out;
  for (const MaskField& field : kFields) out.emplace_back(field.path);
  return out;
}

}  // namespace picker::core
