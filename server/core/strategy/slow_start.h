// Envoy's slow start (EdfLoadBalancerBase::applySlowStartFactor), shared by
// RoundRobin and LeastRequest: a target that has just become healthy gets a
// fraction of its weight that grows with time until the window has passed.
//
//   // 30s window, aggression 1, floor 10%: 3s after start, 10% of the weight.
//   double f = SlowStartFactor(config.slow_start, since_ms, since_ms + 3000);
#ifndef PICKER_SERVER_CORE_STRATEGY_SLOW_START_H_
#define PICKER_SERVER_CORE_STRATEGY_SLOW_START_H_

#include <cstdint>
#include <vector>

#include "server/core/config.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

// True while a target healthy since `since_ms` (0 = long ago) is in its
// window at `now_ms`.
bool InSlowStart(const SlowStartConfig& config, int64_t since_ms, int64_t now_ms);

// Envoy's factor: with t = max(1ms, now - since) / window, it is
// max(t^(1 / aggression), min_weight_percent / 100) inside the window, and
// 1 outside it (or with slow start off).
double SlowStartFactor(const SlowStartConfig& config, int64_t since_ms, int64_t now_ms);

// True if any host is in its window at `now_ms` (Envoy's
// !noHostsAreInSlowStart()): RoundRobin and LeastRequest then pick by EDF.
bool AnyInSlowStart(const SlowStartConfig& config, const std::vector<StrategyHost>& hosts,
                    int64_t now_ms);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_SLOW_START_H_
