#include "server/control/control_plane.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <future>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/core/random.h"
#include "server/core/thread_name.h"
#include "server/core/validate.h"
#include "spdlog/spdlog.h"

namespace picker::control {

// What the writer keeps of one upstream: its stored record and the live
// state (counters, health inputs) that outlives its snapshots.
struct ControlPlane::Upstream {
  core::RecordPtr record;
  uint64_t mod_revision = 0;
  std::shared_ptr<core::UpstreamLive> live = std::make_shared<core::UpstreamLive>();
  std::vector<core::TargetEntry> targets;  // The record's, with their live state.
  std::shared_ptr<const core::UpstreamSnapshot> snapshot;

  // Takes a new record; targets still present keep their live state.
  void Take(core::RecordPtr next, uint64_t revision) {
    std::vector<core::TargetEntry> entries;
    entries.reserve(next->targets.size());
    size_t old = 0;  // Old entries before it have found their place.
    for (const core::StoredTarget& stored : next->targets) {
      core::TargetEntry& entry = entries.emplace_back();
      entry.config = stored.config;
      entry.health_override = stored.health_override;
      entry.times = stored.times;
      if (std::shared_ptr<core::TargetLive> live = LiveOf(stored.config.address, old)) {
        entry.live = std::move(live);
      }
    }
    lives_by_address.clear();
    targets = std::move(entries);
    record = std::move(next);
    mod_revision = revision;
  }

 private:
  // The live state of the old entry at `address`. Both lists keep host-set
  // order, so most writes find it at `old` or just after (an entry removed);
  // a map of the old entries is built only when they do not.
  std::shared_ptr<core::TargetLive> LiveOf(const std::string& address, size_t& old) {
    for (size_t k = old; k < targets.size() && k < old + 2; ++k) {
      if (targets[k].config.address == address) {
        old = k + 1;
        return std::move(targets[k].live);
      }
    }
    if (lives_by_address.empty()) {
      for (core::TargetEntry& t : targets) {
        if (t.live) lives_by_address.emplace(t.config.address, &t.live);
      }
    }
    auto it = lives_by_address.find(address);
    return it == lives_by_address.end() ? nullptr : std::move(*it->second);
  }
  // Keyed by the old entries' addresses, for Take's slow path.
  absl::flat_hash_map<absl::string_view, std::shared_ptr<core::TargetLive>*> lives_by_address;
};

struct ControlPlane::Pending {
  core::Change change;
  Done done;
  int attempts = 0;
  core::RecordPtr stored;  // Once staged.
  bool validate_only = false;
  // A preview's changes after `change`, applied in order on its result.
  std::vector<core::Change> then;
};

namespace {

using Staged = std::map<std::string, core::RecordPtr>;

// Now, for the records' created_at and updated_at.
int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs `work(i)` for i in [0, n) on every core.
void ParallelFor(size_t n, const std::function<void(size_t)>& work) {
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) work(i);
  };
  // Snapshots are most of a start with many Maglev or ring upstreams (10,000
  // Maglev tables took 9 s on one core); below 64 a thread is not worth it.
  const size_t helpers =
      std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()) - 1, n / 64);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < helpers; ++i) threads.emplace_back(run);
  run();
  for (std::thread& t : threads) t.join();
}

}  // namespace

ControlPlane::ControlPlane(core::Store& store, core::SnapshotMap& snapshots,
                           core::WriterStats& stats, Options options)
    : store_(store), snapshots_(snapshots), stats_(stats), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ControlPlane>> ControlPlane::Start(core::Store& store,
                                                                  core::SnapshotMap& snapshots,
                                                                  core::WriterStats& stats,
                                                                  Options options) {
  std::unique_ptr<ControlPlane> control(
      new ControlPlane(store, snapshots, stats, std::move(options)));
  absl::StatusOr<core::StoreState> state = store.Load(control.get());
  if (!state.ok()) return state.status();
  for (const core::RevisionedRecord& stored : state->records) {
    if (absl::Status s = core::ValidateUpstreamConfig(stored.record.config, core::Rules::kStored);
        !s.ok()) {
      store.Unwatch(control.get());
      return absl::DataLossError(absl::StrCat("stored upstream \"", stored.record.config.name,
                                              "\" is invalid: ", s.message()));
    }
  }
  control->Reconcile(*std::move(state));
  control->writer_ = std::thread([c = control.get()] { c->Loop(); });
  return control;
}

ControlPlane::~ControlPlane() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // Not started when Start failed.
  store_.Unwatch(this);
}

uint64_t ControlPlane::revision() const { return revision_.load(std::memory_order_acquire); }

