// The layout of a lease id, the one place it is defined.
//
//    63                 40 39       34 33                                0
//   +---------------------+-----------+----------------------------------+
//   |      boot (24)      | shard (6) |          sequence (34)           |
//   +---------------------+-----------+----------------------------------+
//
// - boot: the number the store hands out at each start of a server (its
//   boot counter, never 0). Ids are unique across restarts because boots
//   are. Where several replicas share one store, they share its boot
//   counter, so the boot also names the replica that issued the lease.
// - shard: the lease table's shard that issued it. Each picking thread
//   takes its leases from a shard of its own, so that picks on different
//   cores share no sequence counter.
// - sequence: 1, 2, ... within the shard; 0 is never issued.
//
// The layout before shards (boot << 40 | sequence) reads the same way, so a
// lease of an earlier release's boot still answers EXPIRED.
//
//   LeaseId id = LeaseId::Decode(12345);   // boot 0: never issued
#ifndef PICKER_SERVER_CORE_LEASE_ID_H_
#define PICKER_SERVER_CORE_LEASE_ID_H_

#include <cstdint>

namespace picker::core {

struct LeaseId {
  static constexpr int kSequenceBits = 34;
  static constexpr int kShardBits = 6;
  static constexpr int kBootBits = 64 - kShardBits - kSequenceBits;
  static constexpr uint64_t kMaxSequence = (uint64_t{1} << kSequenceBits) - 1;
  static constexpr uint32_t kShards = 1u << kShardBits;
  static constexpr uint64_t kMaxBoot = (uint64_t{1} << kBootBits) - 1;

  uint64_t boot = 0;
  uint32_t shard = 0;
  uint64_t sequence = 0;

  uint64_t Encode() const {
    return (boot << (kShardBits + kSequenceBits)) | (uint64_t{shard} << kSequenceBits) | sequence;
  }
  static LeaseId Decode(uint64_t id) {
    return LeaseId{id >> (kShardBits + kSequenceBits),
                   static_cast<uint32_t>((id >> kSequenceBits) & (kShards - 1)), id & kMaxSequence};
  }
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_LEASE_ID_H_
