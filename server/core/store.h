// Where admin state is kept, and the ordered feed of its changes.
//
// Every committed change has a revision, and revisions only grow, across
// restarts too. A reader loads the whole state at a revision and watches
// the changes after it; a watcher that comes back (after a restart, a lost
// connection) asks for the changes after the revision it last saw, and
// when the store no longer has them it is told "compacted" and loads the
// whole state again, as an etcd watch does:
//
//   absl::StatusOr<StoreState> state = store.Load(&watcher);   // then events
//   store.Unwatch(&watcher);
//   absl::Status resumed = store.Watch(last_seen, &watcher);
//   if (IsCompacted(resumed)) state = store.Load(&watcher);
//
// The control plane is such a reader: it applies its own writes and those
// of any other writer (another replica on a shared store) through the feed
// alike. The embedded file store (server/store) and, with replicas, a
// shared store stand behind this interface.
#ifndef PICKER_SERVER_CORE_STORE_H_
#define PICKER_SERVER_CORE_STORE_H_

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/record.h"

namespace picker::core {

// A change the store committed, as its watchers see it.
struct StoreEvent {
  uint64_t revision = 0;
  std::string name;
  RecordPtr record;  // Null: the upstream was deleted.
};

// The whole state at a revision.
struct StoreState {
  uint64_t revision = 0;
  std::vector<RevisionedRecord> records;  // By name.
};

// Receives committed changes in revision order, on the thread that
// committed them and under the store's lock: it must queue them and return,
// never call the store.
class StoreWatcher {
 public:
  virtual ~StoreWatcher() = default;
  virtual void OnChanges(const std::vector<StoreEvent>& events) = 0;
  // The store stopped delivering changes to this watcher (a connection
  // lost, a watch cancelled). The watcher calls Watch again with the last
  // revision it saw, and loads the whole state if that is compacted.
  virtual void OnWatchLost() {}
};

// An expected revision that matches any: the write is unconditional.
inline constexpr uint64_t kAnyRevision = std::numeric_limits<uint64_t>::max();

// True for the status of a watch whose history is gone (OUT_OF_RANGE
// "compacted", as etcd answers).
bool IsCompacted(const absl::Status& status);

class Store {
 public:
  virtual ~Store() = default;

  // Every stored upstream and the revision they are at; the changes
  // committed after it go to `watcher` (when not null) until Unwatch. A
  // damaged store is an error, never a silent loss.
  virtual absl::StatusOr<StoreState> Load(StoreWatcher* watcher) = 0;
  // The changes committed after `revision` go to `watcher`, those already
  // committed at once. OUT_OF_RANGE "compacted" when the store no longer
  // has them all (IsCompacted).
  virtual absl::Status Watch(uint64_t revision, StoreWatcher* watcher) = 0;
  virtual void Unwatch(StoreWatcher* watcher) = 0;

  // Writes an upstream's record, or deletes it (deleting an absent one
  // changes nothing). Unless `expected_revision` is kAnyRevision, the write
  // happens only if the record's mod revision is that (0: absent), else
  // ABORTED. Outside a batch a write is durable and delivered to watchers
  // when it returns, and answers its revision.
  virtual absl::StatusOr<uint64_t> Put(RecordPtr record,
                                       uint64_t expected_revision = kAnyRevision) = 0;
  absl::StatusOr<uint64_t> Put(const UpstreamRecord& record,
                               uint64_t expected_revision = kAnyRevision) {
    return Put(std::make_shared<const UpstreamRecord>(record), expected_revision);
  }
  virtual absl::StatusOr<uint64_t> Delete(absl::string_view name,
                                          uint64_t expected_revision = kAnyRevision) = 0;

  // Group commit, for the control plane's writer, which runs the writes
  // that queued up together. Between BeginBatch and CommitBatch, a Put or
  // Delete from the thread that began the batch may only stage its change
  // (answering revision 0): it still fails at once on a write error, but it
  // is durable, numbered and delivered only when CommitBatch returns OK,
  // which makes every staged change durable with as few syncs as the store
  // can and answers the revision after them (a failed CommitBatch leaves an
  // unknown part of them durable). Writes from other threads stay durable
  // when they return. A store without staging commits each write at once.
  virtual void BeginBatch() {}
  virtual absl::StatusOr<uint64_t> CommitBatch() = 0;