// ---------------------------------------------------------------------------
// What other threads hand over.

void ControlPlane::Submit(core::Change change, Done done, SubmitOptions options) {
  if (absl::Status s = core::PrepareChange(change, options_.limits); !s.ok()) {
    done(s);
    return;
  }
  Pending pending{std::move(change), std::move(done)};
  pending.validate_only = options.validate_only;
  {
    std::lock_guard lock(mu_);
    writes_.push_back(std::move(pending));
  }
  cv_.notify_all();
}

void ControlPlane::Preview(std::vector<core::Change> changes, Done done) {
  if (changes.empty()) {
    done(absl::InvalidArgumentError("changes: at least one change is required"));
    return;
  }
  for (size_t i = 0; i < changes.size(); ++i) {
    absl::Status s = core::PrepareChange(changes[i], options_.limits);
    if (!s.ok()) {
      done(absl::Status(s.code(), absl::StrCat("changes[", i, "].", s.message())));
      return;
    }
    if (core::UpstreamOf(changes[i]) != core::UpstreamOf(changes[0])) {
      done(absl::InvalidArgumentError(
          absl::StrCat("changes[", i, "]: names another upstream than changes[0]")));
      return;
    }
  }
  Pending pending{std::move(changes[0]), std::move(done)};
  pending.validate_only = true;
  pending.then.assign(std::make_move_iterator(changes.begin() + 1),
                      std::make_move_iterator(changes.end()));
  {
    std::lock_guard lock(mu_);
    writes_.push_back(std::move(pending));
  }
  cv_.notify_all();
}

absl::StatusOr<WriteResult> ControlPlane::Write(core::Change change, SubmitOptions options) {
  std::promise<absl::StatusOr<WriteResult>> answer;
  Submit(
      std::move(change),
      [&answer](absl::StatusOr<WriteResult> r) { answer.set_value(std::move(r)); }, options);
  return answer.get_future().get();
}

void ControlPlane::HealthChanged(const std::string& upstream) {
  {
    std::lock_guard lock(mu_);
    unhealthy_.insert(upstream);
  }
  cv_.notify_all();
}

void ControlPlane::OnChanges(const std::vector<core::StoreEvent>& events) {
  {
    std::lock_guard lock(mu_);
    events_.insert(events_.end(), events.begin(), events.end());
  }
  cv_.notify_all();
}

void ControlPlane::OnWatchLost() {
  std::lock_guard lock(mu_);
  tasks_.push_back([this] {
    if (absl::Status s = Resync(); !s.ok()) {
      spdlog::error("control plane: cannot catch up with the store: {}", s.ToString());
    }
  });
  cv_.notify_all();
}

void ControlPlane::RunOnWriter(std::function<void()> task) {
  if (std::this_thread::get_id() == writer_.get_id()) {
    task();
    return;
  }
  std::promise<void> done;
  {
    std::lock_guard lock(mu_);
    tasks_.push_back([&] {
      task();
      done.set_value();
    });
  }
  cv_.notify_all();
  done.get_future().wait();
}

void ControlPlane::AddListener(core::PublishListener* listener) {
  RunOnWriter([this, listener] {
    listeners_.push_back(listener);
    for (const auto& [name, upstream] : upstreams_) listener->OnPublished(name, upstream.snapshot);
  });
}

void ControlPlane::RemoveListener(core::PublishListener* listener) {
  RunOnWriter([this, listener] {
    listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
  });
}

absl::Status ControlPlane::Resync() {
  absl::Status result;
  RunOnWriter([this, &result] {
    store_.Unwatch(this);
    result = store_.Watch(applied_revision_, this);
    if (core::IsCompacted(result)) {
      spdlog::warn("control plane: {}; loading the whole state again",
                   std::string(result.message()));
      absl::StatusOr<core::StoreState> state = store_.Load(this);
      result = state.status();
      if (state.ok()) Reconcile(*std::move(state));
    }
  });
  return result;
}

// ---------------------------------------------------------------------------
// The writer thread.

void ControlPlane::Loop() {
  core::NameThisThread("control");
  while (true) {
    const Clock::time_point next_timer = RunTimers();
    std::vector<core::StoreEvent> events;
    std::vector<std::function<void()>> tasks;
    std::vector<std::string> unhealthy;
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_timer, [this] {
        return stopping_ || !writes_.empty() || !events_.empty() || !unhealthy_.empty() ||
               !tasks_.empty();
      });
      if (stopping_ && writes_.empty() && events_.empty() && tasks_.empty()) break;
      events.swap(events_);
      tasks.swap(tasks_);
      unhealthy.assign(unhealthy_.begin(), unhealthy_.end());
      unhealthy_.clear();
      while (!writes_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(writes_.front()));
        writes_.pop_front();
      }
    }
    Apply(std::move(events));
    for (std::function<void()>& task : tasks) task();
    if (!batch.empty()) RunBatch(std::move(batch));
    Rebuild(unhealthy);
  }
  // Writes whose revision never came back (a store that lost its watch).
  for (auto& [revision, pending] : unanswered_) {
    Fail(pending, absl::UnavailableError("picker-server is stopping"));
  }
}

