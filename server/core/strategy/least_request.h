// LeastRequest, as Envoy's LeastRequestLoadBalancer (N_CHOICES).
#ifndef PICKER_SERVER_CORE_STRATEGY_LEAST_REQUEST_H_
#define PICKER_SERVER_CORE_STRATEGY_LEAST_REQUEST_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/spin_lock.h"
#include "server/core/strategy/edf_scheduler.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

// Equal weights: `choice_count` (at most kMaxChoiceCount, config.h) samples
// `random() % n` (with replacement);
// a later sample replaces the candidate only with strictly fewer active
// requests. Unequal weights: EDF over `weight / (active + 1)^bias`, where a
// host's weight is re-read only when it is re-inserted after being picked.
//
// Envoy's pick also spends one random() on choosing the priority before the
// samples; picker chooses priorities outside the strategy, so the strategy
// consumes exactly `choice_count` randoms per attempt.
//
// As in Envoy, a host in slow start when the strategy is built at `now_ms`
// also makes it pick by EDF, each weight multiplied by the host's
// SlowStartFactor at the time it is re-inserted.
//
// The EDF schedule is the pick state; with equal weights and no slow start
// picks change nothing and there is none.
class LeastRequestStrategy final : public Strategy {
 public:
  LeastRequestStrategy(std::vector<StrategyHost> hosts, uint32_t choice_count,
                       double active_request_bias, SlowStartConfig slow_start = {},
                       int64_t now_ms = 0);

  std::unique_ptr<PickState> NewPickState(uint64_t seed) const override;
  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  // Equal weights: each host's probability of being the least loaded of
  // choice_count draws. Unequal: the front of a copy of the schedule.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

 private:
  // P(host wins) for the equal-weight draws, over `eligible` hosts.
  double WinProbability(uint32_t host, const std::vector<uint32_t>& eligible) const;
  struct State;
  uint32_t PickOnce(const PickParams& params, PickState* state) const;
  // weight / (active + 1)^bias, times the slow-start factor at `now_ms`.
  double EffectiveWeight(uint32_t host, int64_t now_ms) const;

  const std::vector<StrategyHost> hosts_;
  const uint32_t choice_count_;
  const double active_request_bias_;
  const SlowStartConfig slow_start_;
  const int64_t built_ms_;
  const bool slow_start_active_;  // Some host was in its window at build.
  const bool weighted_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_LEAST_REQUEST_H_