  // This start's boot number: greater than every earlier start's (lease
  // ids begin with it, see lease_id.h).
  virtual uint64_t boot() const = 0;

  // Whether `name` is stored now, asked of the store itself, for a write
  // that found no such upstream in what its reader has seen. Only a shared
  // store can say yes: another writer's change reaches this reader by
  // watch, a moment after it commits. A store with one writer says no.
  virtual bool StoredUnseen(absl::string_view name) { return false; }
};

// The history of a store's recent changes and the watchers that want
// them, for stores that keep both in memory. Not thread-safe: the store
// calls it under its own lock, which also orders the deliveries.
class ChangeFeed {
 public:
  // How many recent changes a watcher can resume after.
  static constexpr size_t kDefaultHistory = 4096;
  // And at most this many targets in the records those changes hold (the
  // latest record of an upstream is shared with its readers; older ones
  // cost their own memory): 4096 changes of large upstreams would
  // otherwise keep gigabytes. A watcher that falls further behind reloads
  // the whole state, as after any compaction. About 40 MB.
  static constexpr size_t kHistoryTargets = 1 << 18;
  explicit ChangeFeed(size_t history = kDefaultHistory) : history_limit_(history) {}

  // Starts an empty history at `revision` (a store's opening revision).
  void Reset(uint64_t revision);
  uint64_t revision() const { return revision_; }

  // Numbers `events` with the next revisions, keeps them, and delivers
  // them to every watcher. Returns the last revision.
  uint64_t Commit(std::vector<StoreEvent> events);
  // Adds a watcher of the changes after the current revision.
  void Add(StoreWatcher* watcher);
  // Delivers the kept changes after `revision`, then adds the watcher.
  absl::Status Watch(uint64_t revision, StoreWatcher* watcher);
  void Remove(StoreWatcher* watcher);
  // Removes every watcher and returns them.
  std::vector<StoreWatcher*> RemoveAll() { return std::exchange(watchers_, {}); }

 private:
  const size_t history_limit_;
  uint64_t revision_ = 0;
  std::deque<StoreEvent> history_;  // Consecutive revisions up to revision_.
  size_t history_targets_ = 0;      // Targets in history_'s records.
  std::vector<StoreWatcher*> watchers_;
};

// Keeps state in memory only: for tests and tools.
class MemoryStore : public Store {
 public:
  // `boot` as a restart would hand it out; revisions start at boot << 32.
  // `history` is how many changes a returning watcher can resume after.
  explicit MemoryStore(uint64_t boot = 1, size_t history = ChangeFeed::kDefaultHistory);

  absl::StatusOr<StoreState> Load(StoreWatcher* watcher) override;
  absl::Status Watch(uint64_t revision, StoreWatcher* watcher) override;
  void Unwatch(StoreWatcher* watcher) override;
  using Store::Put;
  absl::StatusOr<uint64_t> Put(RecordPtr record,
                               uint64_t expected_revision = kAnyRevision) override;
  absl::StatusOr<uint64_t> Delete(absl::string_view name,
                                  uint64_t expected_revision = kAnyRevision) override;
  absl::StatusOr<uint64_t> CommitBatch() override;
  uint64_t boot() const override {
    std::lock_guard lock(mu_);
    return boot_;
  }

  // Stops delivering to every watcher and tells each (OnWatchLost), as a
  // lost connection to a shared store would.
  void InterruptWatches();
  // Stops delivering to every watcher without telling them (the loss is
  // noticed later): returns them.
  std::vector<StoreWatcher*> DropWatches();
  // As a restart would leave it: the records kept, the next boot, the
  // history of changes gone. No watcher may be left.
  void Reopen();

 private:
  absl::StatusOr<uint64_t> Write(StoreEvent event, uint64_t expected_revision);

  uint64_t boot_;
  mutable std::mutex mu_;
  struct Stored {
    RecordPtr record;
    uint64_t mod_revision = 0;
  };
  std::map<std::string, Stored, std::less<>> records_;
  ChangeFeed feed_;
};

// The first revision of a boot's changes is (boot << kRevisionBootShift) + 1,
// so revisions grow across restarts without being written anywhere.
inline constexpr int kRevisionBootShift = 32;

// ABORTED for a write whose expected revision did not match.
absl::Status CheckExpectedRevision(absl::string_view name, uint64_t expected, uint64_t actual);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STORE_H_
