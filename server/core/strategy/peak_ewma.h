// PeakEwma: picker's own latency-aware strategy (not one of Kong Mesh's),
// Finagle's P2C + peak EWMA on the latencies every client reports in
// Release.
//
// A pick draws `choice_count` random hosts (with replacement, as
// LeastRequest) and keeps the cheapest; a later draw replaces the candidate
// only when strictly cheaper. A host's cost is
//
//   latency x (active requests + 1) / weight
//
// where latency is the host's peak EWMA (TargetLoad::latency, decay time
// tau) read at the time of the pick. A host with no report yet counts the
// mean latency of the hosts that have one, as it was when the strategy was
// built (Kong's `latency` algorithm seeds new targets the same way), or 0
// when none has, so that then the pick follows active requests / weight.
//
//   PeakEwmaStrategy lb(hosts, /*choice_count=*/2, /*tau=*/Millis(10000), now_ns);
//   uint32_t host = lb.Pick(params, nullptr);
//
// Picks change nothing (no pick state) and read the latency lock-free;
// releases write it (data plane), snapshots never rebuild it.
#ifndef PICKER_SERVER_CORE_STRATEGY_PEAK_EWMA_H_
#define PICKER_SERVER_CORE_STRATEGY_PEAK_EWMA_H_

#include <cstdint>
#include <vector>

#include "server/core/strategy/strategy.h"

namespace picker::core {

class PeakEwmaStrategy final : public Strategy {
 public:
  PeakEwmaStrategy(std::vector<StrategyHost> hosts, uint32_t choice_count, Millis decay_time,
                   int64_t now_ns);

  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  // The hosts a pick can return, each with its chance at the costs of now.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

  // The host's cost at `now_ns` (what a pick compares).
  double Cost(uint32_t host, int64_t now_ns) const;
  // The latency a host without a report counts.
  double unreported_latency_ns() const { return unreported_latency_ns_; }

 private:
  uint32_t PickOnce(const PickParams& params, int64_t now_ns) const;

  const std::vector<StrategyHost> hosts_;
  const uint32_t choice_count_;
  const double tau_ns_;
  double unreported_latency_ns_ = 0;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_PEAK_EWMA_H_
