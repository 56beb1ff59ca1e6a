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
// starting at `seed` (a lock-free atomic). Unequal weights, or a host in
// slow start when the strategy is built at `now_ms`: Envoy's EDF schedule
// created with `seed` pre-picks; picks serialise on a spin lock that only
// picks of this strategy take. Both live in the pick state. In slow start a
// host's weight is its weight times SlowStartFactor at the time of the
// pick, re-read when the host is re-inserted (Envoy's hostWeight).
class RoundRobinStrategy final : public Strategy {
 public:
  explicit RoundRobinStrategy(std::vector<StrategyHost> hosts, SlowStartConfig slow_start = {},
                              int64_t now_ms = 0);

  std::unique_ptr<PickState> NewPickState(uint64_t seed) const override;
  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  // The next host of the cursor or of a copy of the schedule.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

 private:
  struct State;
  uint32_t PickOnce(const PickParams& params, State& state) const;
  // The host's weight at `now_ms`, slow start applied.
  double Weight(uint32_t host, int64_t now_ms) const;

  const std::vector<StrategyHost> hosts_;
  const SlowStartConfig slow_start_;
  const int64_t built_ms_;
  // Some host was in its slow-start window at build.
  const bool slow_start_active_;
  const bool weighted_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_ROUND_ROBIN_H_