void ControlPlane::Fail(Pending& pending, absl::Status status) { pending.done(std::move(status)); }

bool ControlPlane::Stage(Pending& pending, Staged& staged,
                         std::vector<std::pair<Pending, uint64_t>>& answers) {
  const std::string& name = core::UpstreamOf(pending.change);
  const auto in_batch = staged.find(name);
  const auto applied = upstreams_.find(name);
  const core::UpstreamRecord* current = nullptr;
  if (in_batch != staged.end()) {
    current = in_batch->second.get();
  } else if (applied != upstreams_.end()) {
    current = applied->second.record.get();
  }
  size_t count = upstreams_.size();
  for (const auto& [staged_name, record] : staged) {
    const bool existed = upstreams_.contains(staged_name);
    if (record && !existed) ++count;
    if (!record && existed) --count;
  }
  if (pending.validate_only) {
    DryRun(pending, current, count);
    return true;
  }
  absl::StatusOr<core::Mutation> mutation =
      core::ApplyChange(pending.change, current, count, options_.limits, UnixSeconds());
  if (!mutation.ok()) {
    // An upstream another replica just created may not have come through
    // the feed yet: wait for it rather than answer NOT_FOUND.
    if (absl::IsNotFound(mutation.status()) && current == nullptr &&
        pending.attempts + 1 < options_.max_attempts && store_.StoredUnseen(name)) {
      ++pending.attempts;
      return false;
    }
    Fail(pending, mutation.status());
    return true;
  }
  // The first write of an upstream in a batch checks that nobody else
  // changed it since the state it read; later ones build on that write.
  const uint64_t expected = in_batch != staged.end()      ? core::kAnyRevision
                            : applied != upstreams_.end() ? applied->second.mod_revision
                                                          : 0;
  core::RecordPtr record;
  if (mutation->record) {
    record = std::make_shared<const core::UpstreamRecord>(*std::move(mutation->record));
  }
  absl::StatusOr<uint64_t> written =
      record ? store_.Put(record, expected) : store_.Delete(name, expected);
  if (written.status().code() == absl::StatusCode::kAborted &&
      ++pending.attempts < options_.max_attempts) {
    return false;
  }
  if (!written.ok()) {
    Fail(pending, written.status());
    return true;
  }
  staged[name] = record;
  pending.stored = std::move(record);
  answers.emplace_back(std::move(pending), *written);
  return true;
}

void ControlPlane::DryRun(Pending& pending, const core::UpstreamRecord* current,
                          size_t upstream_count) {
  const std::string name = core::UpstreamOf(pending.change);
  std::optional<core::UpstreamRecord> record;
  if (current != nullptr) record = *current;
  std::vector<core::Change> changes;
  changes.push_back(std::move(pending.change));
  for (core::Change& c : pending.then) changes.push_back(std::move(c));
  for (size_t i = 0; i < changes.size(); ++i) {
    absl::StatusOr<core::Mutation> mutation = core::ApplyChange(
        changes[i], record ? &*record : nullptr, upstream_count, options_.limits, UnixSeconds());
    if (!mutation.ok()) {
      absl::Status s = mutation.status();
      if (changes.size() > 1)
        s = absl::Status(s.code(), absl::StrCat("changes[", i, "].", s.message()));
      pending.done(s);
      return;
    }
    if (!record && mutation->record) ++upstream_count;
    record = std::move(mutation->record);
  }
  WriteResult result{applied_revision_, nullptr, nullptr, /*dry_run=*/true, nullptr};
  // The live state of the targets that stay (counters, ejections, active
  // health) goes into the snapshot as a write would carry it; nothing of
  // it changes.
  Upstream scratch;
  if (auto it = upstreams_.find(name); it != upstreams_.end()) {
    scratch = it->second;
    result.before = it->second.snapshot;
  }
  if (record) {
    result.record = std::make_shared<const core::UpstreamRecord>(*std::move(record));
    scratch.Take(result.record, applied_revision_);
    result.snapshot = core::UpstreamSnapshot::Build(result.record->config, scratch.targets,
                                                    scratch.live, std::chrono::system_clock::now(),
                                                    core::ThreadRandom(), result.record->times);
  }
  pending.done(std::move(result));
}

