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

namespace picker::core {

enum class PickResult : uint8_t { kOk, kUnavailable, kOverloaded };
inline constexpr size_t kPickResultCount = 3;
const char* PickResultName(PickResult result);

enum class ReleaseOutcome : uint8_t { kSuccess, kFailure, kTimeout, kExpired, kAbandoned };
inline constexpr size_t kReleaseOutcomeCount = 5;
const char* ReleaseOutcomeName(ReleaseOutcome outcome);

// A fixed-bucket histogram of durations, lock-free.
class DurationHistogram {
 public:
  // Upper bounds in seconds, from 100us to 60s: request latencies as clients
  // report them.
  static constexpr std::array<double, 16> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                     1,      2.5,     10,     60};

  void Observe(std::chrono::nanoseconds duration);
  // Non-cumulative count of bucket i; i == kBounds.size() is the +Inf bucket.
  uint64_t BucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  double SumSeconds() const { return sum_ns_.load(std::memory_order_relaxed) * 1e-9; }

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

struct UpstreamCounters {
  std::array<std::atomic<uint64_t>, kPickResultCount> picks{};
  std::array<std::atomic<uint64_t>, kReleaseOutcomeCount> releases{};
  std::atomic<uint64_t> panic_picks{0};
  std::atomic<uint64_t> ejections{0};
  DurationHistogram request_duration;

  void CountPick(PickResult r) { picks[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed); }
  void CountRelease(ReleaseOutcome o) {
    releases[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STATS_H_
