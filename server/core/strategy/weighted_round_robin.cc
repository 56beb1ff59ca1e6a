#include "server/core/strategy/weighted_round_robin.h"

#include <mutex>
#include <utility>

#include "server/core/spin_lock.h"
#include "server/core/strategy/avoid.h"
#include "server/core/strategy/edf_scheduler.h"

namespace picker::core {

struct WeightedRoundRobinStrategy::State final : PickState {
  SpinLock lock;
  // Guarded by lock; replaced together by Refresh.
  EdfScheduler edf;
  std::vector<double> weights;
};

namespace {

EdfScheduler NewSchedule(const std::vector<double>& weights, uint64_t seed) {
  // Envoy's createWithPicks takes a uint32_t: the seed is truncated.
  return EdfScheduler::CreateWithPicks(
      static_cast<uint32_t>(weights.size()), [&](uint32_t i) { return weights[i]; },
      static_cast<uint32_t>(seed));
}

}  // namespace

WeightedRoundRobinStrategy::WeightedRoundRobinStrategy(std::vector<StrategyHost> hosts,
                                                       const LoadBalancerConfig& config,
                                                       int64_t now_ns)
    : hosts_(std::move(hosts)),
      periods_{config.blackout_period.count(), config.weight_expiration_period.count()},
      update_period_(config.weight_update_period),
      built_ns_(now_ns) {}

uint32_t WeightedRoundRobinStrategy::UsableCount(int64_t now_ns) const {
  uint32_t usable = 0;
  for (const StrategyHost& host : hosts_) {
    if (host.load != nullptr && host.load->weight.Usable(periods_, now_ns / 1000000) > 0) ++usable;
  }
  return usable;
}

std::vector<double> WeightedRoundRobinStrategy::Weights(int64_t now_ns) const {
  const int64_t now_ms = now_ns / 1000000;
  std::vector<double> weights(hosts_.size(), 0.0);
  double sum = 0;
  uint32_t usable = 0;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i].load == nullptr) continue;
    weights[i] = hosts_[i].load->weight.Usable(periods_, now_ms);
    if (weights[i] > 0) {
      sum += weights[i];
      ++usable;
    }
  }
  if (usable < 2) {
    // Too little to compare: the targets' own weights, as RoundRobin.
    for (size_t i = 0; i < hosts_.size(); ++i) weights[i] = hosts_[i].weight;
    return weights;
  }
  const double mean = sum / usable;
  for (double& w : weights) {
    if (w <= 0) w = mean;
  }
  return weights;
}

std::unique_ptr<PickState> WeightedRoundRobinStrategy::NewPickState(uint64_t seed) const {
  auto state = std::make_unique<State>();
  state->weights = Weights(built_ns_);
  state->edf = NewSchedule(state->weights, seed);
  return state;
}

void WeightedRoundRobinStrategy::Refresh(PickState* state, int64_t now_ns, uint64_t seed) const {
  if (state == nullptr) return;
  State& own = static_cast<State&>(*state);
  std::vector<double> weights = Weights(now_ns);
  EdfScheduler edf = NewSchedule(weights, seed);
  {
    std::lock_guard<SpinLock> lock(own.lock);
    std::swap(own.weights, weights);
    std::swap(own.edf, edf);
  }
  // The old schedule is freed here, outside the lock.
}

uint32_t WeightedRoundRobinStrategy::Pick(const PickParams& params, PickState* state) const {
  if (hosts_.empty()) return kNoHost;
  State& own = static_cast<State&>(*state);
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params, [&own] {
    std::lock_guard<SpinLock> lock(own.lock);
    return own.edf.PickAndAdd([&own](uint32_t i) { return own.weights[i]; });
  });
}

std::optional<StrategyExplanation> WeightedRoundRobinStrategy::Explain(const PickParams& params,
                                                                       bool /*random_hash*/,
                                                                       PickState* state) const {
  StrategyExplanation out;
  if (hosts_.empty()) return out;
  State& own = static_cast<State&>(*state);
  EdfScheduler copy;
  std::vector<double> weights;
  {
    std::lock_guard<SpinLock> lock(own.lock);
    copy = own.edf;
    weights = own.weights;
  }
  out.deterministic = true;
  out.chosen = PickAvoidingTraced(
      static_cast<uint32_t>(hosts_.size()), params,
      [&] { return copy.PickAndAdd([&weights](uint32_t i) { return weights[i]; }); },
      [&out](uint32_t h) {
        out.passed_over.push_back({h, true, 0});
      });
  out.rule =
      "weighted round robin: the earliest deadline of the EDF schedule over the weights the "
      "load reports set";
  return out;
}

StrategyStats WeightedRoundRobinStrategy::Stats() const {
  StrategyStats stats;
  // The schedule and the weights hold one entry per host.
  stats.memory_bytes = hosts_.capacity() * sizeof(StrategyHost) +
                       hosts_.size() * (sizeof(EdfScheduler::Entry) + sizeof(double));
  return stats;
}

}  // namespace picker::core
