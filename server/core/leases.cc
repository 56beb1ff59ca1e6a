#include "server/core/leases.h"

namespace picker::core {

LeaseTable::LeaseTable(uint64_t epoch)
    : epoch_(epoch & ((uint64_t{1} << (64 - kSequenceBits)) - 1)) {}

uint64_t LeaseTable::Acquire(std::shared_ptr<TargetLive> target,
                             std::shared_ptr<UpstreamLive> upstream, Millis ttl) {
  const uint64_t sequence = next_sequence_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t id = (epoch_ << kSequenceBits) | sequence;
  target->active_requests.fetch_add(1, std::memory_order_relaxed);
  upstream->active_requests.fetch_add(1, std::memory_order_relaxed);
  const Clock::time_point deadline = Clock::now() + ttl;
  Shard& shard = ShardOf(id);
  std::lock_guard lock(shard.mu);
  shard.open.emplace(id, Lease{std::move(target), std::move(upstream), deadline});
  shard.deadlines.push(Deadline{deadline, id});
  return id;
}

void LeaseTable::Finish(Lease& lease) {
  lease.target->active_requests.fetch_sub(1, std::memory_order_relaxed);
  lease.upstream->active_requests.fetch_sub(1, std::memory_order_relaxed);
}

LeaseTable::ReleaseResult LeaseTable::Release(uint64_t lease_id, const UpstreamLive* upstream) {
  Shard& shard = ShardOf(lease_id);
  {
    std::unique_lock lock(shard.mu);
    auto it = shard.open.find(lease_id);
    if (it != shard.open.end()) {
      if (it->second.upstream.get() != upstream) return {LeaseState::kNeverIssued, {}, {}};
      Lease lease = std::move(it->second);
      shard.open.erase(it);
      lock.unlock();
      Finish(lease);
      return {LeaseState::kReleased, std::move(lease.target), std::move(lease.upstream)};
    }
  }
  const uint64_t epoch = lease_id >> kSequenceBits;
  const uint64_t sequence = lease_id & ((uint64_t{1} << kSequenceBits) - 1);
  if (sequence == 0 || epoch > epoch_ ||
      (epoch == epoch_ && sequence >= next_sequence_.load(std::memory_order_relaxed))) {
    return {LeaseState::kNeverIssued, {}, {}};
  }
  // Issued by an earlier run: the restart ended it.
  if (epoch < epoch_) return {LeaseState::kExpired, {}, {}};
  std::lock_guard lock(expired_mu_);
  return {
      expired_.contains(lease_id) ? LeaseState::kExpired : LeaseState::kAlreadyReleased, {}, {}};
}

bool LeaseTable::Abandon(uint64_t lease_id) {
  Shard& shard = ShardOf(lease_id);
  std::unique_lock lock(shard.mu);
  auto it = shard.open.find(lease_id);
  if (it == shard.open.end()) return false;
  Lease lease = std::move(it->second);
  shard.open.erase(it);
  lock.unlock();
  Finish(lease);
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
        due.emplace_back(id, std::move(it->second));
        shard.open.erase(it);
        // Remembered before the shard unlocks, so a concurrent Release
        // already answers EXPIRED.
        RememberExpired(id);
      }
      DropStaleDeadlines(shard);
    }
    for (auto& [id, lease] : due) {
      Finish(lease);
      lease.upstream->counters.CountRelease(ReleaseOutcome::kExpired);
    }
    expired += due.size();
    due.clear();
  }
  return expired;
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
