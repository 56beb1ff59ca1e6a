#include "server/core/strategy/slow_start.h"

#include <algorithm>
#include <cmath>

namespace picker::core {

bool InSlowStart(const SlowStartConfig& config, int64_t since_ms, int64_t now_ms) {
  return config.enabled() && since_ms != 0 && now_ms - since_ms < config.window.count();
}

double SlowStartFactor(const SlowStartConfig& config, int64_t since_ms, int64_t now_ms) {
  if (!InSlowStart(config, since_ms, now_ms)) return 1.0;
  // Envoy counts whole milliseconds, at least one.
  const double time_factor = static_cast<double>(std::max<int64_t>(1, now_ms - since_ms)) /
                             static_cast<double>(config.window.count());
  // Envoy skips pow() when it would change nothing.
  const double aggressed = config.aggression == 1.0 || time_factor == 1.0
                               ? time_factor
                               : std::pow(time_factor, 1.0 / config.aggression);
  return std::max(aggressed, config.min_weight_percent / 100.0);
}

bool AnyInSlowStart(const SlowStartConfig& config, const std::vector<StrategyHost>& hosts,
                    int64_t now_ms) {
  return std::any_of(hosts.begin(), hosts.end(), [&](const StrategyHost& host) {
    return InSlowStart(config, host.healthy_since_ms, now_ms);
  });
}

}  // namespace picker::core