void ControlPlane::RunBatch(std::vector<Pending> batch) {
  Staged staged;
  std::vector<std::pair<Pending, uint64_t>> answers;
  std::vector<Pending> retry;
  const auto start = Clock::now();
  store_.BeginBatch();
  for (Pending& pending : batch) {
    if (!Stage(pending, staged, answers)) retry.push_back(std::move(pending));
  }
  const absl::StatusOr<uint64_t> committed = store_.CommitBatch();
  stats_.commit_duration.Observe(std::chrono::duration<double>(Clock::now() - start).count());
  stats_.commit_writes.Observe(static_cast<double>(batch.size()));
  if (!committed.ok()) {
    // The writes may be published already by a store that delivers at once,
    // and may not be on disk; a failed sync cannot be retried with any
    // certainty (the kernel may have dropped the dirty pages). Stop, as
    // databases do, so that a restart serves what the disk holds; no write
    // of the batch was acknowledged.
    spdlog::critical("cannot make {} admin write(s) durable: {}; stopping", batch.size(),
                     std::string(committed.status().message()));
    spdlog::shutdown();
    std::abort();
  }
  for (auto& [pending, revision] : answers) {
    unanswered_.emplace_back(revision == 0 ? *committed : revision, std::move(pending));
  }
  if (!retry.empty()) {
    std::unique_lock lock(mu_);
    for (auto it = retry.rbegin(); it != retry.rend(); ++it) writes_.push_front(std::move(*it));
    // Another writer changed their upstreams: give the feed a moment to
    // bring that change before they are tried again on top of it.
    cv_.wait_for(lock, std::chrono::milliseconds(100),
                 [this] { return stopping_ || !events_.empty(); });
  }
  // The batch's changes come back through the feed: a store that delivers
  // on commit has queued them by now.
  std::vector<core::StoreEvent> events;
  {
    std::lock_guard lock(mu_);
    events.swap(events_);
  }
  Apply(std::move(events));
}

void ControlPlane::AnswerApplied() {
  while (!unanswered_.empty() && unanswered_.front().first <= applied_revision_) {
    auto [revision, pending] = std::move(unanswered_.front());
    unanswered_.pop_front();
    WriteResult result{revision, std::move(pending.stored), nullptr};
    if (auto it = upstreams_.find(core::UpstreamOf(pending.change)); it != upstreams_.end()) {
      result.snapshot = it->second.snapshot;
    }
    pending.done(std::move(result));
  }
}

// ---------------------------------------------------------------------------
// Applying and publishing.

std::shared_ptr<const core::UpstreamSnapshot> ControlPlane::Build(Upstream& upstream) {
  const core::WallTime now = std::chrono::system_clock::now();
  core::MarkSlowStarts(upstream.targets, now);
  upstream.snapshot =
      core::UpstreamSnapshot::Build(upstream.record->config, upstream.targets, upstream.live, now,
                                    core::ThreadRandom(), upstream.record->times);
  ArmTimers(upstream);
  return upstream.snapshot;
}

void ControlPlane::ArmTimers(const Upstream& upstream) {
  const std::string& name = upstream.record->config.name;
  if (std::optional<core::WallTime> next = upstream.snapshot->next_rebuild()) {
    timers_.emplace(*next, name);
  }
  const core::Millis period = upstream.snapshot->refresh_period();
  if (period.count() > 0 && refreshing_.insert(name).second) {
    refresh_timers_.emplace(std::chrono::system_clock::now() + period, name);
  }
}

void ControlPlane::Publish(std::vector<core::SnapshotMap::Named> built,
                           std::vector<std::string> removed) {
  snapshots_.Remove(removed);
  snapshots_.Publish(built);
  revision_.store(applied_revision_, std::memory_order_release);
  for (core::PublishListener* listener : listeners_) {
    for (const std::string& name : removed) listener->OnPublished(name, nullptr);
    for (const auto& [name, snapshot] : built) listener->OnPublished(name, snapshot);
  }
}

