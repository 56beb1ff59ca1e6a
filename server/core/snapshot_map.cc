#include "server/core/snapshot_map.h"

#include <algorithm>

#include "server/core/changes.h"
#include "server/core/validate.h"

namespace picker::core {
namespace {

// Distinguishes maps in the per-thread cache, even one created at the
// address of a destroyed one.
std::atomic<uint64_t> next_map_id{1};

}  // namespace

// What a thread last read of the published map and of its slots' snapshots.
struct SnapshotMap::ThreadCache {
  uint64_t owner = 0;
  uint64_t map_version = 0;
  std::shared_ptr<const Map> map;
  struct Entry {
    uint64_t version = 0;
    std::shared_ptr<const UpstreamSnapshot> snapshot;
  };
  // Keyed by slots of `map`, which keeps them alive: cleared whenever the
  // map is read again, so a key is never a freed and reused slot.
  absl::flat_hash_map<const Slot*, Entry> snapshots;
};

void SnapshotMap::Slot::Publish(std::shared_ptr<const UpstreamSnapshot> next) {
  snapshot.store(std::move(next));
  version.fetch_add(1, std::memory_order_release);
}

SnapshotMap::SnapshotMap() : id_(next_map_id.fetch_add(1)) {
  map_.store(std::make_shared<const Map>());
}

SnapshotMap::ThreadCache& SnapshotMap::CurrentCache() const {
  thread_local ThreadCache cache;
  const uint64_t version = map_version_.load(std::memory_order_acquire);
  if (cache.owner != id_ || cache.map_version != version || !cache.map) {
    cache.map = map_.load();
    cache.map_version = version;
    cache.owner = id_;
    cache.snapshots.clear();
  }
  return cache;
}

std::shared_ptr<const UpstreamSnapshot> SnapshotMap::Find(absl::string_view name) const {
  // A thread keeps the last snapshot it read of each upstream alive until
  // it reads that upstream again or the map changes; snapshots are
  // immutable, so an old one is merely memory.
  ThreadCache& cache = CurrentCache();
  auto it = cache.map->by_name.find(name);
  if (it == cache.map->by_name.end()) return nullptr;
  const Slot* slot = it->second.get();
  const uint64_t version = slot->version.load(std::memory_order_acquire);
  ThreadCache::Entry& entry = cache.snapshots[slot];
  if (entry.version != version || !entry.snapshot) {
    // A Publish between the version read and this load leaves a newer
    // snapshot under the older version: read again next time, never stale.
    entry.snapshot = slot->snapshot.load();
    entry.version = version;
  }
  return entry.snapshot;
}

std::shared_ptr<const UpstreamSnapshot> SnapshotMap::FindUncached(absl::string_view name) const {
  const std::shared_ptr<const Map> map = map_.load();
  auto it = map->by_name.find(name);
  return it == map->by_name.end() ? nullptr : it->second->snapshot.load();
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> SnapshotMap::Get(
    absl::string_view name, absl::string_view field) const {
  if (absl::Status s = ValidateUpstreamName(name, field); !s.ok()) return s;
  std::shared_ptr<const UpstreamSnapshot> snapshot = Find(name);
  if (!snapshot) return UnknownUpstream(name);
  return snapshot;
}

std::vector<std::shared_ptr<const UpstreamSnapshot>> SnapshotMap::List() const {
  const std::shared_ptr<const Map> map = map_.load();
  std::vector<std::shared_ptr<const UpstreamSnapshot>> out;
  out.reserve(map->sorted.size());
  for (const auto& [name, slot] : map->sorted) out.push_back(slot->snapshot.load());
  return out;
}

std::vector<std::shared_ptr<const UpstreamSnapshot>> SnapshotMap::ListAfter(absl::string_view after,
                                                                            size_t limit) const {
  const std::shared_ptr<const Map> map = map_.load();
  auto it = std::upper_bound(
      map->sorted.begin(), map->sorted.end(), after,
      [](absl::string_view name, const auto& entry) { return name < entry.first; });
  std::vector<std::shared_ptr<const UpstreamSnapshot>> out;
  for (; it != map->sorted.end() && out.size() < limit; ++it) {
    out.push_back(it->second->snapshot.load());
  }
  return out;
}

size_t SnapshotMap::size() const { return map_.load()->sorted.size(); }

void SnapshotMap::PublishMap(std::shared_ptr<Map> map) {
  map->sorted.clear();
  map->sorted.reserve(map->by_name.size());
  for (const auto& [name, slot] : map->by_name) map->sorted.emplace_back(name, slot.get());
  std::sort(map->sorted.begin(), map->sorted.end());
  map_.store(std::move(map));
  map_version_.fetch_add(1, std::memory_order_release);
}

void SnapshotMap::Publish(std::vector<Named> snapshots) {
  const std::shared_ptr<const Map> current = map_.load();
  std::shared_ptr<Map> next;  // Only when an upstream is new.
  for (auto& [name, snapshot] : snapshots) {
    const Map& map = next ? *next : *current;
    auto it = map.by_name.find(name);
    if (it != map.by_name.end()) {
      it->second->Publish(std::move(snapshot));
      continue;
    }
    if (!next) next = std::make_shared<Map>(Map{current->by_name, {}});
    auto slot = std::make_shared<Slot>();
    slot->Publish(std::move(snapshot));
    next->by_name.emplace(name, std::move(slot));
  }
  if (next) PublishMap(std::move(next));
}

void SnapshotMap::Remove(const std::vector<std::string>& names) {
  if (names.empty()) return;
  auto next = std::make_shared<Map>(Map{map_.load()->by_name, {}});
  for (const std::string& name : names) {
    auto it = next->by_name.find(name);
    if (it == next->by_name.end()) continue;
    // Threads that cached the map before keep the slot: emptied, it keeps
    // the snapshot (a whole ring or table) alive no longer.
    it->second->Publish(nullptr);
    next->by_name.erase(it);
  }
  PublishMap(std::move(next));
}

}  // namespace picker::core
