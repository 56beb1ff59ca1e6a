// The published upstreams: name -> current snapshot, read by every pick
// without a lock, written by one writer (the control plane).
//
//   SnapshotMap snapshots;
//   snapshots.Publish({{"users", snapshot}});        // writer
//   std::shared_ptr<const UpstreamSnapshot> s = snapshots.Find("users");  // pick
//
// Each upstream has a slot whose snapshot is replaced in place; the map of
// slots itself is replaced only when upstreams come or go. A reader keeps
// in a per-thread cache the map and the snapshots it last read, and goes
// to the shared cells (a spin lock held for a pointer copy) only when a
// version moved: in the steady state a pick takes no lock at all.
#ifndef PICKER_SERVER_CORE_SNAPSHOT_MAP_H_
#define PICKER_SERVER_CORE_SNAPSHOT_MAP_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/shared_ptr_cell.h"
#include "server/core/upstream.h"

namespace picker::core {

// Told of every snapshot the writer publishes, on its thread, in order (the
// prober follows the upstreams this way): it must be quick, and must not
// wait for the writer.
class PublishListener {
 public:
  virtual ~PublishListener() = default;
  // `snapshot` is null when the upstream was deleted.
  virtual void OnPublished(const std::string& name,
                           const std::shared_ptr<const UpstreamSnapshot>& snapshot) = 0;
};

class SnapshotMap {
 public:
  SnapshotMap();
  SnapshotMap(const SnapshotMap&) = delete;
  SnapshotMap& operator=(const SnapshotMap&) = delete;

  // Readers, on any thread, lock-free in the steady state.
  std::shared_ptr<const UpstreamSnapshot> Find(absl::string_view name) const;
  // Find without the per-thread cache (a lock held for a pointer copy), for
  // threads that read now and then (HTTP admin handlers): they keep no
  // snapshot alive between reads.
  std::shared_ptr<const UpstreamSnapshot> FindUncached(absl::string_view name) const;
  // Find for a request field: INVALID_ARGUMENT for a name no upstream can
  // have, NOT_FOUND for one that no upstream has.
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Get(absl::string_view name,
                                                              absl::string_view field) const;
  // Every upstream's current snapshot, by name.
  std::vector<std::shared_ptr<const UpstreamSnapshot>> List() const;
  // At most `limit` upstreams whose names follow `after`, by name: a page
  // of List without copying the rest.
  std::vector<std::shared_ptr<const UpstreamSnapshot>> ListAfter(absl::string_view after,
                                                                 size_t limit) const;
  size_t size() const;

  // The writer: publishes new snapshots (of new upstreams or existing
  // ones) and removes upstreams, each call in one step for readers.
  using Named = std::pair<std::string, std::shared_ptr<const UpstreamSnapshot>>;
  void Publish(std::vector<Named> snapshots);
  void Remove(const std::vector<std::string>& names);

 private:
  // One upstream's slot; its snapshot changes in place. `version` moves
  // after each new snapshot, so that a thread that cached the previous one
  // knows to read the cell again.
  struct Slot {
    SharedPtrCell<const UpstreamSnapshot> snapshot;
    std::atomic<uint64_t> version{0};
    void Publish(std::shared_ptr<const UpstreamSnapshot> next);
  };
  struct Map {
    absl::flat_hash_map<std::string, std::shared_ptr<Slot>> by_name;
    std::vector<std::pair<std::string, const Slot*>> sorted;  // For List.
  };
  struct ThreadCache;
  ThreadCache& CurrentCache() const;
  void PublishMap(std::shared_ptr<Map> map);

  const uint64_t id_;  // Tells maps apart in the per-thread cache.
  SharedPtrCell<const Map> map_;
  std::atomic<uint64_t> map_version_{0};
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_SNAPSHOT_MAP_H_
