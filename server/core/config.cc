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