void ControlPlane::Apply(std::vector<core::StoreEvent> events) {
  std::map<std::string, std::shared_ptr<const core::UpstreamSnapshot>> built;
  std::set<std::string> removed;
  for (core::StoreEvent& event : events) {
    if (event.revision <= applied_revision_) continue;  // Seen (a resumed watch).
    applied_revision_ = event.revision;
    if (!event.record) {
      built.erase(event.name);
      if (upstreams_.erase(event.name) > 0) removed.insert(event.name);
      continue;
    }
    if (absl::Status s = core::ValidateUpstreamConfig(event.record->config, core::Rules::kStored);
        !s.ok()) {
      spdlog::error("store revision {}: upstream \"{}\" is invalid, ignored: {}", event.revision,
                    event.name, s.ToString());
      continue;
    }
    removed.erase(event.name);
    Upstream& upstream = upstreams_[event.name];
    upstream.Take(std::move(event.record), event.revision);
    built[event.name] = Build(upstream);
  }
  if (!built.empty() || !removed.empty()) {
    Publish({built.begin(), built.end()}, {removed.begin(), removed.end()});
  }
  revision_.store(applied_revision_, std::memory_order_release);
  AnswerApplied();
}

void ControlPlane::Reconcile(core::StoreState state) {
  std::set<std::string> present;
  std::vector<Upstream*> changed;
  for (core::RevisionedRecord& stored : state.records) {
    const std::string name = stored.record.config.name;
    present.insert(name);
    auto it = upstreams_.find(name);
    if (it != upstreams_.end() && it->second.mod_revision == stored.mod_revision) continue;
    Upstream& upstream = upstreams_[name];
    upstream.Take(std::make_shared<const core::UpstreamRecord>(std::move(stored.record)),
                  stored.mod_revision);
    changed.push_back(&upstream);
  }
  std::vector<std::string> removed;
  for (auto it = upstreams_.begin(); it != upstreams_.end();) {
    if (present.contains(it->first)) {
      ++it;
    } else {
      removed.push_back(it->first);
      it = upstreams_.erase(it);
    }
  }
  // Built on every core; the timers they add are queued after.
  std::vector<core::SnapshotMap::Named> built(changed.size());
  ParallelFor(changed.size(), [&](size_t i) {
    Upstream& u = *changed[i];
    const core::WallTime now = std::chrono::system_clock::now();
    core::MarkSlowStarts(u.targets, now);
    u.snapshot = core::UpstreamSnapshot::Build(u.record->config, u.targets, u.live, now,
                                               core::ThreadRandom(), u.record->times);
    built[i] = {u.record->config.name, u.snapshot};
  });
  for (Upstream* u : changed) ArmTimers(*u);
  applied_revision_ = std::max(applied_revision_, state.revision);
  Publish(std::move(built), std::move(removed));
  AnswerApplied();
}

void ControlPlane::Rebuild(const std::vector<std::string>& names) {
  std::vector<core::SnapshotMap::Named> built;
  for (const std::string& name : names) {
    auto it = upstreams_.find(name);
    if (it != upstreams_.end()) built.emplace_back(name, Build(it->second));
  }
  if (!built.empty()) Publish(std::move(built), {});
}

ControlPlane::Clock::time_point ControlPlane::RunTimers() {
  const core::WallTime now = std::chrono::system_clock::now();
  std::vector<std::string> due;
  while (!timers_.empty() && timers_.top().first <= now) {
    const std::string name = timers_.top().second;
    timers_.pop();
    // Stale entries (an ejection that ended in an earlier rebuild, an
    // upstream gone) are dropped.
    auto it = upstreams_.find(name);
    if (it == upstreams_.end()) continue;
    const std::optional<core::WallTime> next = it->second.snapshot->next_rebuild();
    if (next && *next <= now && std::find(due.begin(), due.end(), name) == due.end()) {
      due.push_back(name);
    }
  }
  Rebuild(due);
  RefreshDue(now);
  // A day at most: a condition variable's wait with a far time point can
  // overflow the clock conversion.
  std::chrono::nanoseconds wait = std::chrono::hours(24);
  if (!timers_.empty()) wait = std::min<std::chrono::nanoseconds>(timers_.top().first - now, wait);
  if (!refresh_timers_.empty()) {
    wait = std::min<std::chrono::nanoseconds>(refresh_timers_.top().first - now, wait);
  }
  return Clock::now() + wait;
}

void ControlPlane::RefreshDue(core::WallTime now) {
  while (!refresh_timers_.empty() && refresh_timers_.top().first <= now) {
    const std::string name = refresh_timers_.top().second;
    refresh_timers_.pop();
    auto it = upstreams_.find(name);
    const core::Millis period =
        it == upstreams_.end() ? core::Millis(0) : it->second.snapshot->refresh_period();
    if (period.count() == 0) {
      // Deleted, or no longer a strategy that refreshes.
      refreshing_.erase(name);
      continue;
    }
    // Only the weights are recomputed: no snapshot is built or published.
    it->second.snapshot->Refresh(now, core::ThreadRandom());
    refresh_timers_.emplace(now + period, name);
  }
}

}  // namespace picker::control
