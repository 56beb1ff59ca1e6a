#include "server/core/strategy/strategy.h"

#include <cmath>
#include <utility>

#include "server/core/strategy/least_request.h"
#include "server/core/strategy/maglev.h"
#include "server/core/strategy/peak_ewma.h"
#include "server/core/strategy/random.h"
#include "server/core/strategy/ring_hash.h"
#include "server/core/strategy/round_robin.h"
#include "server/core/strategy/weighted_round_robin.h"

namespace picker::core {

double ChoicesWinProbability(uint32_t host, const std::vector<uint32_t>& eligible,
                             uint32_t choice_count, absl::FunctionRef<double(uint32_t)> key) {
  const double mine = key(host);
  double worse = 0, equal = 0;
  for (uint32_t h : eligible) {
    const double k = key(h);
    if (k > mine) ++worse;
    if (k == mine) ++equal;
  }
  const double n = static_cast<double>(eligible.size());
  return (std::pow((worse + equal) / n, choice_count) - std::pow(worse / n, choice_count)) / equal;
}

namespace {

std::unique_ptr<const Strategy> NewStrategy(const LoadBalancerConfig& config,
                                            std::vector<StrategyHost> hosts, int64_t now_ns) {
  const uint32_t balance = config.hash_balance_factor.value_or(0);
  const int64_t now_ms = now_ns / 1000000;
  switch (config.kind) {
    case StrategyKind::kRoundRobin:
      return std::make_unique<RoundRobinStrategy>(std::move(hosts), config.slow_start, now_ms);
    case StrategyKind::kLeastRequest:
      return std::make_unique<LeastRequestStrategy>(std::move(hosts), config.choice_count,
                                                    config.active_request_bias, config.slow_start,
                                                    now_ms);
    case StrategyKind::kRingHash:
      return std::make_unique<RingHashStrategy>(std::move(hosts), config.min_ring_size,
                                                config.max_ring_size, config.hash_function,
                                                balance);
    case StrategyKind::kRandom:
      return std::make_unique<RandomStrategy>(std::move(hosts));
    case StrategyKind::kMaglev:
      return std::make_unique<MaglevStrategy>(std::move(hosts), config.table_size, balance);
    case StrategyKind::kPeakEwma:
      return std::make_unique<PeakEwmaStrategy>(std::move(hosts), config.choice_count,
                                                config.decay_time, now_ns);
    case StrategyKind::kWeightedRoundRobin:
      return std::make_unique<WeightedRoundRobinStrategy>(std::move(hosts), config, now_ns);
  }
  return std::make_unique<RoundRobinStrategy>(std::move(hosts));
}

}  // namespace

BuiltStrategy BuildStrategy(const LoadBalancerConfig& config, std::vector<StrategyHost> hosts,
                            uint64_t seed, int64_t now_ns) {
  BuiltStrategy built;
  built.strategy = NewStrategy(config, std::move(hosts), now_ns);
  built.state = built.strategy->NewPickState(seed);
  return built;
}

}  // namespace picker::core
