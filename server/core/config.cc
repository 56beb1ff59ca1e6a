#include "server/core/config.h"

#include <type_traits>

namespace picker::core {

const char* StrategyName(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::kRoundRobin:
      return "round_robin";
    case StrategyKind::kLeastRequest:
      return "least_request";
    case StrategyKind::kRingHash:
      return "ring_hash";
    case StrategyKind::kRandom:
      return "random";
    case StrategyKind::kMaglev:
      return "maglev";
    case StrategyKind::kPeakEwma:
      return "peak_ewma";
    case StrategyKind::kWeightedRoundRobin:
      return "weighted_round_robin";
  }
  return "unknown";
}

void ReplaceZerosWithDefaults(UpstreamConfig& config) {
  const UpstreamConfig defaults;
  auto fill = [](auto& field, const auto& fallback) {
    if (field == std::remove_reference_t<decltype(field)>{}) field = fallback;
  };
  LoadBalancerConfig& lb = config.load_balancer;
  fill(lb.choice_count, defaults.load_balancer.choice_count);
  fill(lb.min_ring_size, defaults.load_balancer.min_ring_size);
  fill(lb.max_ring_size, defaults.load_balancer.max_ring_size);
  fill(lb.table_size, defaults.load_balancer.table_size);
  fill(lb.slow_start.aggression, defaults.load_balancer.slow_start.aggression);
  fill(lb.slow_start.min_weight_percent, defaults.load_balancer.slow_start.min_weight_percent);
  fill(lb.decay_time, defaults.load_balancer.decay_time);
  fill(lb.failure_penalty, defaults.load_balancer.failure_penalty);
  fill(lb.weight_expiration_period, defaults.load_balancer.weight_expiration_period);
  fill(lb.weight_update_period, defaults.load_balancer.weight_update_period);
  fill(config.lease_ttl, defaults.lease_ttl);
  fill(config.passive.base_ejection_time, defaults.passive.base_ejection_time);
  fill(config.passive.max_ejection_time, defaults.passive.max_ejection_time);
  fill(config.active.http_path, defaults.active.http_path);
  fill(config.active.healthy_http_statuses, defaults.active.healthy_http_statuses);
  fill(config.active.timeout, defaults.active.timeout);
  fill(config.active.healthy_successes, defaults.active.healthy_successes);
  fill(config.active.unhealthy_failures, defaults.active.unhealthy_failures);
}

}  // namespace picker::core
