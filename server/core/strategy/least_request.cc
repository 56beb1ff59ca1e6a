#include "server/core/strategy/least_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <utility>

#include "server/core/config.h"
#include "server/core/strategy/avoid.h"
#include "server/core/strategy/slow_start.h"

namespace picker::core {

struct LeastRequestStrategy::State final : PickState {
  SpinLock edf_lock;
  EdfScheduler edf;  // Guarded by edf_lock.
};

LeastRequestStrategy::LeastRequestStrategy(std::vector<StrategyHost> hosts, uint32_t choice_count,
                                           double active_request_bias, SlowStartConfig slow_start,
                                           int64_t now_ms)
    : hosts_(std::move(hosts)),
      // Clamped, so that a record stored before choice_count had its bound
      // (validate.h) still loads and picks cheaply.
      choice_count_(choice_count < 1 ? 2 : std::min(choice_count, kMaxChoiceCount)),
      // Envoy falls back to 1.0 for a negative or NaN bias.
      active_request_bias_((active_request_bias < 0.0 || std::isnan(active_request_bias))
                               ? 1.0
                               : active_request_bias),
      slow_start_(slow_start),
      built_ms_(now_ms),
      slow_start_active_(AnyInSlowStart(slow_start_, hosts_, now_ms)),
      weighted_(hosts_.size() > 1 && (!WeightsAreEqual(hosts_) || slow_start_active_)) {}

std::unique_ptr<PickState> LeastRequestStrategy::NewPickState(uint64_t seed) const {
  if (!weighted_) return nullptr;
  auto state = std::make_unique<State>();
  state->edf = EdfScheduler::CreateWithPicks(
      static_cast<uint32_t>(hosts_.size()),
      [this](uint32_t i) { return EffectiveWeight(i, built_ms_); }, static_cast<uint32_t>(seed));
  return state;
}

double LeastRequestStrategy::EffectiveWeight(uint32_t host, int64_t now_ms) const {
  double weight = static_cast<double>(hosts_[host].weight);
  const uint64_t active = hosts_[host].active_requests->load(std::memory_order_relaxed);
  // +1 avoids dividing by zero; Envoy guards the overflow the same way.
  const uint64_t divisor = active != std::numeric_limits<uint64_t>::max() ? active + 1 : active;
  if (active_request_bias_ == 1.0) {
    weight /= static_cast<double>(divisor);
  } else if (active_request_bias_ != 0.0) {
    weight /= std::pow(static_cast<double>(divisor), active_request_bias_);
  }
  // Envoy applies slow start after the active-request bias.
  if (!slow_start_active_) return weight;
  return weight * SlowStartFactor(slow_start_, hosts_[host].healthy_since_ms, now_ms);
}

uint32_t LeastRequestStrategy::PickOnce(const PickParams& params, PickState* state) const {
  if (weighted_) {
    // The clock is read only while slow start can change a weight.
    const int64_t now_ms = slow_start_active_ ? PickTime(params) / 1000000 : 0;
    State& own = static_cast<State&>(*state);
    std::lock_guard<SpinLock> lock(own.edf_lock);
    return own.edf.PickAndAdd([this, now_ms](uint32_t i) { return EffectiveWeight(i, now_ms); });
  }
  const uint64_t n = hosts_.size();
  uint32_t candidate = kNoHost;
  uint64_t candidate_active = 0;
  for (uint32_t choice = 0; choice < choice_count_; ++choice) {
    const uint32_t sampled = static_cast<uint32_t>(params.random() % n);
    const uint64_t sampled_active =
        hosts_[sampled].active_requests->load(std::memory_order_relaxed);
    if (candidate == kNoHost || sampled_active < candidate_active) {
      candidate = sampled;
      candidate_active = sampled_active;
    }
  }
  return candidate;
}

uint32_t LeastRequestStrategy::Pick(const PickParams& params, PickState* state) const {
  if (hosts_.empty()) return kNoHost;
  if (hosts_.size() == 1) return PickAvoiding(1, params, [] { return 0u; });
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params,
                      [this, &params, state] { return PickOnce(params, state); });
}

double LeastRequestStrategy::WinProbability(uint32_t host,
                                            const std::vector<uint32_t>& eligible) const {
  return ChoicesWinProbability(host, eligible, choice_count_, [this](uint32_t h) {
    return static_cast<double>(hosts_[h].active_requests->load(std::memory_order_relaxed));
  });
}

std::optional<StrategyExplanation> LeastRequestStrategy::Explain(const PickParams& params,
                                                                 bool /*random_hash*/,
                                                                 PickState* state) const {
  StrategyExplanation out;
  const uint32_t n = static_cast<uint32_t>(hosts_.size());
  if (n == 0) return out;
  if (weighted_) {
    State& own = static_cast<State&>(*state);
    EdfScheduler copy;
    {
      std::lock_guard<SpinLock> lock(own.edf_lock);
      copy = own.edf;
    }
    const int64_t now_ms = slow_start_active_ ? PickTime(params) / 1000000 : 0;
    auto weight = [this, now_ms](uint32_t i) { return EffectiveWeight(i, now_ms); };
    out.deterministic = true;
    out.chosen = PickAvoidingTraced(
        n, params, [&] { return copy.PickAndAdd(weight); },
        [&out](uint32_t h) {
          out.passed_over.push_back({h, true, 0});
        });
    for (uint32_t h = 0; h < n; ++h)
      out.candidates.push_back({h, h == out.chosen ? 1.0 : 0.0, weight(h)});
    out.rule =
        "weighted least request: the earliest deadline of the EDF schedule, each host "
        "re-queued with weight / (active + 1)^bias";
    return out;
  }
  if (n == 1) {
    out.deterministic = true;
    out.chosen = 0;
    out.rule = "least request: a single host";
    return out;
  }
  // A draw that lands on an avoided host is drawn again: the choice is made
  // among the others (all hosts when every one is avoided).
  std::vector<uint32_t> eligible;
  for (uint32_t h = 0; h < n; ++h) {
    if (!params.avoid(h)) eligible.push_back(h);
  }
  if (eligible.empty()) {
    for (uint32_t h = 0; h < n; ++h) eligible.push_back(h);
  }
  for (uint32_t h : eligible) {
    out.candidates.push_back(
        {h, WinProbability(h, eligible), static_cast<double>(hosts_[h].weight)});
  }
  out.rule = "least request: the fewest active requests among " + std::to_string(choice_count_) +
             " random draws";
  return out;
}

StrategyStats LeastRequestStrategy::Stats() const {
  StrategyStats stats;
  // The schedule, when there is one, holds one entry per host.
  stats.memory_bytes = hosts_.capacity() * sizeof(StrategyHost) +
                       (weighted_ ? hosts_.size() * sizeof(EdfScheduler::Entry) : 0);
  return stats;
}

}  // namespace picker::core
