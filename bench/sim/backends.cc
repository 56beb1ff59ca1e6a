#include "bench/sim/backends.h"

#include <algorithm>
#include <thread>

#include "picker/v1/picker.pb.h"

namespace picker::sim {
namespace {

int64_t Ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

void Backend::StartCold(double factor, std::chrono::milliseconds warmup) {
  cold_factor_.store(factor);
  cold_ns_.store(std::max<int64_t>(1, std::chrono::nanoseconds(warmup).count()));
  cold_until_ns_.store(Ns(Clock::now()) + std::chrono::nanoseconds(warmup).count());
}

double Backend::ServiceFactor(Clock::time_point now) const {
  double factor = slowdown_.load();
  const int64_t left = cold_until_ns_.load() - Ns(now);
  if (left > 0) {
    const double share = static_cast<double>(left) / static_cast<double>(cold_ns_.load());
    factor *= 1 + (cold_factor_.load() - 1) * share;
  }
  return factor;
}

std::chrono::nanoseconds Backend::Serve(std::mt19937_64& rng) {
  const Clock::time_point arrived = Clock::now();
  {
    std::unique_lock lock(mu_);
    free_.wait(lock, [this] { return busy_ < shape_.slots; });
    ++busy_;
  }
  // Service times vary around the mean: half fixed, half exponential.
  std::exponential_distribution<double> tail(1.0);
  const double mean_ns = std::chrono::nanoseconds(shape_.base).count() * ServiceFactor(arrived);
  const auto service =
      std::chrono::nanoseconds(static_cast<int64_t>(mean_ns * (0.5 + 0.5 * tail(rng))));
  std::this_thread::sleep_for(service);
  {
    std::lock_guard lock(mu_);
    --busy_;
  }
  free_.notify_one();
  completed_.fetch_add(1);
  busy_ns_.fetch_add(service.count());
  return Clock::now() - arrived;
}

void Backend::Tick(Clock::time_point now) {
  const double seconds = std::chrono::duration<double>(now - last_tick_).count();
  if (seconds <= 0) return;
  const uint64_t completed = completed_.load();
  const int64_t busy = busy_ns_.load();
  qps_.store(static_cast<double>(completed - last_completed_) / seconds);
  utilization_.store(shape_.background_utilization +
                     static_cast<double>(busy - last_busy_ns_) / 1e9 / seconds / shape_.slots);
  last_completed_ = completed;
  last_busy_ns_ = busy;
  last_tick_ = now;
}

std::string Backend::LoadReport() const {
  v1::OrcaLoadReport report;
  report.set_cpu_utilization(utilization_.load());
  report.set_rps_fractional(qps_.load());
  return report.SerializeAsString();
}

}  // namespace picker::sim
