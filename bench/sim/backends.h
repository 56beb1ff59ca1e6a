// The in-process backends of picker-sim: each one serves a request by
// holding one of its worker slots for a service time (waiting for a free
// slot first, so an overloaded backend queues), and reports ORCA figures
// of its own recent past (qps, utilization), as a backend's
// endpoint-load-metrics-bin trailer would.
//
//   Backend b({.slots = 4, .base = 2ms});
//   std::chrono::nanoseconds latency = b.Serve(rng);  // queueing + service
//   std::string report = b.LoadReport();              // serialized OrcaLoadReport
#ifndef PICKER_BENCH_SIM_BACKENDS_H_
#define PICKER_BENCH_SIM_BACKENDS_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

namespace picker::sim {

using Clock = std::chrono::steady_clock;

struct BackendShape {
  int slots = 4;                         // Requests served at once.
  std::chrono::microseconds base{2000};  // Mean service time.
  double background_utilization = 0;     // Reported on top of its own load.
};

class Backend {
 public:
  explicit Backend(BackendShape shape) : shape_(shape) {}

  // Service time multiplier from now on (5 for "five times slower").
  void SetSlowdown(double factor) { slowdown_.store(factor); }
  // Cold for `warmup` from now: service starts `factor` times slower and
  // falls linearly to normal (caches filling, JIT, connection pools).
  void StartCold(double factor, std::chrono::milliseconds warmup);

  // Serves one request on the calling thread; returns its latency (waiting
  // for a slot included).
  std::chrono::nanoseconds Serve(std::mt19937_64& rng);

  // Updates qps and utilization over the time since the last tick.
  void Tick(Clock::time_point now);
  // A serialized picker.v1.OrcaLoadReport (ORCA's field numbers): qps as
  // rps_fractional, utilization as cpu_utilization.
  std::string LoadReport() const;

 private:
  double ServiceFactor(Clock::time_point now) const;

  const BackendShape shape_;
  std::atomic<double> slowdown_{1};
  std::atomic<int64_t> cold_until_ns_{0};
  std::atomic<int64_t> cold_ns_{1};
  std::atomic<double> cold_factor_{1};

  std::mutex mu_;
  std::condition_variable free_;
  int busy_ = 0;  // Guarded by mu_.

  std::atomic<uint64_t> completed_{0};
  std::atomic<int64_t> busy_ns_{0};
  // The figures of the last tick, and what they were computed from.
  std::atomic<double> qps_{0};
  std::atomic<double> utilization_{0};
  uint64_t last_completed_ = 0;
  int64_t last_busy_ns_ = 0;
  Clock::time_point last_tick_ = Clock::now();
};

}  // namespace picker::sim

#endif  // PICKER_BENCH_SIM_BACKENDS_H_
