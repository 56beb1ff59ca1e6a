// RingHash (ketama), as Envoy's RingHashLoadBalancer.
#ifndef PICKER_SERVER_CORE_STRATEGY_RING_HASH_H_
#define PICKER_SERVER_CORE_STRATEGY_RING_HASH_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "server/core/config.h"
#include "server/core/strategy/bounded_load.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

// One entry of the ring before it is sorted: the hash of "<key>_<i>" and
// the host it belongs to.
struct RingEntry {
  uint64_t hash;
  uint32_t host;
};

// Writes `entries` sorted by hash into `hashes` and `hosts` (the ring's
// sort step, declared here for its tests).
//
// Ring hashes are uniformly spread 64-bit values, so their top bits place
// each entry close to its final position: entries are counted and scattered
// into n/8 to n/4 buckets by their top bits, then each bucket (about eight
// entries) is insertion-sorted. That is three linear passes, where
// std::sort's log2(n) ~ 16 passes of unpredictable comparisons took 60% of a
// 65536-entry build (one bucket per entry measured slower than eight). A
// bucket that is not small, from keys that are not spread (hashing does not
// produce them), falls back to std::stable_sort, so the worst case stays
// O(n log n). Equal hashes keep host order (Envoy leaves their order
// undefined; with 64-bit hashes they do not occur in practice).
void SortRingEntries(const std::vector<RingEntry>& entries, std::vector<uint64_t>& hashes,
                     std::vector<uint32_t>& hosts);

// The sorted ring. Built exactly as Envoy's RingHashLoadBalancer::Ring: the
// same entries, the same hashes, the same order, so a key maps to the same
// host as in Envoy given the same hosts in the same order.
class HashRing {
 public:
  HashRing(const std::vector<StrategyHost>& hosts, uint64_t min_ring_size, uint64_t max_ring_size,
           HashFunction hash_function);

  // The host of the first entry whose hash is >= `hash` (wrapping to the
  // first entry), moved `attempt` entries further along the ring, as Envoy's
  // Ring::chooseHost. kNoHost for an empty ring.
  uint32_t ChooseHost(uint64_t hash, uint32_t attempt) const;
  // The index of the entry ChooseHost reads. Requires a non-empty ring.
  size_t EntryIndex(uint64_t hash, uint32_t attempt) const;
  // Each host's share of the hash space: the arcs that end at its entries.
  std::vector<double> HostShares(uint32_t host_count) const;

  size_t size() const { return hashes_.size(); }
  // The sorted entry hashes and the host of each entry (tests, debugging).
  const std::vector<uint64_t>& hashes() const { return hashes_; }
  const std::vector<uint32_t>& hosts() const { return hosts_; }
  uint64_t min_hashes_per_host() const { return min_hashes_per_host_; }
  uint64_t max_hashes_per_host() const { return max_hashes_per_host_; }
  // The share of the hash space each host's entries own, by host index: an
  // entry takes the hashes after the previous entry up to its own (the
  // first one also those after the last), as ChooseHost sends them.
  std::vector<double> HostShares(size_t host_count) const;
  size_t memory_bytes() const {
    return hashes_.capacity() * sizeof(uint64_t) + hosts_.capacity() * sizeof(uint32_t);
  }

 private:
  // Struct of arrays: the binary search touches only the hashes (8 bytes an
  // entry), and host indices cost 4 bytes instead of a 16-byte shared_ptr.
  std::vector<uint64_t> hashes_;
  std::vector<uint32_t> hosts_;
  uint64_t min_hashes_per_host_ = 0;
  uint64_t max_hashes_per_host_ = 0;
};

class RingHashStrategy final : public Strategy {
 public:
  // `hash_balance_factor` 0 turns bounded load off.
  RingHashStrategy(std::vector<StrategyHost> hosts, uint64_t min_ring_size, uint64_t max_ring_size,
                   HashFunction hash_function, uint32_t hash_balance_factor);

  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  std::vector<double> HashShares() const override { return ring_.HostShares(host_count_); }
  // The ring entry of the hash (after retries and bounded load), or, for a
  // random hash, each host's share of the ring.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

  const HashRing& ring() const { return ring_; }

 private:
  const uint32_t host_count_;
  const HashRing ring_;
  const std::optional<BoundedLoad> bounded_load_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_RING_HASH_H_
