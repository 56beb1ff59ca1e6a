#include "server/core/strategy/bounded_load.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

namespace picker::core {
namespace {

// Envoy's uniform_int: a number in [0, k) from the top of mt19937's range,
// rejecting the remainder.
uint32_t UniformInt(std::mt19937& random, uint32_t k) {
  uint32_t x = k;
  while (x >= k) {
    x = static_cast<uint32_t>(random() / ((static_cast<uint64_t>(std::mt19937::max()) + 1u) / k));
  }
  return x;
}

// Runs the shuffle over `order` (which must hold 0..n-1) and calls
// visit(index) for each probe until it returns true.
template <class Visit>
void WalkProbes(uint64_t hash, std::vector<uint32_t>& order, Visit visit) {
  const uint32_t n = static_cast<uint32_t>(order.size());
  // std::mt19937's constructor takes 32 bits: the hash is truncated, as in
  // Envoy.
  std::mt19937 random(static_cast<std::mt19937::result_type>(hash));
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t j = UniformInt(random, n - i);
    std::swap(order[i], order[i + j]);
    if (visit(order[i])) return;
  }
}

}  // namespace

BoundedLoad::BoundedLoad(const std::vector<StrategyHost>& hosts, uint32_t hash_balance_factor)
    : hash_balance_factor_(hash_balance_factor) {
  uint64_t sum = 0;
  for (const StrategyHost& host : hosts) sum += host.weight;
  hosts_.reserve(hosts.size());
  for (const StrategyHost& host : hosts) {
    // Envoy's normalizeHostWeights: weight * 1.0 / sum, in double.
    hosts_.push_back(Host{host.active_requests, host.weight * 1.0 / static_cast<double>(sum)});
  }
}

double BoundedLoad::OverloadFactor(uint32_t host, uint64_t upstream_active) const {
  // Envoy does this in uint32_t; 64 bits only differ past 4e9 / factor
  // active requests, where Envoy would wrap.
  const uint64_t total_slots = ((upstream_active + 1) * hash_balance_factor_ + 99) / 100;
  const uint64_t slots = std::max<uint64_t>(
      static_cast<uint64_t>(std::ceil(total_slots * hosts_[host].normalized_weight)), 1);
  const uint64_t active = hosts_[host].active_requests->load(std::memory_order_relaxed);
  return static_cast<double>(active) / static_cast<double>(slots);
}

template <class Passed>
uint32_t BoundedLoad::ChooseImpl(uint32_t chosen, uint64_t hash, uint64_t upstream_active,
                                 Passed passed) const {
  if (chosen == kNoHost) return kNoHost;
  double overload = OverloadFactor(chosen, upstream_active);
  if (overload <= 1.0) return chosen;
  passed(chosen, overload);

  // A per-thread scratch buffer: the walk needs a permutation of all hosts,
  // and the pick path must not allocate once the buffer has grown.
  thread_local std::vector<uint32_t> order;
  order.resize(hosts_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;

  uint32_t least_overloaded = chosen;
  double least_overload = overload;
  uint32_t result = kNoHost;
  WalkProbes(hash, order, [&](uint32_t candidate) {
    if (candidate == chosen) return false;
    overload = OverloadFactor(candidate, upstream_active);
    if (overload <= 1.0) {
      result = candidate;
      return true;
    }
    passed(candidate, overload);
    if (least_overload > overload) {
      least_overloaded = candidate;
      least_overload = overload;
    }
    return false;
  });
  return result != kNoHost ? result : least_overloaded;
}

uint32_t BoundedLoad::Choose(uint32_t chosen, uint64_t hash, uint64_t upstream_active) const {
  return ChooseImpl(chosen, hash, upstream_active, [](uint32_t, double) {});
}

uint32_t BoundedLoad::ChooseTraced(uint32_t chosen, uint64_t hash, uint64_t upstream_active,
                                   const std::function<void(uint32_t, double)>& passed) const {
  return ChooseImpl(chosen, hash, upstream_active, passed);
}

std::vector<uint32_t> BoundedLoadProbeOrder(uint64_t hash, uint32_t host_count) {
  std::vector<uint32_t> order(host_count);
  for (uint32_t i = 0; i < host_count; ++i) order[i] = i;
  std::vector<uint32_t> visited;
  visited.reserve(host_count);
  WalkProbes(hash, order, [&](uint32_t index) {
    visited.push_back(index);
    return false;
  });
  return visited;
}

}  // namespace picker::core
