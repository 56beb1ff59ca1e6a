// What clients report about a target in Release, kept for the strategies
// that balance on it: the latency (PeakEwma) and the backend's ORCA load
// report (WeightedRoundRobin). One TargetLoad lives in each target's live
// state (core::TargetLive), so it outlives snapshots; releases write it
// lock-free, picks and weight refreshes only read it.
//
//   LatencyEwma ewma;
//   ewma.Observe(/*sample_ns=*/2e6, now_ns, /*tau_ns=*/10e9);
//   std::optional<double> latency = ewma.Read(now_ns + 1'000'000, 10e9);
#ifndef PICKER_SERVER_CORE_STRATEGY_TARGET_LOAD_H_
#define PICKER_SERVER_CORE_STRATEGY_TARGET_LOAD_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace picker::core {

// Nanoseconds since the Unix epoch, the clock of TargetLoad and of picks.
int64_t UnixNanos();

// Finagle's peak-sensitive EWMA of latencies (PeakEwma.scala): a sample
// above the average becomes the average at once (a new peak); otherwise the
// average moves toward the sample with weight 1 - exp(-dt / tau), dt being
// the time since the previous sample. Reading decays the average toward 0
// over the time since the last sample, as Finagle's reading does, without
// writing: a target nobody picks any more looks cheaper as time passes and
// is tried again.
class LatencyEwma {
 public:
  // Lock-free: concurrent observers each claim the time since the one
  // before them, so every interval decays the average once.
  void Observe(double sample_ns, int64_t now_ns, double tau_ns);
  // The average at `now_ns`, or nullopt before the first sample.
  std::optional<double> Read(int64_t now_ns, double tau_ns) const;

 private:
  std::atomic<double> ewma_ns_{0};
  std::atomic<int64_t> stamp_ns_{0};  // Time of the newest sample; 0 = none yet.
};

// The fields of an ORCA OrcaLoadReport (xds.data.orca.v3) that gRFC A58's
// weight uses.
struct LoadReport {
  double cpu_utilization = 0;
  double application_utilization = 0;
  double rps_fractional = 0;
  double eps = 0;
};

// gRFC A58's per-endpoint weight: qps / (utilization + eps / qps x
// error_utilization_penalty), where utilization is application_utilization
// if set, else cpu_utilization. A report without qps or utilization is
// ignored. The weight becomes usable once the target has reported for
// `blackout_period` without a gap longer than `weight_expiration_period`,
// and stops being usable when its last report is that old.
class EndpointWeight {
 public:
  struct Periods {
    int64_t blackout_ms = 0;
    int64_t expiration_ms = 0;
  };
  void Observe(const LoadReport& report, double error_utilization_penalty, Periods periods,
               int64_t now_ms);
  // The weight to use at `now_ms`, or 0 when there is none usable.
  double Usable(Periods periods, int64_t now_ms) const;

 private:
  std::atomic<double> weight_{0};
  std::atomic<int64_t> last_update_ms_{0};      // 0 = never.
  std::atomic<int64_t> non_empty_since_ms_{0};  // Start of the current run of reports.
};

struct TargetLoad {
  LatencyEwma latency;
  EndpointWeight weight;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_TARGET_LOAD_H_
