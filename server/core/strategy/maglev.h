// Maglev, as Envoy's MaglevLoadBalancer.
#ifndef PICKER_SERVER_CORE_STRATEGY_MAGLEV_H_
#define PICKER_SERVER_CORE_STRATEGY_MAGLEV_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "server/core/strategy/bounded_load.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

// The lookup table, filled exactly as Envoy's MaglevTable (weighted variant
// of the paper's listing 1), storing host indices in the narrowest integer
// that fits the host count: 1 byte per slot up to 256 hosts, 2 up to 65536,
// else 4. A 65537-slot table for 100 hosts takes 64 KiB.
class MaglevTable {
 public:
  // `table_size` must be prime (validated upstream).
  MaglevTable(const std::vector<StrategyHost>& hosts, uint64_t table_size);

  // table[hash % M]; a retry first perturbs the hash with
  // `hash ^= ~0 - attempt + 1`, as Envoy. kNoHost when built from no host.
  uint32_t ChooseHost(uint64_t hash, uint32_t attempt) const;
  // The slot ChooseHost reads.
  uint64_t Slot(uint64_t hash, uint32_t attempt) const;

  // The host at a slot (tests, debugging). Requires slot < table_size().
  uint32_t SlotHost(uint64_t slot) const;

  uint64_t table_size() const { return table_size_; }
  // Slots per host, indexed by host.
  const std::vector<uint64_t>& entries_per_host() const { return entries_per_host_; }
  // Bytes of one table slot (1, 2 or 4; 0 when no table is stored).
  size_t slot_bytes() const;
  size_t memory_bytes() const;

 private:
  uint64_t table_size_;
  uint32_t host_count_;
  // Exactly one of these holds the table (none for zero or one host: one
  // host owns every slot, so nothing is stored, like Envoy's
  // DegenerateMaglevTable).
  std::vector<uint8_t> table8_;
  std::vector<uint16_t> table16_;
  std::vector<uint32_t> table32_;
  std::vector<uint64_t> entries_per_host_;
};

class MaglevStrategy final : public Strategy {
 public:
  // `hash_balance_factor` 0 turns bounded load off.
  MaglevStrategy(std::vector<StrategyHost> hosts, uint64_t table_size,
                 uint32_t hash_balance_factor);

  uint32_t Pick(const PickParams& params, PickState* state) const override;
  StrategyStats Stats() const override;
  // Slots per host over the table size (1 for a lone host, which owns all).
  std::vector<double> HashShares() const override;
  // The table slot of the hash (after retries and bounded load), or, for a
  // random hash, each host's share of the slots.
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                             PickState* state) const override;

  const MaglevTable& table() const { return table_; }

 private:
  const uint32_t host_count_;
  const MaglevTable table_;
  const std::optional<BoundedLoad> bounded_load_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_MAGLEV_H_
