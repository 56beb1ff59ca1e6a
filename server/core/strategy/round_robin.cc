#include "server/core/strategy/round_robin.h"

#include <mutex>
#include <utility>

#include "server/core/strategy/avoid.h"

namespace picker::core {

RoundRobinStrategy::RoundRobinStrategy(std::vector<StrategyHost> hosts, uint64_t seed)
    : hosts_(std::move(hosts)),
      // Envoy builds no schedule for equal weights or a single host.
      weighted_(hosts_.size() > 1 && !WeightsAreEqual(hosts_)),
      cursor_(seed) {
  if (weighted_) {
    // Envoy's createWithPicks takes a uint32_t: the seed is truncated.
    edf_ = EdfScheduler::CreateWithPicks(
        static_cast<uint32_t>(hosts_.size()),
        [this](uint32_t i) { return static_cast<double>(hosts_[i].weight); },
        static_cast<uint32_t>(seed));
  }
}

uint32_t RoundRobinStrategy::PickOnce() {
  if (!weighted_) {
    return static_cast<uint32_t>(cursor_.fetch_add(1, std::memory_order_relaxed) % hosts_.size());
  }
  std::lock_guard<SpinLock> lock(edf_lock_);
  return edf_.PickAndAdd([this](uint32_t i) { return static_cast<double>(hosts_[i].weight); });
}

uint32_t RoundRobinStrategy::Pick(const PickParams& params) {
  if (hosts_.empty()) return kNoHost;
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params, [this] { return PickOnce(); });
}

StrategyStats RoundRobinStrategy::Stats() const {
  StrategyStats stats;
  stats.memory_bytes = hosts_.capacity() * sizeof(StrategyHost) + edf_.memory_bytes();
  return stats;
}

}  // namespace picker::core
