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

namespace {

template <typename T>
void Fill(T& field, const T& fallback) {
  if (field == T{}) field = fallback;
}

}  // namespace

void ReplaceZerosWithDefaults(LoadBalancerConfig& lb) {
  const LoadBalancerConfig defaults;
  Fill(lb.choice_count, defaults.choice_count);
  Fill(lb.min_ring_size, defaults.min_ring_size);
  Fill(lb.max_ring_size, defaults.max_ring_size);
  Fill(lb.table_size, defaults.table_size);
  Fill(lb.slow_start.aggression, defaults.slow_start.aggression);
  Fill(lb.slow_start.min_weight_percent, defaults.slow_start.min_weight_percent);
  Fill(lb.decay_time, defaults.decay_time);
  Fill(lb.failure_penalty, defaults.failure_penalty);
  Fill(lb.weight_expiration_period, defaults.weight_expiration_period);
  Fill(lb.weight_update_period, defaults.weight_update_period);
}

void ReplaceZerosWithDefaults(UpstreamConfig& config) {
  const UpstreamConfig defaults;
  ReplaceZerosWithDefaults(config.load_balancer);
  for (ClientConfig& client : config.client_configs) {
    ReplaceZerosWithDefaults(client.load_balancer);
  }
  Fill(config.lease_ttl, defaults.lease_ttl);
  Fill(config.passive.base_ejection_time, defaults.passive.base_ejection_time);
  Fill(config.passive.max_ejection_time, defaults.passive.max_ejection_time);
  Fill(config.active.http_path, defaults.active.http_path);
  Fill(config.active.healthy_http_statuses, defaults.active.healthy_http_statuses);
  Fill(config.active.timeout, defaults.active.timeout);
  Fill(config.active.healthy_successes, defaults.active.healthy_successes);
  Fill(config.active.unhealthy_failures, defaults.active.unhealthy_failures);
}

}  // namespace picker::core
