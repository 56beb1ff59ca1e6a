// Leases: the link between a Pick and its Release.
//
// Acquiring a lease raises its target's and its upstream's active-request
// counters; releasing or expiring it lowers them again, exactly once. Lease
// ids are `epoch << 40 | sequence`: the epoch is a boot counter kept by the
// store, so ids are unique across restarts, and the sequence tells "never
// issued" (NOT_FOUND) from "already finished" without remembering every
// released id.
#ifndef PICKER_SERVER_CORE_LEASES_H_
#define PICKER_SERVER_CORE_LEASES_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "server/core/upstream.h"

namespace picker::core {

enum class LeaseState : uint8_t { kReleased, kAlreadyReleased, kExpired, kNeverIssued };

class LeaseTable {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kSequenceBits = 40;

  // `epoch` must differ from every earlier run's (the store's boot counter).
  explicit LeaseTable(uint64_t epoch);

  // Opens a lease on a target and raises the counters. Never fails.
  uint64_t Acquire(std::shared_ptr<TargetLive> target, std::shared_ptr<UpstreamLive> upstream,
                   Millis ttl);

  struct ReleaseResult {
    LeaseState state;
    // The lease's target and upstream, set when state is kReleased, so the
    // caller can feed passive health and metrics.
    std::shared_ptr<TargetLive> target;
    std::shared_ptr<UpstreamLive> upstream;
  };
  // Ends a lease. `upstream` must be the live state of the upstream the
  // client named: a lease of another upstream counts as never issued there.
  ReleaseResult Release(uint64_t lease_id, const UpstreamLive* upstream);

  // Expires every lease whose deadline has passed and counts it on its
  // upstream. Returns how many expired. Called by a background thread, which
  // also drops here the deadlines that released leases left behind.
  size_t ExpireDue(Clock::time_point now);

  // Ends a lease at once on behalf of a client that went away (PickStream
  // ended); counted as abandoned. Returns false if it had already ended.
  bool Abandon(uint64_t lease_id);

  size_t active_count() const;
  // Deadlines held, of open leases and of released ones not yet dropped.
  size_t deadline_count() const;
  uint64_t epoch() const { return epoch_; }

 private:
  struct Lease {
    std::shared_ptr<TargetLive> target;
    std::shared_ptr<UpstreamLive> upstream;
    Clock::time_point deadline;
  };
  struct Deadline {
    Clock::time_point at;
    uint64_t id;
    bool operator>(const Deadline& other) const { return at > other.at; }
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<uint64_t, Lease> open;
    std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines;
  };
  static constexpr size_t kShards = 32;
  // A release leaves its lease's deadline in the heap (removing it would
  // cost the release a heap search). ExpireDue rebuilds a shard's heap from
  // its open leases once it holds more than twice as many deadlines as open
  // leases plus this slack: at 50,000 picks a second with the default TTL
  // of a minute the heaps would otherwise keep 3 million stale deadlines,
  // and the slack keeps the rebuilds rare and small when few leases are open.
  static constexpr size_t kStaleDeadlineSlack = 1024;
  // Expired ids remembered so a late Release can answer EXPIRED; older
  // expiries answer ALREADY_RELEASED.
  static constexpr size_t kExpiredMemory = 1 << 20;

  Shard& ShardOf(uint64_t id) { return shards_[id % kShards]; }
  static void Finish(Lease& lease);
  static void DropStaleDeadlines(Shard& shard);
  // The sum of `count` over the shards, each read under its lock.
  size_t SumOverShards(size_t (*count)(const Shard&)) const;
  void RememberExpired(uint64_t id);

  const uint64_t epoch_;
  std::atomic<uint64_t> next_sequence_{1};
  std::array<Shard, kShards> shards_;

  std::mutex expired_mu_;
  absl::flat_hash_set<uint64_t> expired_;
  std::deque<uint64_t> expired_order_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_LEASES_H_
