// Active health checks: probes the targets of every upstream whose
// configuration turns them on (ActiveHealthConfig::interval > 0), off the pick
// path, and feeds the results back through TargetLive::active_unhealthy and
// core::HealthEvents (the control plane rebuilds the snapshot). It follows
// the upstreams from what the control plane publishes (PublishListener),
// one upstream at a time, never by reading the whole list; its counts go to
// the upstream's live counters, where metrics read them.
//
//   Prober prober(control_plane);
//   prober.Start();
//   control_plane.AddListener(&prober);
//
// Semantics (Kong's knobs, Envoy's behaviour):
// - A target starts healthy, as in Kong. Envoy holds a new host out of
//   rotation until its first check passes; picker does not, because targets
//   are added by operators and service discovery that already believe them
//   up, an upstream whose checks are turned on must not drop to zero
//   pickable targets until the first round completes, and a target added to
//   an upstream without checks would otherwise never be picked.
// - `unhealthy_failures` consecutive failures (errors, unlisted HTTP statuses,
//   NOT_SERVING, timeouts) make a healthy target unhealthy; `healthy_successes`
//   consecutive successes make an unhealthy target healthy. A result of the
//   other kind resets the count, so a flapping target keeps its state.
// - A target is checked again `interval` after its previous check started,
//   or as soon as that check ends when it took longer; never two checks of
//   one target at once.
// - Turning checks off (interval 0) returns the targets they had marked
//   unhealthy to health; changing the check configuration restarts the
//   consecutive counts but keeps each target's state.
// - A manual override (SetTargetHealth) wins over the check's verdict; the
//   checks keep running so that the verdict is current when it is cleared.
//
// Threads: one scheduler thread and a pool of workers that run the blocking
// probes, each bounded by its timeout, so a slow or silent target holds one
// worker for at most its timeout and the others carry on. Checks take no
// lock that picks take; a verdict reaches picks through a snapshot rebuild
// on the control plane's thread.
//
// Folder: server/health owns the active checks and their probes. It may use
// core/, and gRPC and libcurl as clients of the targets it probes.
#ifndef PICKER_SERVER_HEALTH_PROBER_H_
#define PICKER_SERVER_HEALTH_PROBER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "server/core/config.h"
#include "server/core/health_events.h"
#include "server/core/snapshot_map.h"
#include "server/core/upstream.h"
#include "server/health/probes.h"

namespace picker::health {

// Counts of one upstream's checks while the upstream exists (kept in its
// live counters; listed only while its checks are on).
struct UpstreamCheckStats {
  uint64_t successes = 0;
  uint64_t failures = 0;          // Errors, unlisted HTTP statuses, NOT_SERVING.
  uint64_t timeouts = 0;          // No answer within the timeout.
  uint64_t turned_unhealthy = 0;  // Healthy -> unhealthy transitions.
  uint64_t turned_healthy = 0;    // Unhealthy -> healthy transitions.
  // Targets the checks currently hold unhealthy.
  uint32_t unhealthy_targets = 0;

  bool operator==(const UpstreamCheckStats&) const = default;
};

class Prober final : public core::PublishListener {
 public:
  struct Options {
    // Probes that may run at once. Each silent target (no answer, packets
    // dropped) holds a worker for its timeout; up to `threads` of them at a
    // time cannot delay the checks of the others.
    int threads = 16;
    // With several replicas, whether this one owns `upstream` (and so checks
    // it): N replicas must not probe a target N times. A check of an
    // upstream owned elsewhere is skipped and asked again an interval
    // later, so that checks start here within an interval of ownership
    // moving here. Unset: every upstream is checked.
    std::function<bool(const std::string& upstream)> owns;
  };

  // `health` must outlive the prober.
  explicit Prober(core::HealthEvents& health) : Prober(health, Options()) {}
  Prober(core::HealthEvents& health, Options options);
  ~Prober();  // Stops.
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Starts the scheduler and workers. Idempotent.
  void Start();
  // Stops them; waits for running probes, each at most its timeout. The
  // targets keep their last verdict. Idempotent; call Start and Stop from
  // one thread (the server's main).
  void Stop();

  // An upstream was published (or deleted: null): its targets' checks are
  // added, changed or dropped to match.
  void OnPublished(const std::string& name,
                   const std::shared_ptr<const core::UpstreamSnapshot>& snapshot) override;

  // Per-upstream counts of the upstreams checked now, keyed by name.
  std::map<std::string, UpstreamCheckStats> Stats() const;

 private:
  struct TargetState;
  struct Job;
  using Clock = std::chrono::steady_clock;
  // When a target's next check is due; the earliest first.
  struct Due {
    Clock::time_point when;
    core::TargetLive* key;
    uint64_t generation;
    bool operator>(const Due& other) const { return when > other.when; }
  };

  void SchedulerLoop();
  void WorkerLoop();
  // Adds or updates the state of one checked target. Requires mu_.
  void TrackLocked(const core::UpstreamSnapshot& snapshot, const core::SnapshotTarget& target,
                   Clock::time_point now);
  // Counts a probe's result toward the target's verdict; true when the
  // verdict changed. Requires mu_.
  void AdoptSharedVerdictLocked(TargetState& state);
  bool JudgeLocked(TargetState& state, const ProbeResult& result);
  // Drops the states of `upstream`'s targets not in `keep`; true if one the
  // checks held unhealthy was given back its health. Requires mu_.
  bool DropLocked(const std::string& upstream, const absl::flat_hash_set<core::TargetLive*>& keep);
  // Queues the probes that are due; returns when the next one is.
  Clock::time_point QueueDue(Clock::time_point now);
  void Complete(const Job& job, const ProbeResult& result, Clock::time_point started);

  core::HealthEvents& health_;
  const Options options_;

  mutable std::mutex mu_;
  std::condition_variable scheduler_cv_;
  std::condition_variable workers_cv_;
  bool running_ = false;
  bool stopping_ = false;
  bool wake_ = false;  // A probe finished: the scheduler re-plans.
  // Keyed by the target's live state, which the entry holds so that the key
  // cannot be reused by another target while the entry exists.
  absl::flat_hash_map<core::TargetLive*, std::unique_ptr<TargetState>> targets_;
  // Planned checks, so that the scheduler's work per check does not grow
  // with the number of targets.
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::deque<Job> queue_;  // Due checks waiting for a worker.
  // The upstreams checked now, with their live counters.
  std::map<std::string, std::shared_ptr<core::UpstreamLive>> checked_;
  uint64_t next_generation_ = 1;

  std::thread scheduler_;
  std::vector<std::thread> workers_;
};

}  // namespace picker::health

#endif  // PICKER_SERVER_HEALTH_PROBER_H_
