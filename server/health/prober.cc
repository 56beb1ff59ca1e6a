#include "server/health/prober.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "server/core/thread_name.h"
#include "spdlog/spdlog.h"

namespace picker::health {

// What the prober knows of one checked target. Only touched under mu_.
struct Prober::TargetState {
  std::shared_ptr<core::TargetLive> live;
  std::shared_ptr<core::UpstreamLive> upstream_live;  // Its counters.
  std::string upstream;
  std::string address;
  core::ActiveHealthConfig config;
  // Tells a finished probe whether it still belongs to this entry (an entry
  // dropped and re-created while its probe ran gets a new generation).
  uint64_t generation = 0;
  Clock::time_point next_due;
  bool in_flight = false;
  bool unhealthy = false;  // The checks' verdict, mirrored in live->active_unhealthy.
  uint32_t successes = 0;  // Consecutive.
  uint32_t failures = 0;   // Consecutive.
  // Reused across checks; shared with the job that runs a check.
  std::shared_ptr<GrpcHealthChannel> grpc;
};

// One probe to run on a worker, with everything it needs copied so that the
// worker holds no lock while it runs.
struct Prober::Job {
  core::TargetLive* key = nullptr;
  uint64_t generation = 0;
  std::string address;
  core::ActiveHealthConfig config;
  std::shared_ptr<GrpcHealthChannel> grpc;
};

namespace {

std::chrono::milliseconds EffectiveTimeout(const core::ActiveHealthConfig& config) {
  return std::max(config.timeout, std::chrono::milliseconds(1));
}

ProbeResult RunProbe(const core::ActiveHealthConfig& config, const std::string& address,
                     GrpcHealthChannel* grpc) {
  const std::chrono::milliseconds timeout = EffectiveTimeout(config);
  switch (config.type) {
    case core::ActiveHealthConfig::Type::kHttp:
      return ProbeHttp(address, config.http_path, config.healthy_http_statuses, timeout);
    case core::ActiveHealthConfig::Type::kTcp:
      return ProbeTcp(address, timeout);
    case core::ActiveHealthConfig::Type::kGrpc:
      return grpc->Check(timeout);
  }
  return ProbeResult{ProbeResult::Kind::kFailure, "unknown check type"};
}

}  // namespace

Prober::Prober(core::HealthEvents& health, Options options) : health_(health), options_(options) {
  // Before any worker thread exists: libcurl's global init is not thread-safe.
  InitHttpProbes();
}

Prober::~Prober() { Stop(); }

void Prober::Start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  running_ = true;
  stopping_ = false;
  // After a Stop, every known target is due at its planned time again.
  due_ = {};
  for (auto& [key, state] : targets_) {
    state->in_flight = false;
    due_.push(Due{state->next_due, key, state->generation});
  }
  for (int i = 0; i < std::max(options_.threads, 1); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

void Prober::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_ || stopping_) return;
    stopping_ = true;
  }
  scheduler_cv_.notify_all();
  workers_cv_.notify_all();
  scheduler_.join();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  std::lock_guard lock(mu_);
  // Probes that were queued never ran: they are due again on the next Start.
  queue_.clear();
  running_ = false;
  stopping_ = false;
}

std::map<std::string, UpstreamCheckStats> Prober::Stats() const {
  std::lock_guard lock(mu_);
  std::map<std::string, UpstreamCheckStats> stats;
  for (const auto& [name, live] : checked_) {
    const core::UpstreamCounters& c = live->counters;
    auto count = [&](core::CheckResult r) {
      return c.checks[static_cast<size_t>(r)].load(std::memory_order_relaxed);
    };
    stats[name] = UpstreamCheckStats{count(core::CheckResult::kSuccess),
                                     count(core::CheckResult::kFailure),
                                     count(core::CheckResult::kTimeout),
                                     c.checks_turned_unhealthy.load(std::memory_order_relaxed),
                                     c.checks_turned_healthy.load(std::memory_order_relaxed),
                                     0};
  }
  for (const auto& [key, state] : targets_) {
    if (state->unhealthy) ++stats[state->upstream].unhealthy_targets;
  }
  return stats;
}

