// The registry: every upstream, the admin operations that change them, and
// the data-plane operations (Pick, Release) that read them.
//
// Concurrency: admin writes and health rebuilds are serialised by one writer
// mutex; each builds the touched upstream's new snapshot off to the side,
// writes the change to the Store, and only then publishes the snapshot with
// an atomic store. Picks never take the writer mutex: they find the upstream
// in an immutable map (published the same way) and read its current snapshot.
#ifndef PICKER_SERVER_CORE_REGISTRY_H_
#define PICKER_SERVER_CORE_REGISTRY_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/core/config.h"
#include "server/core/hash/hash_policy.h"
#include "server/core/leases.h"
#include "server/core/shared_ptr_cell.h"
#include "server/core/store.h"
#include "server/core/upstream.h"

namespace picker::core {

// PutTarget's input: fields left out keep their value on an existing target.
struct TargetPatch {
  std::string address;             // Any spelling; canonicalised.
  std::optional<uint32_t> weight;  // Unset keeps (or defaults to 100).
  std::string zone;                // Empty keeps.
  std::string hash_key;            // Empty keeps.
};

struct PickInput {
  absl::string_view upstream;
  const RequestAttributesView* attributes = nullptr;  // May be null.
  absl::string_view client_zone;
  absl::Span<const std::string* const> exclude;  // Addresses, any spelling.
  std::optional<uint64_t> hash;
};

struct PickOutput {
  std::shared_ptr<const UpstreamSnapshot> snapshot;  // Keeps `target` alive.
  const SnapshotTarget* target = nullptr;
  uint64_t lease_id = 0;
  Millis lease_ttl{0};
  std::optional<uint64_t> hash;  // Set for consistent-hashing strategies.
  std::vector<GeneratedCookie> cookies;
};

enum class Outcome : uint8_t { kSuccess, kFailure, kTimeout };

class Registry {
 public:
  struct Options {
    // How often leases are checked for expiry and ejections for their end.
    Millis maintenance_interval{20};
    // Limits; exceeding one is RESOURCE_EXHAUSTED and changes nothing.
    size_t max_upstreams = 100000;
    size_t max_targets_per_upstream = 100000;
    size_t max_hash_policies = 16;
    // Outstanding leases (active requests) per upstream.
    uint64_t max_leases_per_upstream = 1000000;
  };

  // Loads the store's state. `store` must outlive the registry.
  static absl::StatusOr<std::unique_ptr<Registry>> Open(Store* store, Options options);
  Registry(Store* store, uint64_t epoch, Options options);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Admin operations. Each validates, writes to the store, then publishes;
  // a rejected request changes nothing.
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> CreateUpstream(UpstreamConfig config);
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> UpdateUpstream(UpstreamConfig config);
  absl::Status DeleteUpstream(absl::string_view name);
  absl::StatusOr<TargetConfig> PutTarget(absl::string_view upstream, const TargetPatch& patch);
  absl::Status DeleteTarget(absl::string_view upstream, absl::string_view address);
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> ReplaceTargets(
      absl::string_view upstream, std::vector<TargetConfig> targets);
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> SetTargetHealth(
      absl::string_view upstream, absl::string_view address, HealthOverride health_override);

  // Group commit for the admin writer thread: the writes it makes between
  // the two calls are staged by the store and made durable together by
  // CommitStoreBatch (see Store::BeginBatch). They are published as they
  // are made, so picks may use a change a few milliseconds before it is
  // durable; it is acknowledged only after.
  void BeginStoreBatch() { store_->BeginBatch(); }
  absl::Status CommitStoreBatch() { return store_->CommitBatch(); }

  // Reads. Find is lock-free; List takes the writer mutex (admin only).
  std::shared_ptr<const UpstreamSnapshot> Find(absl::string_view name) const;
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Get(absl::string_view name) const;
  std::vector<std::shared_ptr<const UpstreamSnapshot>> List() const;

