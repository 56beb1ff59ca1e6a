// WeightedRoundRobin: picker's own utilization-weighted round robin (not
// one of Kong Mesh's), gRPC's weighted_round_robin (gRFC A58) on the ORCA
// load reports that clients pass on in Release.
//
// Each host's weight is A58's qps / (utilization + eps / qps x
// error_utilization_penalty) from its latest report (TargetLoad::weight),
// usable once it has reported for `blackout_period` and until its last
// report is `weight_expiration_period` old. Hosts without a usable weight
// get the mean of the usable ones. With fewer than two usable weights the
// strategy falls back to the targets' own weights, as RoundRobin (A58 falls
// back to round robin; picker's round robin honours target weights).
//
// The weights are recomputed every `weight_update_period` by Refresh, off
// the pick path (the control plane's timer), into a new EDF schedule
// (Envoy's, seeded at random as A58 seeds its deadlines) that replaces the
// old one under the picks' own spin lock: the refresh holds it only for a
// swap, as long as one pick holds it.
//
//   WeightedRoundRobinStrategy lb(hosts, config, now_ns);
//   auto state = lb.NewPickState(seed);
//   lb.Refresh(state.get(), now_ns + 1'000'000'000, seed2);  // every period
//   uint32_t host = lb.Pick(params, state.get());
#ifndef PICKER_SERVER_CORE_STRATEGY_WEIGHTED_ROUND_ROBIN_H_
#define PICKER_SERVER_CORE_STRATEGY_WEIGHTED_ROUND_ROBIN_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/core/strategy/strategy.h"

namespace picker::core {

class WeightedRoundRobinStrategy final : public Strategy {
 public:
  WeightedRoundRobinStrategy(std::vector<StrategyHost> hosts, const LoadBalancerConfig& config,
                             int64_t now_ns);

  std::unique_ptr<PickState> NewPickState(uint64_t seed) const override;
  uint32_t Pick(const PickParams& params, PickState* state) const override;
  // The host the schedule gives next (a copy of it is popped).
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;
  StrategyStats Stats() const override;
  Millis RefreshPeriod() const override { return update_period_; }
  void Refresh(PickState* state, int64_t now_ns, uint64_t seed) const override;

  // The weights the schedule uses from `now_ns` on, by host.
  std::vector<double> Weights(int64_t now_ns) const;
  // How many hosts have a usable weight from their reports at `now_ns`.
  uint32_t UsableCount(int64_t now_ns) const;

 private:
  struct State;

  const std::vector<StrategyHost> hosts_;
  const EndpointWeight::Periods periods_;
  const Millis update_period_;
  const int64_t built_ns_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_WEIGHTED_ROUND_ROBIN_H_
