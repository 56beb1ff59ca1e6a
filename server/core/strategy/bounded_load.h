// Consistent hashing with bounded loads (Envoy's hash_balance_factor,
// BoundedLoadHashingLoadBalancer in thread_aware_lb_impl.cc).
#ifndef PICKER_SERVER_CORE_STRATEGY_BOUNDED_LOAD_H_
#define PICKER_SERVER_CORE_STRATEGY_BOUNDED_LOAD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "server/core/strategy/strategy.h"

namespace picker::core {

// Caps each host at `factor / 100` times its weighted share of the
// upstream's active requests. When the host the ring or table chose is over
// its cap, hosts are probed in a pseudo-random order seeded by the request
// hash (so one key always walks the same way) and the first host within its
// cap wins, else the least overloaded.
class BoundedLoad {
 public:
  // `hosts` in host-set order, the order the probe walk indexes;
  // `hash_balance_factor` >= 100.
  BoundedLoad(const std::vector<StrategyHost>& hosts, uint32_t hash_balance_factor);

  // Envoy's chooseHost after the underlying table chose `chosen` for `hash`.
  // `upstream_active` is the upstream's total of active requests. Does not
  // allocate (the walk uses a per-thread scratch buffer).
  uint32_t Choose(uint32_t chosen, uint64_t hash, uint64_t upstream_active) const;
  // Choose, telling `passed(host, overload)` of each host it passes over
  // (ExplainPick).
  uint32_t ChooseTraced(uint32_t chosen, uint64_t hash, uint64_t upstream_active,
                        const std::function<void(uint32_t, double)>& passed) const;

  // active / slots, where slots = max(ceil(total_slots * w_norm), 1) and
  // total_slots = ((upstream_active + 1) * factor + 99) / 100.
  double OverloadFactor(uint32_t host, uint64_t upstream_active) const;

  size_t memory_bytes() const { return hosts_.capacity() * sizeof(Host); }

 private:
  template <class Passed>
  uint32_t ChooseImpl(uint32_t chosen, uint64_t hash, uint64_t upstream_active,
                      Passed passed) const;
  struct Host {
    const std::atomic<uint64_t>* active_requests;
    double normalized_weight;
  };
  std::vector<Host> hosts_;
  uint32_t hash_balance_factor_;
};

// The order in which the walk visits host indices for `hash` among
// `host_count` hosts: a Fisher-Yates shuffle driven by std::mt19937 seeded
// with the hash truncated to 32 bits, drawing with Envoy's own uniform_int
// (portable, unlike std::uniform_int_distribution). Exposed for tests.
std::vector<uint32_t> BoundedLoadProbeOrder(uint64_t hash, uint32_t host_count);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_BOUNDED_LOAD_H_
