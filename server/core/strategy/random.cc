#include "server/core/strategy/random.h"

#include <algorithm>

#include "server/core/strategy/avoid.h"

namespace picker::core {

RandomStrategy::RandomStrategy(std::vector<StrategyHost> hosts)
    : host_count_(static_cast<uint32_t>(hosts.size())) {
  if (hosts.empty() || WeightsAreEqual(hosts)) return;
  cumulative_weights_.reserve(hosts.size());
  uint64_t sum = 0;
  for (const StrategyHost& host : hosts) {
    sum += host.weight;
    cumulative_weights_.push_back(sum);
  }
}

uint32_t RandomStrategy::PickOnce(const PickParams& params) const {
  const uint64_t r = params.random();
  if (cumulative_weights_.empty()) return static_cast<uint32_t>(r % host_count_);
  // The modulo bias is below total_weight / 2^64, i.e. nil for weights that
  // fit the contract (at most 65535 per target).
  const uint64_t point = r % cumulative_weights_.back();
  // The first host whose cumulative weight exceeds the point: host i owns
  // [cum[i-1], cum[i]), a share of weight_i / total.
  const auto it = std::upper_bound(cumulative_weights_.begin(), cumulative_weights_.end(), point);
  return static_cast<uint32_t>(it - cumulative_weights_.begin());
}

uint32_t RandomStrategy::Pick(const PickParams& params) {
  if (host_count_ == 0) return kNoHost;
  return PickAvoiding(host_count_, params, [this, &params] { return PickOnce(params); });
}

StrategyStats RandomStrategy::Stats() const {
  StrategyStats stats;
  stats.memory_bytes = cumulative_weights_.capacity() * sizeof(uint64_t);
  return stats;
}

}  // namespace picker::core
