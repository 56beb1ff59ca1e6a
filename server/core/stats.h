// Per-upstream counters kept as plain atomics on the pick path. The metrics
// layer reads them when Prometheus scrapes, so a pick pays one relaxed
// increment and never a label lookup.
#ifndef PICKER_SERVER_CORE_STATS_H_
#define PICKER_SERVER_CORE_STATS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <tuple>

namespace picker::core {

enum class PickResult : uint8_t { kOk, kUnavailable, kOverloaded };
inline constexpr size_t kPickResultCount = 3;
const char* PickResultName(PickResult result);

enum class ReleaseOutcome : uint8_t { kSuccess, kFailure, kTimeout, kExpired, kAbandoned };
inline constexpr size_t kReleaseOutcomeCount = 5;
const char* ReleaseOutcomeName(ReleaseOutcome outcome);

// Upper bounds of a histogram's buckets, in seconds.
using HistogramBounds = std::array<double, 16>;
// Request latencies as clients report them in Release: 100us to 60s.
inline constexpr HistogramBounds kRequestDurationBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   10,   60};
// picker's own time per Pick, an in-memory operation: 1us to 1s.
inline constexpr HistogramBounds kPickDurationBounds = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5,
                                                        1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                                        1e-2, 2.5e-2, 0.1,  1};

// A fixed-bucket histogram of durations, lock-free: an observation is two
// relaxed increments, so the pick path never waits on a metrics lock.
class DurationHistogram {
 public:
  explicit DurationHistogram(const HistogramBounds& bounds = kRequestDurationBounds)
      : bounds_(bounds) {}

  void Observe(std::chrono::nanoseconds duration);
  const HistogramBounds& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i; i == bounds().size() is the +Inf bucket.
  uint64_t BucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  double SumSeconds() const { return sum_ns_.load(std::memory_order_relaxed) * 1e-9; }

 private:
  const HistogramBounds& bounds_;
  std::array<std::atomic<uint64_t>, std::tuple_size_v<HistogramBounds> + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

struct UpstreamCounters {
  std::array<std::atomic<uint64_t>, kPickResultCount> picks{};
  std::array<std::atomic<uint64_t>, kReleaseOutcomeCount> releases{};
  std::atomic<uint64_t> panic_picks{0};
  std::atomic<uint64_t> ejections{0};
  DurationHistogram request_duration;

  void CountPick(PickResult r) {
    picks[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void CountRelease(ReleaseOutcome o) {
    releases[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STATS_H_
