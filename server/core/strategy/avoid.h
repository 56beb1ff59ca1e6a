// How strategies honour PickParams::avoid, shared by all of them. Internal to
// the strategy library.
#ifndef PICKER_SERVER_CORE_STRATEGY_AVOID_H_
#define PICKER_SERVER_CORE_STRATEGY_AVOID_H_

#include <algorithm>
#include <cstdint>

#include "server/core/strategy/strategy.h"

namespace picker::core {

// Bound on the extra attempts of one pick, whatever the host count: an
// `exclude` list is short (a client's few retries), so a handful of attempts
// nearly always escapes it, and a pick must stay cheap.
inline constexpr uint32_t kMaxAvoidRetries = 10;

// For RoundRobin, LeastRequest, Random, PeakEwma and WeightedRoundRobin: as Envoy's retry
// predicate, pick again (advancing the cursor, schedule or random stream) while the pick is
// avoided, up to min(hosts, kMaxAvoidRetries) - 1 more times. If that fails,
// scan forward from the first pick for any host not avoided, so an excluded
// set that covers most hosts is still escaped. If every host is avoided,
// return the first pick: exclusion is best effort.
// `on_avoided(host)` hears each avoided pick (ExplainPick lists them).
template <class PickOnce, class OnAvoided>
uint32_t PickAvoidingTraced(uint32_t host_count, const PickParams& params, PickOnce pick_once,
                            OnAvoided on_avoided) {
  const uint32_t first = pick_once();
  if (!params.avoid(first)) return first;
  on_avoided(first);
  const uint32_t attempts = std::min(host_count, kMaxAvoidRetries);
  for (uint32_t i = 1; i < attempts; ++i) {
    const uint32_t host = pick_once();
    if (!params.avoid(host)) return host;
    on_avoided(host);
  }
  for (uint32_t k = 1; k < host_count; ++k) {
    const uint32_t host = (first + k) % host_count;
    if (!params.avoid(host)) return host;
  }
  return first;
}

template <class PickOnce>
uint32_t PickAvoiding(uint32_t host_count, const PickParams& params, PickOnce pick_once) {
  return PickAvoidingTraced(host_count, params, pick_once, [](uint32_t) {});
}

// For RingHash and Maglev: Envoy's ThreadAwareLoadBalancerBase attempt loop.
// Attempt k asks the table for `choose(hash, k)` (each table perturbs its
// lookup by k its own way) and the first host not avoided wins; when all
// attempts are avoided the last candidate is returned, as Envoy. Envoy's
// bound is the route's host_selection_retry_max_attempts; picker has no such
// setting and uses min(hosts, kMaxAvoidRetries) retries (none for one host).
// `on_avoided(host)` hears each avoided candidate.
template <class Choose, class OnAvoided>
uint32_t PickHashedAvoidingTraced(uint32_t host_count, const PickParams& params, Choose choose,
                                  OnAvoided on_avoided) {
  const uint32_t retries = host_count <= 1 ? 0 : std::min(host_count, kMaxAvoidRetries);
  uint32_t host = kNoHost;
  for (uint32_t attempt = 0; attempt <= retries; ++attempt) {
    host = choose(params.hash, attempt);
    if (host == kNoHost || !params.avoid(host)) return host;
    on_avoided(host);
  }
  return host;
}

template <class Choose>
uint32_t PickHashedAvoiding(uint32_t host_count, const PickParams& params, Choose choose) {
  return PickHashedAvoidingTraced(host_count, params, choose, [](uint32_t) {});
}

// A random choice's candidates: `share(host)` over the hosts not avoided,
// normalised (a pick that lands on an avoided host draws again), or over
// all hosts when every one is avoided (exclusion is best effort).
template <class Share>
std::vector<StrategyExplanation::Candidate> RandomCandidates(uint32_t host_count,
                                                             const PickParams& params,
                                                             Share share) {
  std::vector<StrategyExplanation::Candidate> out;
  double total = 0;
  for (int pass = 0; pass < 2 && out.empty(); ++pass) {
    for (uint32_t h = 0; h < host_count; ++h) {
      if (pass == 0 && params.avoid(h)) continue;
      const double s = share(h);
      if (s <= 0) continue;
      out.push_back({h, s, 0});
      total += s;
    }
  }
  for (auto& c : out) c.probability /= total;
  return out;
}

// True if all weights are equal (Envoy's hostWeightsAreEqual), in which case
// RoundRobin and LeastRequest skip the EDF schedule.
inline bool WeightsAreEqual(const std::vector<StrategyHost>& hosts) {
  for (const StrategyHost& host : hosts) {
    if (host.weight != hosts.front().weight) return false;
  }
  return true;
}

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_AVOID_H_
