#include "server/core/stats.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace picker::core {

const char* PickResultName(PickResult result) {
  switch (result) {
    case PickResult::kOk:
      return "ok";
    case PickResult::kUnavailable:
      return "unavailable";
    case PickResult::kOverloaded:
      return "overloaded";
  }
  return "unknown";
}

const char* ReleaseOutcomeName(ReleaseOutcome outcome) {
  switch (outcome) {
    case ReleaseOutcome::kSuccess:
      return "success";
    case ReleaseOutcome::kFailure:
      return "failure";
    case ReleaseOutcome::kTimeout:
      return "timeout";
    case ReleaseOutcome::kExpired:
      return "expired";
    case ReleaseOutcome::kAbandoned:
      return "abandoned";
  }
  return "unknown";
}

const char* CheckResultName(CheckResult result) {
  switch (result) {
    case CheckResult::kSuccess:
      return "success";
    case CheckResult::kFailure:
      return "failure";
    case CheckResult::kTimeout:
      return "timeout";
  }
  return "unknown";
}

void HistogramCounts::Observe(const HistogramBounds& bounds, std::chrono::nanoseconds duration) {
  const double seconds = duration.count() * 1e-9;
  const size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
  buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_ns.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, duration.count())),
                   std::memory_order_relaxed);
}

ValueHistogram::ValueHistogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void ValueHistogram::Observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  std::lock_guard lock(mu_);
  ++buckets_[bucket];
  sum_ += value;
}

uint64_t ValueHistogram::BucketCount(size_t i) const {
  std::lock_guard lock(mu_);
  return buckets_[i];
}

double ValueHistogram::Sum() const {
  std::lock_guard lock(mu_);
  return sum_;
}

absl::Status RefuseWriteWhenOverloaded(ProcessStats* stats, bool is_delete) {
  if (stats == nullptr || is_delete || !stats->overloaded.load(std::memory_order_relaxed)) {
    return absl::OkStatus();
  }
  stats->overload_refused_writes.fetch_add(1, std::memory_order_relaxed);
  return absl::ResourceExhaustedError(absl::StrCat(
      "picker-server is overloaded: ", stats->memory_in_use.load(std::memory_order_relaxed),
      " bytes of memory in use, above --max-memory ", stats->max_memory,
      "; writes other than deletes are refused until it falls"));
}

}  // namespace picker::core