void Prober::SchedulerLoop() {
  core::NameThisThread("health-sched");
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    const Clock::time_point next_probe = QueueDue(Clock::now());
    lock.lock();
    // Woken early by Stop, by a finished probe whose next check may be due
    // before `next_probe`, or by a newly published target.
    scheduler_cv_.wait_until(lock, std::min(next_probe, Clock::now() + std::chrono::hours(1)),
                             [this] { return stopping_ || wake_; });
    wake_ = false;
  }
}

void Prober::WorkerLoop() {
  core::NameThisThread("health-probe");
  std::unique_lock lock(mu_);
  while (true) {
    workers_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    // A target deleted while its probe waited: nothing to check.
    auto it = targets_.find(job.key);
    if (it == targets_.end() || it->second->generation != job.generation) continue;
    lock.unlock();
    const Clock::time_point started = Clock::now();
    const ProbeResult result = RunProbe(job.config, job.address, job.grpc.get());
    Complete(job, result, started);
    lock.lock();
  }
}

void Prober::TrackLocked(const core::UpstreamSnapshot& snapshot, const core::SnapshotTarget& target,
                         Clock::time_point now) {
  const std::string& upstream = snapshot.config().name;
  const core::ActiveHealthConfig& config = snapshot.config().active;
  std::unique_ptr<TargetState>& state = targets_[target.live.get()];
  if (state == nullptr) {
    state = std::make_unique<TargetState>();
    state->live = target.live;
    state->upstream = upstream;
    state->address = target.config.address;
    state->config = config;
    state->generation = next_generation_++;
    state->next_due = now;  // First check at once, as Envoy.
    due_.push(Due{now, target.live.get(), state->generation});
    // A verdict left by an earlier prober (Stop/Start) is kept.
    state->unhealthy = target.live->active_unhealthy.load(std::memory_order_acquire);
  } else if (state->config != config || state->address != target.config.address) {
    // Counts made under another check say nothing about this one.
    if (state->config.type != config.type || state->address != target.config.address) {
      state->grpc.reset();
    }
    state->config = config;
    state->address = target.config.address;
    state->successes = 0;
    state->failures = 0;
    if (now + config.interval < state->next_due) {
      // A shorter interval takes effect at once.
      state->next_due = now + config.interval;
      due_.push(Due{state->next_due, target.live.get(), state->generation});
    }
  }
  if (state->config.type == core::ActiveHealthConfig::Type::kGrpc && !state->grpc) {
    state->grpc = std::make_shared<GrpcHealthChannel>(state->address);
  }
  state->upstream_live = snapshot.live_ptr();
}

bool Prober::DropLocked(const std::string& upstream,
                        const absl::flat_hash_set<core::TargetLive*>& keep) {
  bool gave_back = false;
  for (auto it = targets_.begin(); it != targets_.end();) {
    TargetState& state = *it->second;
    if (state.upstream != upstream || keep.contains(it->first)) {
      ++it;
      continue;
    }
    // A target deleted, its upstream deleted, or checks turned off: the
    // health the checks had taken away is given back.
    if (state.unhealthy) {
      state.live->active_unhealthy.store(false, std::memory_order_release);
      gave_back = true;
    }
    targets_.erase(it++);
  }
  return gave_back;
}

void Prober::OnPublished(const std::string& name,
                         const std::shared_ptr<const core::UpstreamSnapshot>& snapshot) {
  const bool checked = snapshot != nullptr && snapshot->config().active.interval.count() > 0;
  absl::flat_hash_set<core::TargetLive*> keep;
  bool gave_back = false;
  {
    std::lock_guard lock(mu_);
    const Clock::time_point now = Clock::now();
    if (checked) {
      checked_[name] = snapshot->live_ptr();
      for (const core::SnapshotTarget& target : snapshot->targets()) {
        TrackLocked(*snapshot, target, now);
        keep.insert(target.live.get());
      }
    } else {
      checked_.erase(name);
    }
    gave_back = DropLocked(name, keep);
    wake_ = true;
  }
  scheduler_cv_.notify_all();
  if (gave_back) health_.HealthChanged(name);
}

