// RoundRobin, as Envoy's RoundRobinLoadBalancer.
#ifndef PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_
#define PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/spin_lock.h"
#include "server/core/strategy/edf_scheduler.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

// Equal weights: plain rotation `hosts[cursor++ % n]` with the cursor
// starting at `seed` (a lock-free atomic). Unequal weights: Envoy's EDF
// schedule created with `seed` pre-picks; picks serialise on a spin lock
// that only picks of this strategy take. Both live in the pick state.
class RoundRobinStrategy final : public Strategy {
 public:
  explicit RoundRobinStrategy(std::vector<StrategyHost> hosts);

  std::unique_ptr<PickState> NewPickState(uint64_t seed) const override;
  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  // The next host of the cursor or of a copy of the schedule.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

 private:
  struct State;
  uint32_t PickOnce(State& state) const;

  const std::vector<StrategyHost> hosts_;
  const bool weighted_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_
