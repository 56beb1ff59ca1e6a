// Random, weighted by target weight.
#ifndef PICKER_SERVER_CORE_STRATEGY_RANDOM_H_
#define PICKER_SERVER_CORE_STRATEGY_RANDOM_H_

#include <cstdint>
#include <vector>

#include "server/core/strategy/strategy.h"

namespace picker::core {

// Deliberate difference from Envoy: Envoy's RandomLoadBalancer returns
// `hosts[random() % n]` and ignores host weights; picker honours them, as
// Kong does, because a target's weight is the operator's one knob. With
// equal weights picker's pick is Envoy's `random() % n` exactly; otherwise
// one random number is mapped onto the cumulative weights (binary search).
class RandomStrategy final : public Strategy {
 public:
  explicit RandomStrategy(std::vector<StrategyHost> hosts);

  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  // The hosts with their weight shares.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

 private:
  uint32_t PickOnce(const PickParams& params) const;

  const uint32_t host_count_;
  // Inclusive prefix sums of the weights; empty when all weights are equal.
  std::vector<uint64_t> cumulative_weights_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_RANDOM_H_
