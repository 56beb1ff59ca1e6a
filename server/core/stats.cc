#include "server/core/stats.h"

#include <algorithm>

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

void DurationHistogram::Observe(std::chrono::nanoseconds duration) {
  const double seconds = duration.count() * 1e-9;
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, duration.count())),
                    std::memory_order_relaxed);
}

}  // namespace picker::core
