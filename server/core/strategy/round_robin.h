// RoundRobin, as Envoy's RoundRobinLoadBalancer.
#ifndef PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_
#define PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "server/core/spin_lock.h"
#include "server/core/strategy/edf_scheduler.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

// Equal weights: plain rotation `hosts[cursor++ % n]` with the cursor
// starting at `seed` (a lock-free atomic). Unequal weights: Envoy's EDF
// schedule created with `seed` pre-picks; picks serialise on a spin lock that
// only picks of this strategy take.
class RoundRobinStrategy final : public Strategy {
 public:
  RoundRobinStrategy(std::vector<StrategyHost> hosts, uint64_t seed);

  uint32_t Pick(const PickParams& params) override;
  StrategyStats Stats() const override;

 private:
  uint32_t PickOnce();

  const std::vector<StrategyHost> hosts_;
  const bool weighted_;
  std::atomic<uint64_t> cursor_;
  SpinLock edf_lock_;
  EdfScheduler edf_;  // Guarded by edf_lock_; empty unless weighted_.
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_