Prober::Clock::time_point Prober::QueueDue(Clock::time_point now) {
  bool queued = false;
  Clock::time_point next = Clock::time_point::max();
  {
    std::lock_guard lock(mu_);
    while (!due_.empty()) {
      const Due due = due_.top();
      if (due.when > now) {
        next = due.when;
        break;
      }
      due_.pop();
      // Entries are never updated in place: one whose target is gone, was
      // re-planned, or is being checked is stale.
      auto it = targets_.find(due.key);
      if (it == targets_.end()) continue;
      TargetState& state = *it->second;
      if (state.generation != due.generation || state.in_flight || state.next_due != due.when) {
        continue;
      }
      if (options_.owns && !options_.owns(state.upstream)) {
        state.next_due = now + state.config.interval;
        due_.push(Due{state.next_due, due.key, state.generation});
        continue;
      }
      AdoptSharedVerdictLocked(state);
      state.in_flight = true;
      queue_.push_back(Job{due.key, state.generation, state.address, state.config, state.grpc});
      queued = true;
    }
  }
  if (queued) workers_cv_.notify_all();
  return next;
}

void Prober::AdoptSharedVerdictLocked(TargetState& state) {
  // The prober writes the verdict while this replica owns the upstream; a
  // different one is the last owner's, taken over with the upstream
  // (etcd::HealthShare), and the counts start again from it.
  const bool shared = state.live->active_unhealthy.load(std::memory_order_acquire);
  if (shared == state.unhealthy) return;
  state.unhealthy = shared;
  state.successes = 0;
  state.failures = 0;
}

bool Prober::JudgeLocked(TargetState& state, const ProbeResult& result) {
  core::UpstreamCounters& counters = state.upstream_live->counters;
  if (result.ok()) {
    state.failures = 0;
    ++state.successes;
    if (!state.unhealthy ||
        state.successes < std::max<uint32_t>(state.config.healthy_successes, 1)) {
      return false;
    }
    state.unhealthy = false;
    counters.checks_turned_healthy.fetch_add(1, std::memory_order_relaxed);
    state.live->active_unhealthy.store(false, std::memory_order_release);
    spdlog::info("active health check: target {} of upstream {} is healthy after {} successes",
                 state.address, state.upstream, state.successes);
    return true;
  }
  state.successes = 0;
  ++state.failures;
  if (state.unhealthy || state.failures < std::max<uint32_t>(state.config.unhealthy_failures, 1)) {
    spdlog::debug("active health check of {} in {}: {}", state.address, state.upstream,
                  result.detail);
    return false;
  }
  state.unhealthy = true;
  counters.checks_turned_unhealthy.fetch_add(1, std::memory_order_relaxed);
  state.live->active_unhealthy.store(true, std::memory_order_release);
  spdlog::warn(
      "active health check: target {} of upstream {} is unhealthy after {} failures (last: {})",
      state.address, state.upstream, state.failures, result.detail);
  return true;
}

void Prober::Complete(const Job& job, const ProbeResult& result, Clock::time_point started) {
  std::string changed;
  {
    std::lock_guard lock(mu_);
    auto it = targets_.find(job.key);
    if (it == targets_.end() || it->second->generation != job.generation) return;
    TargetState& state = *it->second;
    const core::CheckResult counted =
        result.kind == ProbeResult::Kind::kSuccess   ? core::CheckResult::kSuccess
        : result.kind == ProbeResult::Kind::kTimeout ? core::CheckResult::kTimeout
                                                     : core::CheckResult::kFailure;
    state.upstream_live->counters.checks[static_cast<size_t>(counted)].fetch_add(
        1, std::memory_order_relaxed);
    state.in_flight = false;
    wake_ = true;
    state.next_due = std::max(started + state.config.interval, Clock::now());
    due_.push(Due{state.next_due, job.key, state.generation});
    if (JudgeLocked(state, result)) changed = state.upstream;
  }
  // The next check of this target may be due before the scheduler's wake-up.
  scheduler_cv_.notify_all();
  if (!changed.empty()) health_.HealthChanged(changed);
}

}  // namespace picker::health
