#include "server/core/validate.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace picker::core {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// Bounds on strings that have no natural limit, so that one request cannot
// make picker keep (and log) megabytes.
constexpr size_t kMaxHashPolicyNameLength = 256;
constexpr size_t kMaxPathLength = 1024;

// Field path of the strategy message that carries the options, under the
// load balancer at `load_balancer` ("upstream.load_balancer", or a
// per-client configuration's).
std::string StrategyField(absl::string_view load_balancer, StrategyKind kind) {
  return absl::StrCat(load_balancer, ".", StrategyName(kind));
}

absl::Status ValidateHashPolicies(const LoadBalancerConfig& lb, const std::string& field) {
  const std::string prefix = field + ".hash_policies";
  for (size_t i = 0; i < lb.hash_policies.size(); ++i) {
    const HashPolicy& policy = lb.hash_policies[i];
    const std::string field = absl::StrCat(prefix, "[", i, "]");
    // Names of headers, cookies, parameters and keys; Envoy caps header
    // names far below this.
    if (policy.name.size() > kMaxHashPolicyNameLength) {
      return Invalid(field, absl::StrCat("name must be at most ", kMaxHashPolicyNameLength,
                                         " characters, got ", policy.name.size()));
    }
    if (policy.cookie_path.size() > kMaxPathLength) {
      return Invalid(field + ".cookie.path",
                     absl::StrCat("must be at most ", kMaxPathLength, " characters"));
    }
    switch (policy.kind) {
      case HashPolicy::Kind::kHeader:
        if (policy.name.empty()) return Invalid(field + ".header.name", "is required");
        break;
      case HashPolicy::Kind::kCookie:
        if (policy.name.empty()) return Invalid(field + ".cookie.name", "is required");
        if (policy.cookie_ttl && policy.cookie_ttl->count() < 0)
          return Invalid(field + ".cookie.ttl", "must be >= 0");
        break;
      case HashPolicy::Kind::kQueryParameter:
        if (policy.name.empty()) return Invalid(field + ".query_parameter.name", "is required");
        break;
      case HashPolicy::Kind::kFilterState:
        if (policy.name.empty()) return Invalid(field + ".filter_state.key", "is required");
        break;
      case HashPolicy::Kind::kSourceIp:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSlowStart(const SlowStartConfig& slow_start, const std::string& strategy) {
  const std::string field = strategy + ".slow_start_config";
  if (slow_start.window.count() < 0) {
    return Invalid(field + ".slow_start_window", "must be >= 0 (0 turns slow start off)");
  }
  if (!std::isfinite(slow_start.aggression) || slow_start.aggression <= 0) {
    return Invalid(field + ".aggression",
                   absl::StrCat("must be a finite number > 0 (0 means the default 1.0), got ",
                                slow_start.aggression));
  }
  if (!std::isfinite(slow_start.min_weight_percent) || slow_start.min_weight_percent <= 0 ||
      slow_start.min_weight_percent > 100) {
    return Invalid(field + ".min_weight_percent",
                   absl::StrCat("must be above 0 and at most 100 (0 means the default 10), got ",
                                slow_start.min_weight_percent));
  }
  return absl::OkStatus();
}

// Stored records above the bound still load (their picks clamp to it).
absl::Status ValidateChoiceCount(const LoadBalancerConfig& lb, const std::string& strategy,
                                 Rules rules) {
  if (lb.choice_count < 2 || (rules == Rules::kNewWrite && lb.choice_count > kMaxChoiceCount)) {
    return Invalid(strategy + ".choice_count",
                   absl::StrCat("must be 2..", kMaxChoiceCount, " (0 means the default 2), got ",
                                lb.choice_count));
  }
  return absl::OkStatus();
}

absl::Status ValidatePeakEwma(const LoadBalancerConfig& lb, const std::string& field, Rules rules) {
  if (absl::Status s = ValidateChoiceCount(lb, field, rules); !s.ok()) return s;
  if (lb.decay_time.count() <= 0) {
    return Invalid(field + ".decay_time", "must be at least 1ms (0 means the default 10s)");
  }
  if (lb.failure_penalty.count() <= 0) {
    return Invalid(field + ".failure_penalty", "must be at least 1ms (0 means the default 1s)");
  }
  return absl::OkStatus();
}

absl::Status ValidateWeightedRoundRobin(const LoadBalancerConfig& lb, const std::string& field) {
  if (lb.blackout_period.count() < 0) {
    return Invalid(field + ".blackout_period", "must be >= 0 (0 turns the blackout off)");
  }
  if (lb.weight_expiration_period.count() <= 0) {
    return Invalid(field + ".weight_expiration_period",
                   "must be at least 1ms (0 means the default 3m)");
  }
  if (lb.weight_update_period < kMinWeightUpdatePeriod) {
    return Invalid(
        field + ".weight_update_period",
        absl::StrCat("must be at least ", kMinWeightUpdatePeriod.count(),
                     "ms (0 means the default 1s), got ", lb.weight_update_period.count(), "ms"));
  }
  if (!std::isfinite(lb.error_utilization_penalty) || lb.error_utilization_penalty < 0) {
    return Invalid(field + ".error_utilization_penalty", "must be a finite number >= 0");
  }
  return absl::OkStatus();
}

absl::Status ValidateLoadBalancer(const LoadBalancerConfig& lb, absl::string_view load_balancer,
                                  Rules rules) {
  const std::string field = StrategyField(load_balancer, lb.kind);
  switch (lb.kind) {
    case StrategyKind::kLeastRequest:
      if (absl::Status s = ValidateChoiceCount(lb, field, rules); !s.ok()) return s;
      if (!std::isfinite(lb.active_request_bias) || lb.active_request_bias < 0) {
        return Invalid(field + ".active_request_bias", "must be a finite number >= 0");
      }
      return ValidateSlowStart(lb.slow_start, field);
    case StrategyKind::kRoundRobin:
      return ValidateSlowStart(lb.slow_start, field);
    case StrategyKind::kPeakEwma:
      return ValidatePeakEwma(lb, field, rules);
    case StrategyKind::kWeightedRoundRobin:
      return ValidateWeightedRoundRobin(lb, field);
    case StrategyKind::kRingHash:
      if (lb.min_ring_size > kMaxRingSize) {
        return Invalid(field + ".min_ring_size",
                       absl::StrCat("must be at most ", kMaxRingSize, ", got ", lb.min_ring_size));
      }
      if (lb.max_ring_size > kMaxRingSize) {
        return Invalid(field + ".max_ring_size",
                       absl::StrCat("must be at most ", kMaxRingSize, ", got ", lb.max_ring_size));
      }
      if (lb.min_ring_size > lb.max_ring_size) {
        return Invalid(field + ".min_ring_size",
                       absl::StrCat("min_ring_size (", lb.min_ring_size, ") > max_ring_size (",
                                    lb.max_ring_size, ")"));
      }
      break;
    case StrategyKind::kMaglev:
      if (lb.table_size > kMaxMaglevTableSize) {
        return Invalid(field + ".table_size", absl::StrCat("must be at most ", kMaxMaglevTableSize,
                                                           ", got ", lb.table_size));
      }
      if (!IsPrime(lb.table_size)) {
        return Invalid(field + ".table_size",
                       absl::StrCat("must be a prime number, got ", lb.table_size));
      }
      break;
    case StrategyKind::kRandom:
      return absl::OkStatus();
  }
  if (lb.hash_balance_factor && *lb.hash_balance_factor < 100) {
    return Invalid(
        field + ".hash_balance_factor",
        absl::StrCat("must be at least 100 (percent) when set, got ", *lb.hash_balance_factor));
  }
  return ValidateHashPolicies(lb, field);
}

absl::Status ValidateClientSelector(const ClientSelector& client, const std::string& field) {
  if (client.service.empty() && client.tags.empty()) {
    return Invalid(field,
                   "needs a service or tags (the upstream's own fields are for every client)");
  }
  if (!client.service.empty()) {
    if (absl::Status s = ValidateUpstreamName(client.service, field + ".service"); !s.ok())
      return s;
  }
  for (size_t i = 0; i < client.tags.size(); ++i) {
    const auto& [key, value] = client.tags[i];
    if (key.empty() || key.size() > 256 || value.size() > 256) {
      return Invalid(absl::StrCat(field, ".tags"),
                     "keys must be 1 to 256 characters, values at most 256");
    }
    if (i > 0 && client.tags[i - 1].first >= key) {
      return Invalid(absl::StrCat(field, ".tags"), "keys must be sorted and unique");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateClientConfigs(const std::vector<ClientConfig>& configs, Rules rules) {
  if (configs.size() > kMaxClientConfigs) {
    return Invalid("upstream.client_configs",
                   absl::StrCat("at most ", kMaxClientConfigs, " entries, got ", configs.size()));
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    const std::string field = absl::StrCat("upstream.client_configs[", i, "]");
    if (absl::Status s = ValidateClientSelector(configs[i].client, field + ".client"); !s.ok()) {
      return s;
    }
    for (size_t j = 0; j < i; ++j) {
      if (configs[j].client == configs[i].client) {
        return Invalid(field + ".client", absl::StrCat("duplicates client_configs[", j, "]'s"));
      }
    }
    if (absl::Status s =
            ValidateLoadBalancer(configs[i].load_balancer, field + ".load_balancer", rules);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePositive(Millis value, absl::string_view field) {
  if (value.count() <= 0) return Invalid(field, "must be at least 1ms");
  return absl::OkStatus();
}

}  // namespace

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

absl::Status ValidateUpstreamName(absl::string_view name, absl::string_view field) {
  if (name.empty()) return Invalid(field, "is required");
  if (name.size() > 128) {
    return Invalid(field, absl::StrCat("must be at most 128 characters, got ", name.size()));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return Invalid(field, "may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateUpstreamConfig(const UpstreamConfig& config, Rules rules) {
  if (absl::Status s = ValidateUpstreamName(config.name, "upstream.name"); !s.ok()) return s;
  if (absl::Status s = ValidateLoadBalancer(config.load_balancer, "upstream.load_balancer", rules);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateClientConfigs(config.client_configs, rules); !s.ok()) return s;
  if (absl::Status s = ValidateTags(config.tags, "upstream.tags"); !s.ok()) return s;
  if (config.panic_threshold_percent > 100) {
    return Invalid("upstream.panic_threshold_percent",
                   absl::StrCat("must be 0..100, got ", config.panic_threshold_percent));
  }
  if (absl::Status s = ValidatePositive(config.lease_ttl, "upstream.lease_ttl"); !s.ok()) return s;

  const PassiveHealthConfig& passive = config.passive;
  const std::string passive_field = "upstream.health_checks.passive";
  if (absl::Status s =
          ValidatePositive(passive.base_ejection_time, passive_field + ".base_ejection_time");
      !s.ok()) {
    return s;
  }
  if (passive.max_ejection_time < passive.base_ejection_time) {
    return Invalid(passive_field + ".max_ejection_time", "must be >= base_ejection_time");
  }
  if (passive.max_ejection_percent > 100) {
    return Invalid(passive_field + ".max_ejection_percent",
                   absl::StrCat("must be 0..100, got ", passive.max_ejection_percent));
  }

  const ActiveHealthConfig& active = config.active;
  const std::string active_field = "upstream.health_checks.active";
  if (active.interval.count() < 0) return Invalid(active_field + ".interval", "must be >= 0");
  if (absl::Status s = ValidatePositive(active.timeout, active_field + ".timeout"); !s.ok()) {
    return s;
  }
  if (active.http_path.empty() || active.http_path.front() != '/') {
    return Invalid(active_field + ".http_path", "must start with '/'");
  }
  if (active.http_path.size() > kMaxPathLength) {
    return Invalid(active_field + ".http_path",
                   absl::StrCat("must be at most ", kMaxPathLength, " characters"));
  }
  if (rules == Rules::kNewWrite && active.healthy_http_statuses.size() > kMaxHealthyHttpStatuses) {
    return Invalid(active_field + ".healthy_http_statuses",
                   absl::StrCat("at most ", kMaxHealthyHttpStatuses, " statuses, got ",
                                active.healthy_http_statuses.size()));
  }
  for (uint32_t status : active.healthy_http_statuses) {
    if (status < 100 || status > 599) {
      return Invalid(active_field + ".healthy_http_statuses",
                     absl::StrCat("must be HTTP statuses 100..599, got ", status));
    }
  }
  if (active.healthy_successes == 0 || active.healthy_successes > 255) {
    return Invalid(active_field + ".healthy_successes", "must be 1..255 (0 means the default 2)");
  }
  if (active.unhealthy_failures == 0 || active.unhealthy_failures > 255) {
    return Invalid(active_field + ".unhealthy_failures", "must be 1..255 (0 means the default 3)");
  }
  return absl::OkStatus();
}

absl::Status ValidateTags(const std::vector<std::string>& tags, absl::string_view field) {
  if (tags.size() > kMaxTags) {
    return Invalid(field, absl::StrCat("at most ", kMaxTags, " tags, got ", tags.size()));
  }
  for (size_t i = 0; i < tags.size(); ++i) {
    const std::string& tag = tags[i];
    const bool printable = std::all_of(tag.begin(), tag.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != ',' && c != '/';
    });
    if (tag.empty() || tag.size() > kMaxTagLength || !printable) {
      return Invalid(
          absl::StrCat(field, "[", i, "]"),
          absl::StrCat("must be 1 to ", kMaxTagLength, " printable characters without ',' or '/'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTarget(const TargetConfig& target, absl::string_view field) {
  if (target.weight > kMaxTargetWeight) {
    return Invalid(absl::StrCat(field, ".weight"),
                   absl::StrCat("must be 0..", kMaxTargetWeight, ", got ", target.weight));
  }
  if (target.zone.size() > 256) {
    return Invalid(absl::StrCat(field, ".zone"), "must be at most 256 characters");
  }
  if (target.hash_key.size() > 1024) {
    return Invalid(absl::StrCat(field, ".hash_key"), "must be at most 1024 characters");
  }
  if (absl::Status s = ValidateTags(target.tags, absl::StrCat(field, ".tags")); !s.ok()) return s;
  return absl::OkStatus();
}

}  // namespace picker::core
