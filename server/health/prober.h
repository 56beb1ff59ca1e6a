// Active health checks: probes the targets of every upstream whose
// configuration turns them on (ActiveHealthConfig::interval > 0), off the pick
// path, and feeds the results to the registry through
// TargetLive::active_unhealthy and Registry::MarkHealthChanged.
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
// on the registry's maintenance thread.
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
#include "server/core/config.h"
#include "server/core/registry.h"
#include "server/core/upstream.h"
#include "server/health/probes.h"

namespace picker::health {

// Counts of one upstream's checks since the prober started (monotonic while
// the upstream exists; dropped when it is deleted or its checks turned off).
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

class Prober {
 public:
  struct Options {
    // Probes that may run at once. Each silent target (no answer, packets
    // dropped) holds a worker for its timeout; up to `threads` of them at a
    // time cannot delay the checks of the others.
    int threads = 16;
    // How often the list of upstreams and targets is re-read to pick up
    // admin changes. Checks themselves run at their own intervals.
    std::chrono::milliseconds refresh_interval{100};
  };

  // `registry` must outlive the prober.
  explicit Prober(core::Registry& registry) : Prober(registry, Options()) {}
  Prober(core::Registry& registry, Options options);
  ~Prober();  // Stops.
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Starts the scheduler and workers. Idempotent.
  void Start();
  // Stops them; waits for running probes, each at most its timeout. The
  // targets keep their last verdict. Idempotent; call Start and Stop from
  // one thread (the server's main).
  void Stop();

  // Per-upstream counts, keyed by upstream name. Cheap: a copy under a lock.
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
  // Re-reads the registry: adds, updates and drops target states.
  void Refresh(Clock::time_point now);
  // Queues the probes that are due; returns when the next one is.
  Clock::time_point QueueDue(Clock::time_point now);
  void Complete(const Job& job, const ProbeResult& result, Clock::time_point started);

  core::Registry& registry_;
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
  std::map<std::string, UpstreamCheckStats> stats_;
  uint64_t next_generation_ = 1;

  std::thread scheduler_;
  std::vector<std::thread> workers_;
};

}  // namespace picker::health

#endif  // PICKER_SERVER_HEALTH_PROBER_H_
