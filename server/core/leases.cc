#include "server/core/leases.h"

#include "server/core/per_thread.h"

namespace picker::core {
namespace {

int64_t Nanos(LeaseTable::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

LeaseTable::LeaseTable(uint64_t boot) : boot_(boot & LeaseId::kMaxBoot) {
  for (uint32_t i = 0; i < LeaseId::kShards; ++i) shard_of_slot_[i].store(i);
}

std::optional<LeaseId> LeaseTable::NextId() {
  std::atomic<uint32_t>& own = shard_of_slot_[ThreadSlot() % LeaseId::kShards];
  const uint32_t first = own.load(std::memory_order_relaxed);
  for (uint32_t k = 0; k < LeaseId::kShards; ++k) {
    const uint32_t index = (first + k) % LeaseId::kShards;
    const uint64_t sequence = shards_[index].next_sequence.fetch_add(1, std::memory_order_relaxed);
    if (sequence <= LeaseId::kMaxSequence) {
      if (k > 0) own.store(index, std::memory_order_relaxed);
      return LeaseId{boot_, index, sequence};
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> LeaseTable::Acquire(std::shared_ptr<TargetLive> target,
                                            std::shared_ptr<UpstreamLive> upstream, Millis ttl) {
  const std::optional<LeaseId> lease = NextId();
  if (!lease) return std::nullopt;
  const uint64_t id = lease->Encode();
  target->active_requests.fetch_add(1, std::memory_order_relaxed);
  upstream->active_requests.fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point deadline = Clock::now() + ttl;
  {
    Shard& shard = shards_[lease->shard];
    std::lock_guard lock(shard.mu);
    shard.open.emplace(id, Lease{std::move(target), std::move(upstream), deadline});
    shard.deadlines.push(Deadline{deadline, id});
  }
  // Read-only while deadlines come after the planned expiry, as they do
  // under steady load with one TTL; only an earlier one wakes the timer.
  // (Sequentially consistent with PlanExpiry's store: either the timer's
  // NextDeadline after it sees this lease, or this load sees its plan.)
  if (Nanos(deadline) < planned_expiry_ns_.load()) {
    planned_expiry_ns_.store(Nanos(deadline));
    if (wake_) wake_();
  }
  return id;
}

void LeaseTable::PlanExpiry(Clock::time_point at) {
  planned_expiry_ns_.store(at == Clock::time_point::max() ? INT64_MAX : Nanos(at));
}

// Called under the lease's shard lock, so that a lease out of the table has
// its counts lowered already (active_count() and the counters agree).
void LeaseTable::Finish(Lease& lease) {
  lease.target->active_requests.fetch_sub(1, std::memory_order_relaxed);
  lease.upstream->active_requests.fetch_sub(1, std::memory_order_relaxed);
}

LeaseState LeaseTable::StateOfClosed(const LeaseId& id, uint64_t raw) const {
  // Ids no boot of this store can have issued: boot 0, sequence 0, a boot
  // still to come, or a sequence this boot's shard has not reached.
  if (id.boot == 0 || id.sequence == 0 || id.boot > boot_) return LeaseState::kNeverIssued;
  // Issued by an earlier run: the restart ended it.
  if (id.boot < boot_) return LeaseState::kExpired;
  if (id.sequence >= shards_[id.shard].next_sequence.load(std::memory_order_relaxed)) {
    return LeaseState::kNeverIssued;
  }
  std::lock_guard lock(expired_mu_);
  return expired_.contains(raw) ? LeaseState::kExpired : LeaseState::kAlreadyReleased;
}

LeaseTable::ReleaseResult LeaseTable::Release(uint64_t lease_id, const UpstreamLive* upstream) {
  const LeaseId id = LeaseId::Decode(lease_id);
  Shard& shard = shards_[id.shard];
  {
    std::unique_lock lock(shard.mu);
    auto it = shard.open.find(lease_id);
    if (it != shard.open.end()) {
      if (it->second.upstream.get() != upstream) return {LeaseState::kNeverIssued, {}, {}};
      Lease lease = std::move(it->second);
      shard.open.erase(it);
      Finish(lease);
      lock.unlock();
      return {LeaseState::kReleased, std::move(lease.target), std::move(lease.upstream)};
    }
  }
  return {StateOfClosed(id, lease_id), {}, {}};
}

bool LeaseTable::Abandon(uint64_t lease_id) {
  Shard& shard = shards_[LeaseId::Decode(lease_id).shard];
  std::unique_lock lock(shard.mu);
  auto it = shard.open.find(lease_id);
  if (it == shard.open.end()) return false;
  Lease lease = std::move(it->second);
  shard.open.erase(it);
  Finish(lease);
  lock.unlock();
  lease.upstream->counters.CountRelease(ReleaseOutcome::kAbandoned);
  return true;
}

size_t LeaseTable::ExpireDue(Clock::time_point now) {
  size_t expired = 0;
  std::vector<std::pair<uint64_t, Lease>> due;
  for (Shard& shard : shards_) {
    {
      std::lock_guard lock(shard.mu);
      while (!shard.deadlines.empty() && shard.deadlines.top().at <= now) {
        const uint64_t id = shard.deadlines.top().id;
        shard.deadlines.pop();
        auto it = shard.open.find(id);
        // Released leases leave their deadline behind; skip those.
        if (it == shard.open.end() || it->second.deadline > now) continue;
        Finish(it->second);
        due.emplace_back(id, std::move(it->second));
        shard.open.erase(it);
        // Remembered before the shard unlocks, so a concurrent Release
        // already answers EXPIRED.
        RememberExpired(id);
      }
      DropStaleDeadlines(shard);
    }
    for (auto& [id, lease] : due) {
      lease.upstream->counters.CountRelease(ReleaseOutcome::kExpired);
    }
    expired += due.size();
    due.clear();
  }
  return expired;
}

LeaseTable::Clock::time_point LeaseTable::NextDeadline() const {
  Clock::time_point next = Clock::time_point::max();
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    if (!shard.deadlines.empty()) next = std::min(next, shard.deadlines.top().at);
  }
  return next;
}

void LeaseTable::DropStaleDeadlines(Shard& shard) {
  if (shard.deadlines.size() <= 2 * shard.open.size() + kStaleDeadlineSlack) return;
  std::vector<Deadline> live;
  live.reserve(shard.open.size());
  for (const auto& [id, lease] : shard.open) live.push_back(Deadline{lease.deadline, id});
  // Built from a vector in linear time; the old heap's storage goes with it.
  shard.deadlines = decltype(shard.deadlines)(std::greater<>(), std::move(live));
}

void LeaseTable::RememberExpired(uint64_t id) {
  std::lock_guard lock(expired_mu_);
  if (expired_order_.size() == kExpiredMemory) {
    expired_.erase(expired_order_.front());
    expired_order_.pop_front();
  }
  expired_.insert(id);
  expired_order_.push_back(id);
}

size_t LeaseTable::SumOverShards(size_t (*count)(const Shard&)) const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += count(shard);
  }
  return n;
}

size_t LeaseTable::active_count() const {
  return SumOverShards([](const Shard& shard) { return shard.open.size(); });
}

size_t LeaseTable::deadline_count() const {
  return SumOverShards([](const Shard& shard) { return shard.deadlines.size(); });
}

}  // namespace picker::core
