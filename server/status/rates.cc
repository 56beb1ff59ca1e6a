#include "server/status/rates.h"

namespace picker::status {

std::optional<double> RateTracker::Rate(const std::string& key, uint64_t value,
                                        Clock::time_point now) {
  std::lock_guard lock(mu_);
  Forget(now);
  auto [it, inserted] = samples_.try_emplace(key);
  Sample& sample = it->second;
  sample.last_asked = now;
  if (inserted || value < sample.value) {
    sample = Sample{value, now, now, std::nullopt};
    return std::nullopt;
  }
  const Clock::duration elapsed = now - sample.at;
  if (elapsed >= min_interval_) {
    sample.rate =
        static_cast<double>(value - sample.value) / std::chrono::duration<double>(elapsed).count();
    sample.value = value;
    sample.at = now;
  }
  return sample.rate;
}

size_t RateTracker::size() const {
  std::lock_guard lock(mu_);
  return samples_.size();
}

void RateTracker::Forget(Clock::time_point now) {
  if (now - last_forget_ < std::chrono::minutes(1)) return;
  last_forget_ = now;
  absl::erase_if(samples_,
                 [&](const auto& entry) { return now - entry.second.last_asked > forget_after_; });
}

}  // namespace picker::status
