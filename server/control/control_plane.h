// The control plane: the one writer of picker's configuration.
//
// Every change takes one way: a write is validated (core/changes.h),
// committed to the store with the writes queued beside it (group commit),
// and comes back through the store's change feed; the control plane builds
// the upstream's snapshot from what the feed says and publishes it into
// the SnapshotMap that picks read. A change committed by another writer of
// the store (a replica sharing it, a test) arrives the same way and is
// served exactly as a local one. A write is answered only once the
// snapshot that contains it is published, so a client that writes and then
// picks sees its write.
//
//   auto control = ControlPlane::Start(store, snapshots, stats, {});
//   absl::StatusOr<WriteResult> w = (*control)->Write(core::PutTarget{...});
//
// Health changes that no write makes (an ejection, an active check) and
// their ends (a timer queue), and the ends of slow starts, rebuild the
// snapshot on the same thread; WeightedRoundRobin's weights are refreshed
// there on a timer too, without a rebuild.
// Listeners (the prober) learn of each publication.
//
// Folder: server/control owns the writer thread, group commit, the
// durability policy, and the building and publishing of snapshots. It may
// use core/ only.
#ifndef PICKER_SERVER_CONTROL_CONTROL_PLANE_H_
#define PICKER_SERVER_CONTROL_CONTROL_PLANE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "server/core/changes.h"
#include "server/core/health_events.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/core/store.h"
#include "server/core/upstream.h"

namespace picker::control {

// What a write did.
struct WriteResult {
  // The store's revision once the write was committed.
  uint64_t revision = 0;
  // The record the write stored; null for a deletion.
  core::RecordPtr record;
  // The upstream's snapshot published with it (or after it); null once
  // the upstream is deleted. For a dry run: the snapshot the change would
  // publish, built but not published.
  std::shared_ptr<const core::UpstreamSnapshot> snapshot;
  // A dry run (validate_only, Preview): nothing was stored, `revision` is
  // the one the change was checked at, and `before` is the snapshot
  // published then (null when the upstream does not exist).
  bool dry_run = false;
  std::shared_ptr<const core::UpstreamSnapshot> before;
};

// How a change is submitted.
struct SubmitOptions {
  // Checks the change against the stored state and builds what it would
  // store and publish, answers with it, and changes nothing (AIP-163's
  // validate_only): no store write, no new revision, no publication.
  bool validate_only = false;
};

class ControlPlane final : public core::HealthEvents, private core::StoreWatcher {
 public:
  struct Options {
    core::Limits limits;
    // Writes committed together at most, so that the first one's answer
    // does not wait on an unbounded queue behind it.
    size_t max_batch = 64;
    // Attempts of a write whose upstream another writer changed meanwhile
    // (each after the feed brought news, or 100 ms).
    int max_attempts = 10;
  };

  // Loads the store, publishes every upstream's first snapshot (built on
  // every core) and starts the writer. `store`, `snapshots` and `stats`
  // must outlive the control plane.
  static absl::StatusOr<std::unique_ptr<ControlPlane>> Start(core::Store& store,
                                                             core::SnapshotMap& snapshots,
                                                             core::WriterStats& stats,
                                                             Options options);
  // Answers the writes already queued, then stops the writer.
  ~ControlPlane() override;
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  using Done = std::function<void(absl::StatusOr<WriteResult>)>;
  // Queues a change; `done` runs on the writer thread once the change's
  // snapshot is published, or it failed. Stateless checks run at once, on
  // the caller's thread (PrepareChange).
  void Submit(core::Change change, Done done, SubmitOptions options = {});
  // A dry run of several changes to one upstream applied in order, each on
  // the result of the one before (PreviewChange): answered as a
  // validate_only Submit of the last one.
  void Preview(std::vector<core::Change> changes, Done done);
  // Submit, and wait for the answer.
  absl::StatusOr<WriteResult> Write(core::Change change, SubmitOptions options = {});

