#include "server/core/strategy/peak_ewma.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "server/core/strategy/avoid.h"

namespace picker::core {

PeakEwmaStrategy::PeakEwmaStrategy(std::vector<StrategyHost> hosts, uint32_t choice_count,
                                   Millis decay_time, int64_t now_ns)
    : hosts_(std::move(hosts)),
      choice_count_(choice_count < 1 ? 2 : std::min(choice_count, kMaxChoiceCount)),
      tau_ns_(static_cast<double>(std::max<int64_t>(1, decay_time.count())) * 1e6) {
  double sum = 0;
  uint32_t reported = 0;
  for (const StrategyHost& host : hosts_) {
    if (host.load == nullptr) continue;
    if (std::optional<double> latency = host.load->latency.Read(now_ns, tau_ns_)) {
      sum += *latency;
      ++reported;
    }
  }
  if (reported > 0) unreported_latency_ns_ = sum / reported;
}

double PeakEwmaStrategy::Cost(uint32_t host, int64_t now_ns) const {
  const StrategyHost& h = hosts_[host];
  std::optional<double> latency;
  if (h.load != nullptr) latency = h.load->latency.Read(now_ns, tau_ns_);
  const double active = static_cast<double>(h.active_requests->load(std::memory_order_relaxed));
  // Without any latency (nothing reported yet anywhere) 1ns stands in, so
  // that the cost still follows active requests and weight.
  const double l = std::max(latency.value_or(unreported_latency_ns_), 1.0);
  return l * (active + 1) / static_cast<double>(h.weight);
}

uint32_t PeakEwmaStrategy::PickOnce(const PickParams& params, int64_t now_ns) const {
  const uint64_t n = hosts_.size();
  uint32_t candidate = kNoHost;
  double candidate_cost = 0;
  for (uint32_t choice = 0; choice < choice_count_; ++choice) {
    const uint32_t sampled = static_cast<uint32_t>(params.random() % n);
    if (sampled == candidate) continue;
    const double cost = Cost(sampled, now_ns);
    if (candidate == kNoHost || cost < candidate_cost) {
      candidate = sampled;
      candidate_cost = cost;
    }
  }
  return candidate;
}

uint32_t PeakEwmaStrategy::Pick(const PickParams& params, PickState* state) const {
  if (hosts_.empty()) return kNoHost;
  if (hosts_.size() == 1) return PickAvoiding(1, params, [] { return 0u; });
  const int64_t now_ns = PickTime(params);
  return PickAvoiding(static_cast<uint32_t>(hosts_.size()), params,
                      [this, &params, now_ns] { return PickOnce(params, now_ns); });
}

std::optional<StrategyExplanation> PeakEwmaStrategy::Explain(const PickParams& params,
                                                             bool /*random_hash*/,
                                                             PickState* /*state*/) const {
  StrategyExplanation out;
  const uint32_t n = static_cast<uint32_t>(hosts_.size());
  if (n == 0) return out;
  const int64_t now_ns = PickTime(params);
  // A draw on an avoided host is drawn again, as in LeastRequest.
  std::vector<uint32_t> eligible;
  for (uint32_t h = 0; h < n; ++h) {
    if (!params.avoid(h)) eligible.push_back(h);
  }
  if (eligible.empty()) {
    for (uint32_t h = 0; h < n; ++h) eligible.push_back(h);
  }
  std::vector<double> costs(n);
  for (uint32_t h : eligible) costs[h] = Cost(h, now_ns);
  for (uint32_t h : eligible) {
    const double p = n == 1 ? 1.0
                            : ChoicesWinProbability(h, eligible, choice_count_,
                                                    [&costs](uint32_t i) { return costs[i]; });
    out.candidates.push_back({h, p, static_cast<double>(hosts_[h].weight)});
  }
  out.rule = "peak EWMA: the lowest latency x (active + 1) / weight among " +
             std::to_string(choice_count_) + " random draws";
  return out;
}

StrategyStats PeakEwmaStrategy::Stats() const {
  StrategyStats stats;
  stats.memory_bytes = hosts_.capacity() * sizeof(StrategyHost);
  return stats;
}

}  // namespace picker::core
