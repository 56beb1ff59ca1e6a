#include "server/core/strategy/ring_hash.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "server/core/hash/hash.h"
#include "server/core/strategy/avoid.h"
#include "server/core/strategy/partition_point.h"

namespace picker::core {

void SortRingEntries(const std::vector<RingEntry>& entries, std::vector<uint64_t>& hashes,
                     std::vector<uint32_t>& hosts) {
  const size_t n = entries.size();
  hashes.resize(n);
  hosts.resize(n);
  const int bits = std::max(1, static_cast<int>(std::bit_width(n)) - 3);
  const int shift = 64 - bits;
  std::vector<uint32_t> next(size_t{1} << bits, 0);
  for (const RingEntry& e : entries) ++next[e.hash >> shift];
  uint32_t offset = 0;
  for (uint32_t& start : next) offset += std::exchange(start, offset);
  for (const RingEntry& e : entries) {
    const uint32_t at = next[e.hash >> shift]++;
    hashes[at] = e.hash;
    hosts[at] = e.host;
  }
  // next[b] is now where bucket b ends and bucket b + 1 begins.
  constexpr uint32_t kSmallBucket = 64;
  std::vector<RingEntry> large;
  uint32_t begin = 0;
  for (const uint32_t end : next) {
    if (end - begin <= kSmallBucket) {
      for (uint32_t i = begin + 1; i < end; ++i) {
        const uint64_t hash = hashes[i];
        const uint32_t host = hosts[i];
        uint32_t j = i;
        for (; j > begin && hashes[j - 1] > hash; --j) {
          hashes[j] = hashes[j - 1];
          hosts[j] = hosts[j - 1];
        }
        hashes[j] = hash;
        hosts[j] = host;
      }
    } else {
      large.clear();
      for (uint32_t i = begin; i < end; ++i) large.push_back(RingEntry{hashes[i], hosts[i]});
      std::stable_sort(large.begin(), large.end(),
                       [](const RingEntry& a, const RingEntry& b) { return a.hash < b.hash; });
      for (uint32_t i = begin; i < end; ++i) {
        hashes[i] = large[i - begin].hash;
        hosts[i] = large[i - begin].host;
      }
    }
    begin = end;
  }
}

HashRing::HashRing(const std::vector<StrategyHost>& hosts, uint64_t min_ring_size,
                   uint64_t max_ring_size, HashFunction hash_function) {
  if (hosts.empty()) return;

  // Envoy's normalised weights, in double, in host order.
  uint64_t weight_sum = 0;
  for (const StrategyHost& host : hosts) weight_sum += host.weight;
  std::vector<double> normalized(hosts.size());
  double min_normalized_weight = 1.0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    normalized[i] = hosts[i].weight * 1.0 / static_cast<double>(weight_sum);
    min_normalized_weight = std::min(min_normalized_weight, normalized[i]);
  }

  // Scale so that the least-weighted host gets a whole number of entries,
  // capped at the maximum ring size.
  const double scale = std::min(
      std::ceil(min_normalized_weight * static_cast<double>(min_ring_size)) / min_normalized_weight,
      static_cast<double>(max_ring_size));
  const uint64_t ring_size = static_cast<uint64_t>(std::ceil(scale));

  std::vector<RingEntry> entries;
  entries.reserve(ring_size);

  // Running sums across the whole host set, in doubles, exactly as Envoy:
  // hosts may get fractional shares, and rounding must fall where Envoy's
  // does (per-host counts computed separately could differ by one).
  std::string key;
  double current_hashes = 0.0;
  double target_hashes = 0.0;
  min_hashes_per_host_ = ring_size;
  max_hashes_per_host_ = 0;
  for (size_t h = 0; h < hosts.size(); ++h) {
    key.assign(hosts[h].hash_key);
    key.push_back('_');
    const size_t prefix = key.size();
    target_hashes += scale * normalized[h];
    uint64_t i = 0;
    while (current_hashes < target_hashes) {
      char digits[24];
      const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), i);
      key.resize(prefix);
      key.append(digits, end);
      const uint64_t hash = hash_function == HashFunction::kMurmurHash2
                                ? MurmurHash2(key, kMurmurHash2Seed)
                                : XxHash64(key, 0);
      entries.push_back(RingEntry{hash, static_cast<uint32_t>(h)});
      ++i;
      ++current_hashes;
    }
    min_hashes_per_host_ = std::min(i, min_hashes_per_host_);
    max_hashes_per_host_ = std::max(i, max_hashes_per_host_);
  }

  SortRingEntries(entries, hashes_, hosts_);
}

