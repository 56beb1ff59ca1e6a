#include "server/core/store.h"

#include <algorithm>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace picker::core {

bool IsCompacted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kOutOfRange &&
         absl::StartsWith(status.message(), "compacted");
}

absl::Status CheckExpectedRevision(absl::string_view name, uint64_t expected, uint64_t actual) {
  if (expected == kAnyRevision || expected == actual) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat("upstream \"", name, "\" changed meanwhile (revision ",
                                         actual, ", expected ", expected, ")"));
}

// ---------------------------------------------------------------------------
// ChangeFeed.

namespace {

size_t TargetsOf(const StoreEvent& event) {
  return event.record ? event.record->targets.size() : 0;
}

}  // namespace

void ChangeFeed::Reset(uint64_t revision) {
  revision_ = revision;
  history_.clear();
  history_targets_ = 0;
}

uint64_t ChangeFeed::Commit(std::vector<StoreEvent> events) {
  for (StoreEvent& event : events) {
    event.revision = ++revision_;
    history_.push_back(event);
    history_targets_ += TargetsOf(event);
  }
  // The latest change always stays: watchers resume after it.
  while (history_.size() > history_limit_ ||
         (history_targets_ > kHistoryTargets && history_.size() > 1)) {
    history_targets_ -= TargetsOf(history_.front());
    history_.pop_front();
  }
  if (!events.empty()) {
    for (StoreWatcher* watcher : watchers_) watcher->OnChanges(events);
  }
  return revision_;
}

void ChangeFeed::Add(StoreWatcher* watcher) {
  if (std::find(watchers_.begin(), watchers_.end(), watcher) == watchers_.end()) {
    watchers_.push_back(watcher);
  }
}

absl::Status ChangeFeed::Watch(uint64_t revision, StoreWatcher* watcher) {
  const uint64_t oldest_kept = history_.empty() ? revision_ + 1 : history_.front().revision;
  if (revision + 1 < oldest_kept) {
    return absl::OutOfRangeError(absl::StrCat("compacted: the changes after revision ", revision,
                                              " are no longer kept (the oldest kept is ",
                                              oldest_kept, ")"));
  }
  if (revision > revision_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "revision ", revision, " is ahead of the store's latest revision ", revision_));
  }
  std::vector<StoreEvent> missed;
  for (const StoreEvent& event : history_) {
    if (event.revision > revision) missed.push_back(event);
  }
  if (!missed.empty()) watcher->OnChanges(missed);
  Add(watcher);
  return absl::OkStatus();
}

void ChangeFeed::Remove(StoreWatcher* watcher) {
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), watcher), watchers_.end());
}

// ---------------------------------------------------------------------------
// MemoryStore.

MemoryStore::MemoryStore(uint64_t boot, size_t history) : boot_(boot), feed_(history) {
  feed_.Reset(boot << kRevisionBootShift);
}

void MemoryStore::Reopen() {
  std::lock_guard lock(mu_);
  ++boot_;
  feed_.Reset(boot_ << kRevisionBootShift);
  for (auto& [name, record] : records_) record.mod_revision = feed_.revision();
}

std::vector<StoreWatcher*> MemoryStore::DropWatches() {
  std::lock_guard lock(mu_);
  return feed_.RemoveAll();
}

void MemoryStore::InterruptWatches() {
  for (StoreWatcher* watcher : DropWatches()) watcher->OnWatchLost();
}

absl::StatusOr<StoreState> MemoryStore::Load(StoreWatcher* watcher) {
  std::lock_guard lock(mu_);
  StoreState state;
  state.revision = feed_.revision();
  for (const auto& [name, stored] : records_) {
    state.records.push_back(RevisionedRecord{*stored.record, stored.mod_revision});
  }
  if (watcher != nullptr) feed_.Add(watcher);
  return state;
}

absl::Status MemoryStore::Watch(uint64_t revision, StoreWatcher* watcher) {
  std::lock_guard lock(mu_);
  return feed_.Watch(revision, watcher);
}

void MemoryStore::Unwatch(StoreWatcher* watcher) {
  std::lock_guard lock(mu_);
  feed_.Remove(watcher);
}

absl::StatusOr<uint64_t> MemoryStore::Write(StoreEvent event, uint64_t expected_revision) {
  std::lock_guard lock(mu_);
  auto it = records_.find(event.name);
  const uint64_t current = it == records_.end() ? 0 : it->second.mod_revision;
  if (absl::Status s = CheckExpectedRevision(event.name, expected_revision, current); !s.ok()) {
    return s;
  }
  if (!event.record && it == records_.end()) return feed_.revision();
  if (event.record) {
    records_[event.name] = Stored{event.record, feed_.revision() + 1};
  } else {
    records_.erase(it);
  }
  return feed_.Commit({std::move(event)});
}

absl::StatusOr<uint64_t> MemoryStore::Put(RecordPtr record, uint64_t expected_revision) {
  const std::string name = record->config.name;
  return Write(StoreEvent{0, name, std::move(record)}, expected_revision);
}

absl::StatusOr<uint64_t> MemoryStore::Delete(absl::string_view name, uint64_t expected_revision) {
  return Write(StoreEvent{0, std::string(name), nullptr}, expected_revision);
}

absl::StatusOr<uint64_t> MemoryStore::CommitBatch() {
  // Every write was committed when it was made.
  std::lock_guard lock(mu_);
  return feed_.revision();
}

}  // namespace picker::core
