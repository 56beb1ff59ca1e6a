#include "server/etcd/etcd_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/core/thread_name.h"
#include "server/store/record_codec.h"
#include "spdlog/spdlog.h"

namespace picker::etcd {
namespace {

// etcd refuses a request over its --max-request-bytes (1.5 MiB by default)
// as invalid, or gRPC does before it: either way a limit of etcd's.
absl::Status MapLimits(absl::Status status) {
  const bool too_large = absl::StrContains(status.message(), "request is too large") ||
                         (status.code() == absl::StatusCode::kResourceExhausted &&
                          absl::StrContains(status.message(), "larger than max"));
  if (!too_large) return status;
  return absl::ResourceExhaustedError(absl::StrCat(
      status.message(),
      " (the record is over etcd's --max-request-bytes, 1.5 MiB by default: raise it on "
      "every etcd member)"));
}

absl::StatusOr<core::RecordPtr> DecodeValue(const std::string& value, const std::string& key) {
  store::v1::StoredUpstream stored;
  if (!stored.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("etcd key ", key, ": not a picker record"));
  }
  absl::StatusOr<core::UpstreamRecord> record = store::Decode(stored);
  if (!record.ok()) {
    return absl::DataLossError(absl::StrCat("etcd key ", key, ": ", record.status().message()));
  }
  return std::make_shared<const core::UpstreamRecord>(*std::move(record));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(EtcdClient& client, std::string prefix) {
  std::unique_ptr<EtcdStore> store(new EtcdStore(client, std::move(prefix)));
  absl::StatusOr<uint64_t> boot = store->CountBoot();
  if (!boot.ok()) return boot.status();
  store->boot_ = *boot;
  return store;
}

EtcdStore::~EtcdStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (stream_context_) stream_context_->TryCancel();
  }
  stop_cv_.notify_all();
  if (watch_thread_.joinable()) watch_thread_.join();
}

absl::StatusOr<uint64_t> EtcdStore::CountBoot() {
  const std::string key = prefix_ + "boot";
  for (int attempt = 0; attempt < 20; ++attempt) {
    etcdserverpb::RangeRequest range;
    range.set_key(key);
    absl::StatusOr<etcdserverpb::RangeResponse> current = client_.Range(range);
    if (!current.ok()) return current.status();
    uint64_t boot = 0;
    int64_t mod_revision = 0;
    if (current->kvs_size() > 0) {
      mod_revision = current->kvs(0).mod_revision();
      if (!absl::SimpleAtoi(current->kvs(0).value(), &boot)) {
        return absl::DataLossError(absl::StrCat("etcd key ", key, ": not a number"));
      }
    }
    etcdserverpb::TxnRequest txn;
    etcdserverpb::Compare* compare = txn.add_compare();
    compare->set_key(key);
    compare->set_target(etcdserverpb::Compare::MOD);
    compare->set_result(etcdserverpb::Compare::EQUAL);
    compare->set_mod_revision(mod_revision);
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(absl::StrCat(boot + 1));
    absl::StatusOr<etcdserverpb::TxnResponse> done = client_.Txn(txn);
    if (!done.ok()) return done.status();
    if (done->succeeded()) return boot + 1;  // Another replica started meanwhile: again.
  }
  return absl::AbortedError(absl::StrCat("etcd key ", key, ": too many replicas starting at once"));
}

absl::StatusOr<core::StoreState> EtcdStore::Load(core::StoreWatcher* watcher) {
  etcdserverpb::RangeRequest range;
  range.set_key(upstreams_);
  range.set_range_end(PrefixEnd(upstreams_));
  absl::StatusOr<etcdserverpb::RangeResponse> response = client_.Range(range);
  if (!response.ok()) return response.status();
  core::StoreState state;
  state.revision = static_cast<uint64_t>(response->header().revision());
  for (const mvccpb::KeyValue& kv : response->kvs()) {
    absl::StatusOr<core::RecordPtr> record = DecodeValue(kv.value(), kv.key());
    if (!record.ok()) return record.status();
    state.records.push_back(
        core::RevisionedRecord{**record, static_cast<uint64_t>(kv.mod_revision())});
  }
  etcd_revision_.store(state.revision, std::memory_order_release);
  std::lock_guard lock(mu_);
  if (watcher != nullptr &&
      std::find(watchers_.begin(), watchers_.end(), watcher) == watchers_.end()) {
    watchers_.push_back(watcher);
  }
  StartWatching(state.revision);
  return state;
}

void EtcdStore::StartWatching(uint64_t after) {
  // Requires mu_. A new load behind the watch (after it was compacted)
  // restarts the history from the load.
  if (watch_thread_.joinable() && after < next_) return;
  history_.clear();
  history_floor_ = after;
  next_ = after + 1;
  watched_.store(after, std::memory_order_release);
  if (!watch_thread_.joinable()) watch_thread_ = std::thread([this] { WatchLoop(); });
}

absl::Status EtcdStore::Watch(uint64_t revision, core::StoreWatcher* watcher) {
  std::lock_guard lock(mu_);
  if (!watch_thread_.joinable() || revision < history_floor_) {
    return absl::OutOfRangeError(absl::StrCat("compacted: the changes after revision ", revision,
                                              " are no longer kept here"));
  }
  std::vector<core::StoreEvent> missed;
  for (const core::StoreEvent& e : history_) {
    if (e.revision > revision) missed.push_back(e);
  }
  if (!missed.empty()) watcher->OnChanges(missed);
  if (std::find(watchers_.begin(), watchers_.end(), watcher) == watchers_.end()) {
    watchers_.push_back(watcher);
  }
  return absl::OkStatus();
}