  // HealthEvents: rebuilds the upstream's snapshot on the writer thread.
  void HealthChanged(const std::string& upstream) override;

  // The listener first hears of every upstream there is, then of every
  // publication, until removed. Both wait for the writer thread.
  void AddListener(core::PublishListener* listener);
  void RemoveListener(core::PublishListener* listener);

  // Catches up with the store after its watch was lost: resumes after the
  // last revision applied, or loads the whole state again when the store
  // answers compacted. Waits until done.
  absl::Status Resync();

  // The store revision of the last change applied.
  uint64_t revision() const;
  const Options& options() const { return options_; }

 private:
  struct Upstream;
  struct Pending;
  using Clock = std::chrono::steady_clock;

  ControlPlane(core::Store& store, core::SnapshotMap& snapshots, core::WriterStats& stats,
               Options options);
  void OnChanges(const std::vector<core::StoreEvent>& events) override;
  void OnWatchLost() override;

  // The writer thread.
  void Loop();
  // Runs `task` on the writer thread and waits for it.
  void RunOnWriter(std::function<void()> task);
  // Commits a batch of writes together, then applies and answers them.
  void RunBatch(std::vector<Pending> batch);
  // Answers a dry run: applies its changes to `current` and builds the
  // snapshot they would publish, without staging anything.
  void DryRun(Pending& pending, const core::UpstreamRecord* current, size_t upstream_count);
  // Stages one write of a batch. False when it must wait for the feed and
  // be tried again (another writer changed its upstream).
  bool Stage(Pending& pending, std::map<std::string, core::RecordPtr>& staged,
             std::vector<std::pair<Pending, uint64_t>>& answers);
  // Applies changes from the feed in revision order and publishes them.
  void Apply(std::vector<core::StoreEvent> events);
  // Replaces the applied state with a whole state the store loaded.
  void Reconcile(core::StoreState state);
  // Answers the writes whose revision has been applied.
  void AnswerApplied();
  // Builds snapshots of `names` again from their stored state (health
  // changes, ejection ends) and publishes them.
  void Rebuild(const std::vector<std::string>& names);
  std::shared_ptr<const core::UpstreamSnapshot> Build(Upstream& upstream);
  void Publish(std::vector<core::SnapshotMap::Named> built, std::vector<std::string> removed);
  // Queues the snapshot's timers: its next rebuild (an ejection or a slow
  // start that ends) and, for strategies that want it, its weight refresh.
  void ArmTimers(const Upstream& upstream);
  // Rebuilds the upstreams whose ejections or slow starts have ended and
  // refreshes the weights that are due; returns when the next timer is due.
  Clock::time_point RunTimers();
  // Refreshes the weights of the upstreams whose refresh is due (every
  // weight_update_period of WeightedRoundRobin), without a rebuild.
  void RefreshDue(core::WallTime now);
  void Fail(Pending& pending, absl::Status status);

  core::Store& store_;
  core::SnapshotMap& snapshots_;
  core::WriterStats& stats_;
  const Options options_;

  // The writer thread's own state.
  std::map<std::string, Upstream, std::less<>> upstreams_;
  uint64_t applied_revision_ = 0;
  std::deque<std::pair<uint64_t, Pending>> unanswered_;  // By revision.
  std::vector<core::PublishListener*> listeners_;
  using Timer = std::pair<core::WallTime, std::string>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  // Weight refreshes: one timer per upstream that wants one, re-armed each
  // period while its snapshot's strategy still does.
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> refresh_timers_;
  absl::flat_hash_set<std::string> refreshing_;

  // What other threads hand to the writer.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> writes_;
  std::vector<core::StoreEvent> events_;
  absl::flat_hash_set<std::string> unhealthy_;  // HealthChanged names.
  std::vector<std::function<void()>> tasks_;
  std::atomic<uint64_t> revision_{0};
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace picker::control

#endif  // PICKER_SERVER_CONTROL_CONTROL_PLANE_H_
