// Leases: the link between a Pick and its Release.
//
// Acquiring a lease raises its target's and its upstream's active-request
// counters; releasing or expiring it lowers them again, exactly once. Ids
// follow lease_id.h: the boot makes them unique across restarts, and each
// shard's sequence tells "never issued" (NOT_FOUND) from "already finished"
// without remembering every released id.
//
//   LeaseTable leases(boot);
//   std::optional<uint64_t> id = leases.Acquire(target, upstream, Millis(60000));
//   leases.Release(*id, upstream.get());      // kReleased
//   leases.Release(*id, upstream.get());      // kAlreadyReleased
//
// A picking thread opens its leases in a shard of its own (its ThreadSlot),
// so picks on different cores write no common memory; a release locks the
// shard that issued the lease. Expiry is driven from outside (the data
// plane's timer): NextDeadline says when, ExpireDue does it.
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
#include <optional>
#include <queue>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "server/core/lease_id.h"
#include "server/core/upstream.h"

namespace picker::core {

enum class LeaseState : uint8_t { kReleased, kAlreadyReleased, kExpired, kNeverIssued };

class LeaseTable {
 public:
  using Clock = std::chrono::steady_clock;

  // `boot` (1..LeaseId::kMaxBoot) must differ from every earlier run's.
  explicit LeaseTable(uint64_t boot);

  // Opens a lease on a target and raises the counters. nullopt only when
  // this boot has issued every id it can (2^40, lease_id.h): a restart
  // starts a new boot.
  std::optional<uint64_t> Acquire(std::shared_ptr<TargetLive> target,
                                  std::shared_ptr<UpstreamLive> upstream, Millis ttl);

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
  // upstream. Returns how many expired. Also drops here the deadlines that
  // released leases left behind.
  size_t ExpireDue(Clock::time_point now);
  // The earliest deadline held (possibly of a lease released since), or
  // Clock::time_point::max() when none.
  Clock::time_point NextDeadline() const;
  // Called (on the acquiring thread) when a lease's deadline comes before
  // the time given to PlanExpiry, so that the expiry timer wakes earlier.
  void OnEarlierDeadline(std::function<void()> wake) { wake_ = std::move(wake); }
  // The time the expiry timer will next call ExpireDue. The timer reads
  // NextDeadline again after it, so that a lease acquired meanwhile is
  // either seen there or wakes the timer.
  void PlanExpiry(Clock::time_point at);

  // Ends a lease at once on behalf of a client that went away (PickStream
  // ended); counted as abandoned. Returns false if it had already ended.
  bool Abandon(uint64_t lease_id);

  size_t active_count() const;
  // Deadlines held, of open leases and of released ones not yet dropped.
  size_t deadline_count() const;
  uint64_t boot() const { return boot_; }

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
    // The next sequence; only the threads that pick in this shard add to it.
    std::atomic<uint64_t> next_sequence{1};
    absl::flat_hash_map<uint64_t, Lease> open;
    std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines;
  };
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

  // The next id of the calling thread's shard, moving the thread to another
  // shard when its own has issued all it can.
  std::optional<LeaseId> NextId();
  static void Finish(Lease& lease);
  static void DropStaleDeadlines(Shard& shard);
  // The sum of `count` over the shards, each read under its lock.
  size_t SumOverShards(size_t (*count)(const Shard&)) const;
  void RememberExpired(uint64_t id);
  LeaseState StateOfClosed(const LeaseId& id, uint64_t raw) const;

  const uint64_t boot_;
  std::array<Shard, LeaseId::kShards> shards_;
  // Which shard each thread slot opens leases in; moves on only when a
  // shard's sequences run out.
  std::array<std::atomic<uint32_t>, LeaseId::kShards> shard_of_slot_;
  // When the expiry timer will next run (steady clock, ns since epoch).
  std::atomic<int64_t> planned_expiry_ns_{INT64_MAX};
  std::function<void()> wake_;

  mutable std::mutex expired_mu_;
  absl::flat_hash_set<uint64_t> expired_;
  std::deque<uint64_t> expired_order_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_LEASES_H_
