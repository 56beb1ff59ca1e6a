#include "server/core/strategy/target_load.h"

#include <algorithm>
#include <cmath>

namespace picker::core {

int64_t UnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void LatencyEwma::Observe(double sample_ns, int64_t now_ns, double tau_ns) {
  // The stamp only moves forward: a sample older than the newest one seen
  // (another thread's, or a clock stepped back) counts as no time, and the
  // interval up to the newest is not counted twice.
  int64_t previous = stamp_ns_.load(std::memory_order_acquire);
  while (now_ns > previous &&
         !stamp_ns_.compare_exchange_weak(previous, now_ns, std::memory_order_acq_rel)) {
  }
  const double dt =
      previous == 0 ? 0 : static_cast<double>(std::max<int64_t>(now_ns - previous, 0));
  const double w = std::exp(-dt / tau_ns);
  double current = ewma_ns_.load(std::memory_order_relaxed);
  double next;
  do {
    next = previous == 0 || sample_ns > current ? sample_ns : current * w + sample_ns * (1 - w);
  } while (!ewma_ns_.compare_exchange_weak(current, next, std::memory_order_relaxed));
}

std::optional<double> LatencyEwma::Read(int64_t now_ns, double tau_ns) const {
  const int64_t stamp = stamp_ns_.load(std::memory_order_acquire);
  if (stamp == 0) return std::nullopt;
  const double dt = static_cast<double>(std::max<int64_t>(now_ns - stamp, 0));
  return ewma_ns_.load(std::memory_order_relaxed) * std::exp(-dt / tau_ns);
}

void EndpointWeight::Observe(const LoadReport& report, double error_utilization_penalty,
                             Periods periods, int64_t now_ms) {
  const double utilization =
      report.application_utilization > 0 ? report.application_utilization : report.cpu_utilization;
  const double qps = report.rps_fractional;
  if (!(utilization > 0) || !(qps > 0)) return;  // A58: such a report is ignored.
  const double weight = qps / (utilization + report.eps / qps * error_utilization_penalty);
  // A58 restarts the blackout when the previous report had expired.
  const int64_t last = last_update_ms_.load(std::memory_order_relaxed);
  if (last == 0 || now_ms - last >= periods.expiration_ms) {
    non_empty_since_ms_.store(now_ms, std::memory_order_relaxed);
  }
  weight_.store(weight, std::memory_order_relaxed);
  last_update_ms_.store(now_ms, std::memory_order_release);
}

double EndpointWeight::Usable(Periods periods, int64_t now_ms) const {
  const int64_t last = last_update_ms_.load(std::memory_order_acquire);
  if (last == 0 || now_ms - last >= periods.expiration_ms) return 0;
  const int64_t since = non_empty_since_ms_.load(std::memory_order_relaxed);
  if (periods.blackout_ms > 0 && now_ms - since < periods.blackout_ms) return 0;
  return weight_.load(std::memory_order_relaxed);
}

}  // namespace picker::core
