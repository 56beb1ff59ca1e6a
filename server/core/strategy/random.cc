#include "server/core/strategy/random.h"

#include "server/core/strategy/avoid.h"
#include "server/core/strategy/partition_point.h"

namespace picker::core {

RandomStrategy::RandomStrategy(std::vector<StrategyHost> hosts)
    : host_count_(static_cast<uint32_t>(hosts.size())) {
  if (hosts.empty() || WeightsAreEqual(hosts)) return;
  cumulative_weights_.reserve(hosts.size());
  uint64_t sum = 0;
  for (const StrategyHost& host : hosts) {
    sum += host.weight;
    cumulative_weights_.push_back(sum);
  }
}

uint32_t RandomStrategy::PickOnce(const PickParams& params) const {
  const uint64_t r = params.random();
  if (cumulative_weights_.empty()) return static_cast<uint32_t>(r % host_count_);
  // A point in [0, total): the high half of r * total (Lemire's reduction),
  // which spreads r as r % total would, with the same bias (below
  // total / 2^64: nil for weights of at most 65535 per target), and costs a
  // multiplication where % costs a 64-bit division.
  const uint64_t* const cumulative = cumulative_weights_.data();
  const uint64_t total = cumulative[host_count_ - 1];
  const uint64_t point = static_cast<uint64_t>((static_cast<unsigned __int128>(r) * total) >> 64);
  // The first host whose cumulative weight exceeds the point: host i owns
  // [cum[i-1], cum[i]), a share of weight_i / total.
  return static_cast<uint32_t>(
      PartitionPoint(cumulative, host_count_, [point](uint64_t c) { return c <= point; }));
}

uint32_t RandomStrategy::Pick(const PickParams& params, PickState* /*state*/) const {
  if (host_count_ == 0) return kNoHost;
  return PickAvoiding(host_count_, params, [this, &params] { return PickOnce(params); });
}

std::optional<StrategyExplanation> RandomStrategy::Explain(const PickParams& params,
                                                           bool /*random_hash*/,
                                                           PickState* /*state*/) const {
  StrategyExplanation out;
  out.candidates = RandomCandidates(host_count_, params, [this](uint32_t h) -> double {
    if (cumulative_weights_.empty()) return 1.0;
    return static_cast<double>(cumulative_weights_[h] - (h == 0 ? 0 : cumulative_weights_[h - 1]));
  });
  for (auto& c : out.candidates) {
    c.weight = cumulative_weights_.empty()
                   ? 1.0
                   : static_cast<double>(cumulative_weights_[c.host] -
                                         (c.host == 0 ? 0 : cumulative_weights_[c.host - 1]));
  }
  out.rule = "random, weighted by target weight";
  return out;
}

StrategyStats RandomStrategy::Stats() const {
  StrategyStats stats;
  stats.memory_bytes = cumulative_weights_.capacity() * sizeof(uint64_t);
  return stats;
}

}  // namespace picker::core
