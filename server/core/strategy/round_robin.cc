#include "server/core/strategy/round_robin.h"

#include <mutex>
#include <string>
#include <utility>

#include "server/core/strategy/avoid.h"
#include "server/core/strategy/slow_start.h"

namespace picker::core {

struct RoundRobinStrategy::State final : PickState {
  explicit State(uint64_t seed) : cursor(seed) {}
  std::atomic<uint64_t> cursor;
  SpinLock edf_lock;
  EdfScheduler edf;  // Guarded by edf_lock; empty unless weighted.
};

RoundRobinStrategy::RoundRobinStrategy(std::vector<StrategyHost> hosts, SlowStartConfig slow_start,
                                       int64_t now_ms)
    : hosts_(std::move(hosts)),
      slow_start_(slow_start),
      built_ms_(now_ms),
      slow_start_active_(AnyInSlowStart(slow_start_, hosts_, now_ms)),
      // Envoy builds no schedule for a single host, or for equal weights
      // when no host is in slow start.
      weighted_(hosts_.size() > 1 && (!WeightsAreEqual(hosts_) || slow_start_active_)) {}

double RoundRobinStrategy::Weight(uint32_t host, int64_t now_ms) const {
  const double weight = static_cast<double>(hosts_[host].weight);
  if (!slow_start_active_) return weight;
  return weight * SlowStartFactor(slow_start_, hosts_[host].healthy_since_ms, now_ms);
}

std::unique_ptr<PickState> RoundRobinStrategy::NewPickState(uint64_t seed) const {
  auto state = std::make_unique<State>(seed);
  if (weighted_) {
    // Envoy's createWithPicks takes a uint32_t: the seed is truncated.
    state->edf = EdfScheduler::CreateWithPicks(
        static_cast<uint32_t>(hosts_.size()), [this](uint32_t i) { return Weight(i, built_ms_); },
        static_cast<uint32_t>(seed));
  }
  return state;
}

uint32_t RoundRobinStrategy::PickOnce(const PickParams& params, State& state) const {
  if (!weighted_) {
    return static_cast<uint32_t>(state.cursor.fetch_add(1, std::memory_order_relaxed) %
                                 hosts_.size());
  }
  // The clock is read only while slow start can change a weight.
  const int64_t now_ms = slow_start_active_ ? PickTime(params) / 1000000 : 0;
  std::lock_guard<SpinLock> lock(state.edf_lock);
  return state.edf.PickAndAdd([this, now_ms](uint32_t i) { return Weight(i, now_ms); });
}

uint32_t RoundRobinStrategy::Pick(const PickParams& params, PickState* state) const {
  if (hosts_.empty()) return kNoHost;
  State& own = static_cast<State&>(*state);
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params,
                      [this, &params, &own] { return PickOnce(params, own); });
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
