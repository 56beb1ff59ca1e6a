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
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "server/core/per_thread.h"

namespace picker::core {

enum class PickResult : uint8_t { kOk, kUnavailable, kOverloaded };
inline constexpr size_t kPickResultCount = 3;
const char* PickResultName(PickResult result);

enum class ReleaseOutcome : uint8_t { kSuccess, kFailure, kTimeout, kExpired, kAbandoned };
inline constexpr size_t kReleaseOutcomeCount = 5;
const char* ReleaseOutcomeName(ReleaseOutcome outcome);

enum class CheckResult : uint8_t { kSuccess, kFailure, kTimeout };
inline constexpr size_t kCheckResultCount = 3;
const char* CheckResultName(CheckResult result);

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

// The counts of a fixed-bucket histogram of durations, lock-free: an
// observation is two relaxed increments, so the pick path never waits on a
// metrics lock.
struct HistogramCounts {
  std::array<std::atomic<uint64_t>, std::tuple_size_v<HistogramBounds> + 1> buckets{};
  std::atomic<uint64_t> sum_ns{0};

  void Observe(const HistogramBounds& bounds, std::chrono::nanoseconds duration);
};

// A histogram that the picks of one upstream (or another narrow source)
// observe.
class DurationHistogram {
 public:
  explicit DurationHistogram(const HistogramBounds& bounds = kRequestDurationBounds)
      : bounds_(bounds) {}

  void Observe(std::chrono::nanoseconds duration) { counts_.Observe(bounds_, duration); }
  const HistogramBounds& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i; i == bounds().size() is the +Inf bucket.
  uint64_t BucketCount(size_t i) const {
    return counts_.buckets[i].load(std::memory_order_relaxed);
  }
  double SumSeconds() const { return counts_.sum_ns.load(std::memory_order_relaxed) * 1e-9; }

 private:
  const HistogramBounds& bounds_;
  HistogramCounts counts_;
};

// A histogram that every pick observes: one shard of counts per thread, so
// that picks on different cores do not write the same counters. Reads add
// the shards up.
class PerThreadDurationHistogram {
 public:
  explicit PerThreadDurationHistogram(const HistogramBounds& bounds) : bounds_(bounds) {}

  void Observe(std::chrono::nanoseconds duration) { shards_.Local().Observe(bounds_, duration); }
  const HistogramBounds& bounds() const { return bounds_; }
  uint64_t BucketCount(size_t i) const {
    return shards_.Sum(
        [i](const HistogramCounts& c) { return c.buckets[i].load(std::memory_order_relaxed); });
  }
  double SumSeconds() const {
    return shards_.Sum([](const HistogramCounts& c) {
      return c.sum_ns.load(std::memory_order_relaxed);
    }) * 1e-9;
  }

 private:
  const HistogramBounds& bounds_;
  PerThread<HistogramCounts> shards_;
};

// A histogram of values with bounds chosen at construction, for figures
// off the pick path.
class ValueHistogram {
 public:
  explicit ValueHistogram(std::vector<double> bounds);

  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Non-cumulative count of bucket i; i == bounds().size() is the +Inf bucket.
  uint64_t BucketCount(size_t i) const;
  double Sum() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> buckets_;  // Guarded by mu_.
  double sum_ = 0;                 // Guarded by mu_.
};

// The control plane's writer, batch by batch (group commit): how long the
// store took to make a batch durable, and how many writes it answered.
struct WriterStats {
  ValueHistogram commit_duration{
      {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 10}};
  ValueHistogram commit_writes{{1, 2, 4, 8, 16, 32, 64}};
};

// The two gRPC listeners, for figures kept per listener.
enum class Listener : uint8_t { kData, kAdmin };
inline constexpr size_t kListenerCount = 2;

// Figures of the process's guards (the accept loops, the overload manager)
// and of its store, kept by those components and read by metrics at scrape
// time. One instance, owned by the wiring (picker-server.cc).
struct ProcessStats {
  // The overload manager (--max-memory) sets this while the allocator's
  // bytes in use are above the limit. Every pick reads it: it sits alone on
  // its cache line and is written only when the state changes.
  alignas(64) std::atomic<bool> overloaded{false};
  alignas(64) std::atomic<uint64_t> memory_in_use{0};  // Last sample, bytes.
  uint64_t max_memory = 0;                             // 0 = overload manager off.
  std::atomic<uint64_t> overload_refused_picks{0};
  std::atomic<uint64_t> overload_refused_writes{0};
  // The accept loops (server/net): connections open now, and refused at
  // --max-connections.
  std::array<std::atomic<int64_t>, kListenerCount> connections{};
  std::array<std::atomic<uint64_t>, kListenerCount> connections_refused{};
  // Accepts that failed for want of descriptors or memory (EMFILE, ENFILE,
  // ENOBUFS, ENOMEM); the loop waits and accepts again.
  std::array<std::atomic<uint64_t>, kListenerCount> accept_failures{};
  // Records the file store found damaged at start, loading the older whole
  // record of the upstream instead.
  std::atomic<uint64_t> store_damaged_records{0};
};

// The overload manager's rule for an admin write (of any admin API): while
// overloaded, a write other than a delete is refused, RESOURCE_EXHAUSTED,
// and counted; deletes free memory and go through, as reads do. OK when
// `stats` is null or not overloaded.
absl::Status RefuseWriteWhenOverloaded(ProcessStats* stats, bool is_delete);

struct UpstreamCounters {
  std::array<std::atomic<uint64_t>, kPickResultCount> picks{};
  std::array<std::atomic<uint64_t>, kReleaseOutcomeCount> releases{};
  std::atomic<uint64_t> panic_picks{0};
  std::atomic<uint64_t> ejections{0};
  DurationHistogram request_duration;
  // Active health checks (written by the prober).
  std::array<std::atomic<uint64_t>, kCheckResultCount> checks{};
  std::atomic<uint64_t> checks_turned_healthy{0};
  std::atomic<uint64_t> checks_turned_unhealthy{0};

  void CountPick(PickResult r) {
    picks[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  void CountRelease(ReleaseOutcome o) {
    releases[static_cast<size_t>(o)].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STATS_H_
