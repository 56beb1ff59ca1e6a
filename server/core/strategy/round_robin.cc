#include "server/core/strategy/round_robin.h"

#include <mutex>
#include <string>
#include <utility>

#include "server/core/strategy/avoid.h"

namespace picker::core {

struct RoundRobinStrategy::State final : PickState {
  explicit State(uint64_t seed) : cursor(seed) {}
  std::atomic<uint64_t> cursor;
  SpinLock edf_lock;
  EdfScheduler edf;  // Guarded by edf_lock; empty unless weighted.
};

RoundRobinStrategy::RoundRobinStrategy(std::vector<StrategyHost> hosts)
    : hosts_(std::move(hosts)),
      // Envoy builds no schedule for equal weights or a single host.
      weighted_(hosts_.size() > 1 && !WeightsAreEqual(hosts_)) {}

std::unique_ptr<PickState> RoundRobinStrategy::NewPickState(uint64_t seed) const {
  auto state = std::make_unique<State>(seed);
  if (weighted_) {
    // Envoy's createWithPicks takes a uint32_t: the seed is truncated.
    state->edf = EdfScheduler::CreateWithPicks(
        static_cast<uint32_t>(hosts_.size()),
        [this](uint32_t i) { return static_cast<double>(hosts_[i].weight); },
        static_cast<uint32_t>(seed));
  }
  return state;
}

uint32_t RoundRobinStrategy::PickOnce(State& state) const {
  if (!weighted_) {
    return static_cast<uint32_t>(state.cursor.fetch_add(1, std::memory_order_relaxed) %
                                 hosts_.size());
  }
  std::lock_guard<SpinLock> lock(state.edf_lock);
  return state.edf.PickAndAdd([this](uint32_t i) { return static_cast<double>(hosts_[i].weight); });
}

uint32_t RoundRobinStrategy::Pick(const PickParams& params, PickState* state) const {
  if (hosts_.empty()) return kNoHost;
  State& own = static_cast<State&>(*state);
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params,
                      [this, &own] { return PickOnce(own); });
}

std::optional<StrategyExplanation> RoundRobinStrategy::Explain(const PickParams& params,
                                                               bool /*random_hash*/,
                                                               PickState* state) const {
  StrategyExplanation out;
  if (hosts_.empty()) return out;
  State& own = static_cast<State&>(*state);
  const uint32_t n = static_cast<uint32_t>(hosts_.size());
  auto avoided = [&out](uint32_t h) { out.passed_over.push_back({h, true, 0}); };
  out.deterministic = true;
  if (!weighted_) {
    uint64_t cursor = own.cursor.load(std::memory_order_relaxed);
    out.rule = "round robin: the cursor is at " + std::to_string(cursor) + ", and " +
               std::to_string(cursor) + " % " + std::to_string(n) +
               " hosts = " + std::to_string(cursor % n);
    out.chosen = PickAvoidingTraced(
        n, params, [&] { return static_cast<uint32_t>(cursor++ % n); }, avoided);
    return out;
  }
  EdfScheduler copy;
  {
    std::lock_guard<SpinLock> lock(own.edf_lock);
    copy = own.edf;
  }
  auto weight = [this](uint32_t i) { return static_cast<double>(hosts_[i].weight); };
  out.chosen = PickAvoidingTraced(
      n, params, [&] { return copy.PickAndAdd(weight); }, avoided);
  out.rule =
      "weighted round robin: the earliest deadline of the EDF schedule (deadline += "
      "1/weight)";
  return out;
}

StrategyStats RoundRobinStrategy::Stats() const {
  StrategyStats stats;
  // The schedule, when there is one, holds one entry per host.
  stats.memory_bytes = hosts_.capacity() * sizeof(StrategyHost) +
                       (weighted_ ? hosts_.size() * sizeof(EdfScheduler::Entry) : 0);
  return stats;
}

}  // namespace picker::core