  // Data plane.
  absl::StatusOr<PickOutput> Pick(const PickInput& input);
  absl::StatusOr<LeaseState> Release(absl::string_view upstream, uint64_t lease_id, Outcome outcome,
                                     std::optional<std::chrono::nanoseconds> latency);
  // Ends a lease whose client went away (counted as abandoned).
  bool Abandon(uint64_t lease_id) { return leases_.Abandon(lease_id); }

  // Health inputs of an upstream's targets changed outside admin writes (an
  // active check flipped TargetLive::active_unhealthy): rebuild its snapshot
  // soon, on the maintenance thread. Unknown names are ignored.
  void MarkHealthChanged(absl::string_view upstream);

  // Runs one round of maintenance now (the background thread also does).
  void RunMaintenance();

  LeaseTable& leases() { return leases_; }

 private:
  // One upstream's slot in the published map; its snapshot changes in place.
  // `version` moves after each new snapshot, so that a thread that cached
  // the previous one knows to read the cell again (see Find).
  struct Slot {
    SharedPtrCell<const UpstreamSnapshot> snapshot;
    std::atomic<uint64_t> version{0};

    void Publish(std::shared_ptr<const UpstreamSnapshot> next) {
      snapshot.store(std::move(next));
      version.fetch_add(1, std::memory_order_release);
    }
  };
  using SlotMap = absl::flat_hash_map<std::string, std::shared_ptr<Slot>>;

  // What admin writes own, under mu_.
  struct UpstreamState {
    UpstreamConfig config;
    std::vector<TargetEntry> targets;
    std::shared_ptr<UpstreamLive> live;
    std::shared_ptr<Slot> slot;
  };

  absl::StatusOr<UpstreamState*> StateOf(absl::string_view name);
  absl::Status CheckLimits(const UpstreamConfig& config) const;
  absl::Status CheckTargetCount(size_t count) const;
  UpstreamRecord RecordOf(const UpstreamConfig& config,
                          const std::vector<TargetEntry>& targets) const;
  // Builds and publishes every upstream's first snapshot (Open), on all
  // cores. Requires mu_.
  void BuildAllSnapshots();
  std::shared_ptr<const UpstreamSnapshot> BuildSnapshot(const UpstreamConfig& config,
                                                        const std::vector<TargetEntry>& targets,
                                                        const std::shared_ptr<UpstreamLive>& live);
  // Persists, then applies and publishes a new state for `state`.
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Commit(UpstreamState& state,
                                                                 UpstreamConfig config,
                                                                 std::vector<TargetEntry> targets);
  void PublishMap();
  // What a thread last read of the published map and of its slots' snapshots.
  struct ThreadCache {
    uint64_t registry_id = 0;
    uint64_t map_version = 0;
    std::shared_ptr<const SlotMap> map;
    struct Entry {
      uint64_t version = 0;
      std::shared_ptr<const UpstreamSnapshot> snapshot;
    };
    // Keyed by slots of `map`, which keeps them alive: cleared whenever the
    // map is read again, so a key is never a freed and reused slot.
    absl::flat_hash_map<const Slot*, Entry> snapshots;
  };
  // This thread's cache, with the map brought up to date.
  ThreadCache& CurrentCache() const;

  // Passive health: counts an outcome against the target, ejecting it when
  // it reaches the limit.
  void RecordOutcome(const UpstreamSnapshot& snapshot, const std::shared_ptr<TargetLive>& target,
                     Outcome outcome);
  void RebuildDue(WallTime now);
  void MaintenanceLoop();

  const uint64_t id_;  // Unique per registry, for the per-thread map cache.
  Store* const store_;
  const Options options_;
  LeaseTable leases_;

  mutable std::mutex mu_;  // Admin writes and rebuilds.
  std::map<std::string, UpstreamState, std::less<>> states_;

  SharedPtrCell<const SlotMap> map_;
  std::atomic<uint64_t> map_version_{0};

  // Upstreams whose health changed on the data plane and need a rebuild.
  std::mutex dirty_mu_;
  absl::flat_hash_set<UpstreamLive*> dirty_;

  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool stopping_ = false;
  std::thread maintenance_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_REGISTRY_H_
