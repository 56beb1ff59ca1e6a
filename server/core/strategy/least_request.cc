#include "server/core/strategy/least_request.h"

#include <cmath>
#include <limits>
#include <mutex>
#include <utility>

#include "server/core/strategy/avoid.h"

namespace picker::core {

LeastRequestStrategy::LeastRequestStrategy(std::vector<StrategyHost> hosts, uint32_t choice_count,
                                           double active_request_bias, uint64_t seed)
    : hosts_(std::move(hosts)),
      choice_count_(choice_count < 1 ? 2 : choice_count),
      // Envoy falls back to 1.0 for a negative or NaN bias.
      active_request_bias_((active_request_bias < 0.0 || std::isnan(active_request_bias))
                               ? 1.0
                               : active_request_bias),
      weighted_(hosts_.size() > 1 && !WeightsAreEqual(hosts_)) {
  if (weighted_) {
    edf_ = EdfScheduler::CreateWithPicks(
        static_cast<uint32_t>(hosts_.size()), [this](uint32_t i) { return EffectiveWeight(i); },
        static_cast<uint32_t>(seed));
  }
}

double LeastRequestStrategy::EffectiveWeight(uint32_t host) const {
  const double weight = static_cast<double>(hosts_[host].weight);
  const uint64_t active = hosts_[host].active_requests->load(std::memory_order_relaxed);
  // +1 avoids dividing by zero; Envoy guards the overflow the same way.
  const uint64_t divisor = active != std::numeric_limits<uint64_t>::max() ? active + 1 : active;
  if (active_request_bias_ == 1.0) return weight / static_cast<double>(divisor);
  if (active_request_bias_ == 0.0) return weight;
  return weight / std::pow(static_cast<double>(divisor), active_request_bias_);
}

uint32_t LeastRequestStrategy::PickOnce(const PickParams& params) {
  if (weighted_) {
    std::lock_guard<SpinLock> lock(edf_lock_);
    return edf_.PickAndAdd([this](uint32_t i) { return EffectiveWeight(i); });
  }
  const uint64_t n = hosts_.size();
  uint32_t candidate = kNoHost;
  uint64_t candidate_active = 0;
  for (uint32_t choice = 0; choice < choice_count_; ++choice) {
    const uint32_t sampled = static_cast<uint32_t>(params.random() % n);
    const uint64_t sampled_active =
        hosts_[sampled].active_requests->load(std::memory_order_relaxed);
    if (candidate == kNoHost || sampled_active < candidate_active) {
      candidate = sampled;
      candidate_active = sampled_active;
    }
  }
  return candidate;
}

uint32_t LeastRequestStrategy::Pick(const PickParams& params) {
  if (hosts_.empty()) return kNoHost;
  if (hosts_.size() == 1) return PickAvoiding(1, params, [] { return 0u; });
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params,
                      [this, &params] { return PickOnce(params); });
}

StrategyStats LeastRequestStrategy::Stats() const {
  StrategyStats stats;
  stats.memory_bytes = hosts_.capacity() * sizeof(StrategyHost) + edf_.memory_bytes();
  return stats;
}

}  // namespace picker::core
