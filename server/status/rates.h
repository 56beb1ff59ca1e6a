// Rates of counters that only grow (picks), computed when a status page
// asks rather than kept on the pick path: the tracker remembers a counter's
// value at an earlier request, and the rate is the change since then over
// the time between them.
//
//   RateTracker rates;
//   rates.Rate("users", picks, now);   // nullopt the first time
//   rates.Rate("users", picks2, now + 2s);   // (picks2 - picks) / 2
//
// A sample is replaced only once `min_interval` has passed, so several
// pages refreshing at once still see rates over at least that long;
// between, the last rate is given again. A counter that went down (an
// upstream deleted and created again) starts over. Samples not asked for
// during `forget_after` are dropped. Thread-safe.
#ifndef PICKER_SERVER_STATUS_RATES_H_
#define PICKER_SERVER_STATUS_RATES_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"

namespace picker::status {

class RateTracker {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateTracker(Clock::duration min_interval = std::chrono::seconds(1),
                       Clock::duration forget_after = std::chrono::minutes(10))
      : min_interval_(min_interval), forget_after_(forget_after) {}

  // Per second.
  std::optional<double> Rate(const std::string& key, uint64_t value, Clock::time_point now);
  size_t size() const;

 private:
  struct Sample {
    uint64_t value = 0;
    Clock::time_point at;
    Clock::time_point last_asked;
    std::optional<double> rate;
  };
  // Drops samples not asked for in forget_after_; at most once a minute.
  void Forget(Clock::time_point now);

  const Clock::duration min_interval_;
  const Clock::duration forget_after_;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, Sample> samples_;  // Guarded by mu_.
  Clock::time_point last_forget_;                     // Guarded by mu_.
};

}  // namespace picker::status

#endif  // PICKER_SERVER_STATUS_RATES_H_