void EtcdStore::Unwatch(core::StoreWatcher* watcher) {
  std::lock_guard lock(mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), watcher), watchers_.end());
}

absl::StatusOr<uint64_t> EtcdStore::Write(const std::string& name, const std::string* value,
                                          uint64_t expected_revision) {
  const std::string key = upstreams_ + name;
  etcdserverpb::TxnRequest txn;
  if (expected_revision != core::kAnyRevision) {
    etcdserverpb::Compare* compare = txn.add_compare();
    compare->set_key(key);
    compare->set_target(etcdserverpb::Compare::MOD);
    compare->set_result(etcdserverpb::Compare::EQUAL);
    compare->set_mod_revision(static_cast<int64_t>(expected_revision));
  }
  etcdserverpb::RequestOp* op = txn.add_success();
  if (value != nullptr) {
    op->mutable_request_put()->set_key(key);
    op->mutable_request_put()->set_value(*value);
  } else {
    op->mutable_request_delete_range()->set_key(key);
  }
  absl::StatusOr<etcdserverpb::TxnResponse> done = client_.Txn(txn);
  if (!done.ok()) return MapLimits(done.status());
  const uint64_t revision = static_cast<uint64_t>(done->header().revision());
  etcd_revision_.store(revision, std::memory_order_release);
  if (!done->succeeded()) {
    return absl::AbortedError(
        absl::StrCat("upstream \"", name, "\" changed meanwhile (etcd revision ", revision, ")"));
  }
  written_.store(revision, std::memory_order_release);
  return revision;
}

absl::StatusOr<uint64_t> EtcdStore::Put(core::RecordPtr record, uint64_t expected_revision) {
  store::v1::StoredUpstream stored;
  store::Encode(*record, &stored);
  const std::string value = stored.SerializeAsString();
  return Write(record->config.name, &value, expected_revision);
}

absl::StatusOr<uint64_t> EtcdStore::Delete(absl::string_view name, uint64_t expected_revision) {
  return Write(std::string(name), nullptr, expected_revision);
}

bool EtcdStore::StoredUnseen(absl::string_view name) {
  etcdserverpb::RangeRequest range;
  range.set_key(absl::StrCat(upstreams_, name));
  range.set_count_only(true);
  absl::StatusOr<etcdserverpb::RangeResponse> response = client_.Range(range);
  return response.ok() && response->count() > 0;
}

absl::StatusOr<uint64_t> EtcdStore::CommitBatch() {
  // Each write was its own transaction; the batch is committed already.
  return std::max(written_.load(std::memory_order_acquire),
                  watched_.load(std::memory_order_acquire));
}

void EtcdStore::Deliver(std::vector<core::StoreEvent> events) {
  std::lock_guard lock(mu_);
  for (const core::StoreEvent& e : events) history_.push_back(e);
  while (history_.size() > core::ChangeFeed::kDefaultHistory) {
    history_floor_ = history_.front().revision;
    history_.pop_front();
  }
  next_ = events.back().revision + 1;
  watched_.store(events.back().revision, std::memory_order_release);
  for (core::StoreWatcher* watcher : watchers_) watcher->OnChanges(events);
}

bool EtcdStore::WatchOnce() {
  std::unique_ptr<grpc::ClientContext> context = client_.StreamContext();
  uint64_t from;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return true;
    from = next_;
    stream_context_ = std::move(context);
  }
  auto stream = client_.watch().Watch(stream_context_.get());
  etcdserverpb::WatchRequest request;
  etcdserverpb::WatchCreateRequest* create = request.mutable_create_request();
  create->set_key(upstreams_);
  create->set_range_end(PrefixEnd(upstreams_));
  create->set_start_revision(static_cast<int64_t>(from));
  create->set_progress_notify(true);
  if (!stream->Write(request)) return true;
  etcdserverpb::WatchResponse response;
  while (stream->Read(&response)) {
    const uint64_t revision = static_cast<uint64_t>(response.header().revision());
    etcd_revision_.store(std::max(etcd_revision_.load(), revision), std::memory_order_release);
    if (response.compact_revision() > 0) return false;
    if (response.canceled()) break;
    std::vector<core::StoreEvent> events;
    for (const mvccpb::Event& e : response.events()) {
      const std::string name = e.kv().key().substr(upstreams_.size());
      core::StoreEvent event{static_cast<uint64_t>(e.kv().mod_revision()), name, nullptr};
      if (e.type() == mvccpb::Event::PUT) {
        absl::StatusOr<core::RecordPtr> record = DecodeValue(e.kv().value(), e.kv().key());
        if (!record.ok()) {
          spdlog::error("{}; ignored", std::string(record.status().message()));
          continue;
        }
        event.record = *std::move(record);
      }
      events.push_back(std::move(event));
    }
    if (!events.empty()) Deliver(std::move(events));
    caught_up_.store(revision, std::memory_order_release);
  }
  stream->Finish().IgnoreError();
  return true;
}

void EtcdStore::WatchLoop() {
  core::NameThisThread("etcd-watch");
  std::chrono::milliseconds backoff(100);
  while (true) {
    if (!WatchOnce()) {
      // The changes after our revision are compacted in etcd: watchers
      // load the whole state again (which restarts this watch after it).
      spdlog::warn("etcd: the watch was compacted; loading the whole state again");
      std::vector<core::StoreWatcher*> lost;
      {
        std::lock_guard lock(mu_);
        history_.clear();
        history_floor_ = next_;
        lost = watchers_;
      }
      for (core::StoreWatcher* w : lost) w->OnWatchLost();
    }
    std::unique_lock lock(mu_);
    if (stop_cv_.wait_for(lock, backoff, [this] { return stopping_; })) return;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

}  // namespace picker::etcd
