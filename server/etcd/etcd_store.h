// picker's configuration in etcd: a core::Store whose revisions are etcd's
// and whose change feed is an etcd watch, so that every replica sharing the
// etcd cluster applies every other replica's writes as its own.
//
// Key layout, under the prefix (`--etcd-prefix`, default `/picker/`):
//
//   <prefix>upstreams/<name>   an upstream's record (server/store/store.proto's
//                              StoredUpstream, binary), one key per upstream
//   <prefix>boot               the boot counter (decimal), raised by each start
//                              of each replica, behind lease ids
//   <prefix>members/<id>       a live replica (membership.h), under its lease
//
// Every write is one etcd transaction, acknowledged once etcd committed it;
// a write with an expected revision compares the key's mod revision in the
// transaction (ABORTED when another writer changed it). The watch delivers
// each change with its etcd revision; the last ChangeFeed::kDefaultHistory
// changes are kept for watchers that come back, and a watch that etcd
// compacted under it tells its watchers to load the whole state again.
//
//   auto store = EtcdStore::Open(client, "/picker/");
//   absl::StatusOr<core::StoreState> state = (*store)->Load(&watcher);
#ifndef PICKER_SERVER_ETCD_ETCD_STORE_H_
#define PICKER_SERVER_ETCD_ETCD_STORE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/store.h"
#include "server/etcd/client.h"

namespace picker::etcd {

class EtcdStore final : public core::Store {
 public:
  // Counts this start's boot in etcd. `client` must outlive the store.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(EtcdClient& client, std::string prefix);
  ~EtcdStore() override;  // Stops the watch.

  absl::StatusOr<core::StoreState> Load(core::StoreWatcher* watcher) override;
  absl::Status Watch(uint64_t revision, core::StoreWatcher* watcher) override;
  void Unwatch(core::StoreWatcher* watcher) override;
  using core::Store::Put;
  absl::StatusOr<uint64_t> Put(core::RecordPtr record,
                               uint64_t expected_revision = core::kAnyRevision) override;
  absl::StatusOr<uint64_t> Delete(absl::string_view name,
                                  uint64_t expected_revision = core::kAnyRevision) override;
  absl::StatusOr<uint64_t> CommitBatch() override;
  uint64_t boot() const override { return boot_; }
  // A range read of the key (etcd's reads are linearizable by default).
  bool StoredUnseen(absl::string_view name) override;

  // The revision of the last change the watch delivered.
  uint64_t watched_revision() const { return watched_.load(std::memory_order_acquire); }
  // The revision etcd was at when this replica last heard from it.
  uint64_t etcd_revision() const { return etcd_revision_.load(std::memory_order_acquire); }
  // The revision the watch has caught up with (every upstream change up to
  // it delivered), from its events and progress notices.
  uint64_t caught_up_revision() const { return caught_up_.load(std::memory_order_acquire); }

 private:
  EtcdStore(EtcdClient& client, std::string prefix)
      : client_(client), prefix_(std::move(prefix)), upstreams_(prefix_ + "upstreams/") {}
  absl::StatusOr<uint64_t> CountBoot();
  absl::StatusOr<uint64_t> Write(const std::string& name, const std::string* value,
                                 uint64_t expected_revision);
  // The watch thread: follows the upstreams' keys from `next_` on,
  // reconnecting after errors, until stopping_.
  void WatchLoop();
  // One watch stream, until it breaks; false when etcd compacted it.
  bool WatchOnce();
  void Deliver(std::vector<core::StoreEvent> events);
  void StartWatching(uint64_t after);

  EtcdClient& client_;
  const std::string prefix_;
  const std::string upstreams_;
  uint64_t boot_ = 0;
  std::atomic<uint64_t> watched_{0};
  std::atomic<uint64_t> etcd_revision_{0};
  std::atomic<uint64_t> caught_up_{0};
  std::atomic<uint64_t> written_{0};  // The revision of this replica's last write.

  std::mutex mu_;  // Guards below; deliveries happen under it, in order.
  std::vector<core::StoreWatcher*> watchers_;
  std::deque<core::StoreEvent> history_;
  uint64_t history_floor_ = 0;  // Changes after it are in history_.
  uint64_t next_ = 0;           // The revision the watch resumes at.
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::unique_ptr<grpc::ClientContext> stream_context_;  // To cancel the stream.
  std::thread watch_thread_;
};

}  // namespace picker::etcd

#endif  // PICKER_SERVER_ETCD_ETCD_STORE_H_
