// The interface every load-balancing strategy implements.
//
// A strategy is built once per upstream snapshot from the hosts that can be
// picked (weight > 0, in host-set order) and is then only read: Pick is a
// const function of what was built (a ring, a table, cumulative weights),
// called on many threads at once. The little that picks change as they go
// (a round-robin cursor, an EDF schedule) is a separate PickState that the
// strategy makes and the snapshot keeps beside it; admin writes never touch
// it, they build a new strategy and a new state instead.
//
//   BuiltStrategy built = BuildStrategy(config, hosts, seed);
//   uint32_t host = built.Pick(params);   // strategy->Pick(params, state)
//
// Folder: server/core/strategy owns the strategies, one pair of files each.
// It uses core's config types and hash/ only.
#ifndef PICKER_SERVER_CORE_STRATEGY_STRATEGY_H_
#define PICKER_SERVER_CORE_STRATEGY_STRATEGY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "server/core/config.h"
#include "server/core/strategy/target_load.h"

namespace picker::core {

// One pickable host as a strategy sees it. Strategies name hosts by their
// position in the vector they were built from.
struct StrategyHost {
  // Consistent-hash key (the target's hash_key, else its canonical address).
  // Points into the snapshot that owns the strategy and outlives it.
  std::string_view hash_key;
  // Always > 0: weight-0 targets are never given to a strategy.
  uint32_t weight = 1;
  // The target's live active-request counter. Counters are owned outside the
  // snapshot and outlive it, so a rebuild loses no count.
  const std::atomic<uint64_t>* active_requests = nullptr;
  // Unix ms when the target last became healthy, for slow start; 0 = long
  // ago (tests that use no slow start leave it).
  int64_t healthy_since_ms = 0;
  // What releases report about the target (latency, load reports), for
  // PeakEwma and WeightedRoundRobin. Outlives the snapshot, as the counter.
  const TargetLoad* load = nullptr;
};

inline constexpr uint32_t kNoHost = std::numeric_limits<uint32_t>::max();

// Inputs of one pick. Cheap to build on the stack; nothing here allocates.
struct PickParams {
  // Request hash for consistent-hashing strategies: from the hash policies,
  // from PickRequest.hash, or random when neither gave one (as Envoy).
  uint64_t hash = 0;
  // True if the host at this index should be avoided when another choice
  // exists (excluded by the client's retry). Best effort, like Envoy's retry
  // host predicate.
  absl::FunctionRef<bool(uint32_t)> avoid;
  // Uniform 64-bit random numbers (per-thread generator in the server,
  // scripted sequences in tests).
  absl::FunctionRef<uint64_t()> random;
  // Active requests over the whole upstream: bounded-load hashing needs it
  // (Envoy's cluster upstream_rq_active).
  uint64_t upstream_active_requests = 0;
  // Unix ns of the pick, for weights that change with time (slow start,
  // PeakEwma's decay). 0: the strategy reads the clock if it needs it.
  int64_t now_ns = 0;
};

// The time of a pick: params.now_ns, else the clock.
inline int64_t PickTime(const PickParams& params) {
  return params.now_ns != 0 ? params.now_ns : UnixNanos();
}

// The power of k choices (LeastRequest, PeakEwma): k draws with
// replacement among `eligible`, a later draw replacing the candidate only
// when strictly better (a lower `key`). The chance that `host` wins, for
// ExplainPick: every draw lands on a host at least as bad, one at least on
// a host as good, and the first of those is `host`:
// ((worse + equal)^k - worse^k) / n^k / equal.
double ChoicesWinProbability(uint32_t host, const std::vector<uint32_t>& eligible,
                             uint32_t choice_count, absl::FunctionRef<double(uint32_t)> key);

// Facts about a built strategy, for metrics and benchmarks.
struct StrategyStats {
  uint64_t entries = 0;  // ring entries or table slots; 0 for others.
  uint64_t min_entries_per_host = 0;
  uint64_t max_entries_per_host = 0;
  size_t memory_bytes = 0;  // heap bytes held by the built structure.
};

// How a strategy would choose, for ExplainPick: what Pick would return now,
// worked out without moving the pick state (a cursor read, not advanced; a
// copy of an EDF schedule popped, not the schedule). Host indices are the
// strategy's, as Pick's.
struct StrategyExplanation {
  // True when the choice is fixed now (a hash, a cursor, a schedule).
  bool deterministic = false;
  // The host a deterministic pick returns.
  uint32_t chosen = kNoHost;
  // RingHash: the ring entry index and its hash; Maglev: the table slot.
  std::optional<uint64_t> entry;
  std::optional<uint64_t> entry_hash;
  // Hosts passed over before the choice, in order: over their bounded-load
  // cap (`overload` = active / cap), or avoided (excluded, circuit breaker).
  struct Passed {
    uint32_t host;
    bool avoided;
    double overload;
  };
  std::vector<Passed> passed_over;
  // A random choice: the hosts it can return and their probability. For
  // LeastRequest, `weight` is the weight the choice used.
  struct Candidate {
    uint32_t host;
    double probability;
    double weight;
  };
  std::vector<Candidate> candidates;
  // How the choice was made, in words ("ring entry 17 of 1024").
  std::string rule;
};

// What the picks of one built strategy change as they go: a round-robin
// cursor, an EDF schedule. Users see it as picks that alternate, so one state
// is shared by every thread that picks the strategy.
class PickState {
 public:
  virtual ~PickState() = default;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  // A state for picks, started from `seed` (Envoy draws it at random per
  // worker; tests fix it). Null for strategies whose picks change nothing
  // (Random, RingHash, Maglev, LeastRequest with equal weights).
  virtual std::unique_ptr<PickState> NewPickState(uint64_t seed) const { return nullptr; }
  // Returns the index of the chosen host, or kNoHost when built from no
  // host. Thread-safe. `state` is what NewPickState made for this strategy.
  virtual uint32_t Pick(const PickParams& params, PickState* state) const = 0;
  virtual StrategyStats Stats() const = 0;
  // For consistent hashing (RingHash, Maglev): the share of the 64-bit hash
  // space each host owns in what was built, by host index, summing to 1.
  // Empty for the other strategies. Off the pick path (status page).
  virtual std::vector<double> HashShares() const { return {}; }
  // For strategies whose weights are recomputed on a timer, off the pick
  // path (WeightedRoundRobin): how often; 0 for the others.
  virtual Millis RefreshPeriod() const { return Millis(0); }
  // Recomputes the weights at `now_ns` into `state` (the one NewPickState
  // made) and reseeds its schedule with `seed`. Thread-safe with picks.
  virtual void Refresh(PickState* state, int64_t now_ns, uint64_t seed) const {}
  // What Pick(params, state) would return now, and why, leaving `state` as
  // it is (a lock in it may be taken to copy it). `random_hash` says that
  // params.hash would be drawn at random (the request gave none): the
  // choice is then random. Unset when the strategy does not explain itself;
  // the caller then lists the hosts by weight share.
  virtual std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash,
                                                     PickState* state) const {
    return std::nullopt;
  }
};

// A strategy and the state its picks change, as a snapshot holds them.
struct BuiltStrategy {
  std::unique_ptr<const Strategy> strategy;
  std::unique_ptr<PickState> state;

  uint32_t Pick(const PickParams& params) const { return strategy->Pick(params, state.get()); }
  void Refresh(int64_t now_ns, uint64_t seed) const {
    strategy->Refresh(state.get(), now_ns, seed);
  }
  std::optional<StrategyExplanation> Explain(const PickParams& params, bool random_hash) const {
    return strategy->Explain(params, random_hash, state.get());
  }
};

// Builds the strategy that `config.kind` names over `hosts`, and its pick
// state from `seed`, as things stand at `now_ns` (who is in slow start,
// the latencies and weights reported so far). `config` has been validated.
BuiltStrategy BuildStrategy(const LoadBalancerConfig& config, std::vector<StrategyHost> hosts,
                            uint64_t seed, int64_t now_ns = UnixNanos());

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_STRATEGY_H_