std::vector<double> HashRing::HostShares(size_t host_count) const {
  std::vector<double> shares(host_count, 0.0);
  if (hashes_.empty()) return shares;
  if (hashes_.size() == 1) {
    shares[hosts_[0]] = 1.0;
    return shares;
  }
  constexpr double kHashSpace = 18446744073709551616.0;  // 2^64
  for (size_t i = 0; i < hashes_.size(); ++i) {
    // Unsigned wrap-around gives the first entry's arc across 2^64.
    const uint64_t arc = hashes_[i] - hashes_[i == 0 ? hashes_.size() - 1 : i - 1];
    shares[hosts_[i]] += static_cast<double>(arc) / kHashSpace;
  }
  return shares;
}

uint32_t HashRing::ChooseHost(uint64_t hash, uint32_t attempt) const {
  if (hashes_.empty()) return kNoHost;
  return hosts_[EntryIndex(hash, attempt)];
}

std::vector<double> HashRing::HostShares(uint32_t host_count) const {
  std::vector<double> shares(host_count, 0.0);
  if (hashes_.empty()) return shares;
  constexpr double kSpace = 18446744073709551616.0;  // 2^64
  // Entry i owns (hashes[i-1], hashes[i]]; entry 0 also owns the wrap past
  // the last entry.
  shares[hosts_[0]] +=
      static_cast<double>(hashes_[0]) + (kSpace - static_cast<double>(hashes_.back()));
  for (size_t i = 1; i < hashes_.size(); ++i) {
    shares[hosts_[i]] += static_cast<double>(hashes_[i] - hashes_[i - 1]);
  }
  for (double& share : shares) share /= kSpace;
  return shares;
}

size_t HashRing::EntryIndex(uint64_t hash, uint32_t attempt) const {
  // Envoy's ketama binary search returns the first entry with hash >= the
  // request hash, or entry 0 past the end: that is lower_bound with wrap.
  size_t index =
      PartitionPoint(hashes_.data(), hashes_.size(), [hash](uint64_t h) { return h < hash; });
  if (index == hashes_.size()) index = 0;
  // A retry behaves as if the entry were not there: move along the ring.
  if (attempt > 0) index = (index + attempt) % hashes_.size();
  return index;
}

RingHashStrategy::RingHashStrategy(std::vector<StrategyHost> hosts, uint64_t min_ring_size,
                                   uint64_t max_ring_size, HashFunction hash_function,
                                   uint32_t hash_balance_factor)
    : host_count_(static_cast<uint32_t>(hosts.size())),
      ring_(hosts, min_ring_size, max_ring_size, hash_function),
      bounded_load_(hash_balance_factor > 0
                        ? std::optional<BoundedLoad>(std::in_place, hosts, hash_balance_factor)
                        : std::nullopt) {}

uint32_t RingHashStrategy::Pick(const PickParams& params, PickState* /*state*/) const {
  if (host_count_ == 0) return kNoHost;
  return PickHashedAvoiding(host_count_, params, [&](uint64_t hash, uint32_t attempt) {
    const uint32_t host = ring_.ChooseHost(hash, attempt);
    if (!bounded_load_.has_value()) return host;
    return bounded_load_->Choose(host, hash, params.upstream_active_requests);
  });
}

std::optional<StrategyExplanation> RingHashStrategy::Explain(const PickParams& params,
                                                             bool random_hash,
                                                             PickState* /*state*/) const {
  StrategyExplanation out;
  if (host_count_ == 0) return out;
  if (random_hash) {
    const std::vector<double> shares = ring_.HostShares(host_count_);
    out.candidates = RandomCandidates(host_count_, params, [&](uint32_t h) { return shares[h]; });
    out.rule = "no request hash: a random point of the ring, each host by its share of the ring";
    return out;
  }
  out.deterministic = true;
  out.chosen = PickHashedAvoidingTraced(
      host_count_, params,
      [&](uint64_t hash, uint32_t attempt) {
        const size_t index = ring_.EntryIndex(hash, attempt);
        out.entry = index;
        out.entry_hash = ring_.hashes()[index];
        const uint32_t host = ring_.hosts()[index];
        if (!bounded_load_.has_value()) return host;
        return bounded_load_->ChooseTraced(host, hash, params.upstream_active_requests,
                                           [&](uint32_t h, double overload) {
                                             out.passed_over.push_back({h, false, overload});
                                           });
      },
      [&](uint32_t h) {
        out.passed_over.push_back({h, true, 0});
      });
  out.rule = "ring hash: the first of " + std::to_string(ring_.size()) +
             " ring entries at or after the request hash";
  return out;
}

StrategyStats RingHashStrategy::Stats() const {
  StrategyStats stats;
  stats.entries = ring_.size();
  stats.min_entries_per_host = ring_.min_hashes_per_host();
  stats.max_entries_per_host = ring_.max_hashes_per_host();
  stats.memory_bytes =
      ring_.memory_bytes() + (bounded_load_.has_value() ? bounded_load_->memory_bytes() : 0);
  return stats;
}

}  // namespace picker::core
