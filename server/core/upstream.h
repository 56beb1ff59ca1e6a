// An upstream as picks see it: an immutable snapshot of its configuration,
// its targets with their health, and the strategy built over the pickable
// ones, plus the live counters that outlive snapshots.
//
// Admin writes and health changes build a new snapshot off the pick path and
// publish it atomically (see Registry); picks only read snapshots.
#ifndef PICKER_SERVER_CORE_UPSTREAM_H_
#define PICKER_SERVER_CORE_UPSTREAM_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "server/core/client.h"
#include "server/core/config.h"
#include "server/core/record.h"
#include "server/core/stats.h"
#include "server/core/strategy/strategy.h"

namespace picker::core {

using WallTime = std::chrono::system_clock::time_point;

// Live state of one target, shared by every snapshot that holds the target
// and by the leases on it, so counts survive rebuilds.
struct TargetLive {
  std::atomic<uint64_t> active_requests{0};
  // Picks that chose the target, for its rate on the status page: one
  // relaxed increment beside active_requests, on the same cache line.
  std::atomic<uint64_t> picks{0};
  // Passive health, written by releases and read when snapshots are built.
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> ejections{0};
  std::atomic<int64_t> ejected_until_ms{0};  // Unix ms; 0 = not ejected.
  // Active health, written by the prober.
  std::atomic<bool> active_unhealthy{false};
  // Slow start: Unix ms when the target last became healthy, and the health
  // MarkSlowStarts last saw (-1: never, 0: unhealthy, 1: healthy). Written
  // by the control plane only, before it builds a snapshot.
  std::atomic<int64_t> healthy_since_ms{0};
  std::atomic<int8_t> seen_healthy{-1};
  // What releases report (latency, load reports): PeakEwma and
  // WeightedRoundRobin read it, releases write it, rebuilds keep it.
  TargetLoad load;
};

// Live state of one upstream, from its creation to its deletion.
struct UpstreamLive {
  std::atomic<uint64_t> active_requests{0};
  UpstreamCounters counters;
};

// Why a target's health is what it is (a bit set).
enum HealthReason : uint32_t {
  kReasonManual = 1u << 0,
  kReasonPassive = 1u << 1,
  kReasonActive = 1u << 2,
  kReasonWeightZero = 1u << 3,
};

// A target as stored by admin writes: what a snapshot is built from.
struct TargetEntry {
  TargetConfig config;
  HealthOverride health_override = HealthOverride::kNone;
  Timestamps times;
  std::shared_ptr<TargetLive> live = std::make_shared<TargetLive>();
};

// A target inside a snapshot, with its health at build time.
struct SnapshotTarget {
  TargetConfig config;
  Timestamps times;  // The record's (Kong's created_at, updated_at).
  std::shared_ptr<TargetLive> live;
  HealthOverride health_override = HealthOverride::kNone;
  bool healthy = true;
  uint32_t reasons = 0;                // HealthReason bits.
  std::optional<WallTime> returns_at;  // End of a passive ejection.
  int64_t healthy_since_ms = 0;        // Slow start (TargetLive's, at build).
};

// Marks the targets that become healthy at `now` (added healthy, or back
// from unhealthy for any reason) as starting slow start now. The control
// plane, the one writer of that state, calls it before each Build of an
// upstream's published snapshot; a snapshot built for any other purpose
// (a preview) must not.
void MarkSlowStarts(absl::Span<const TargetEntry> targets, WallTime now);

// Targets that share a priority, with the strategy built over the pickable
// ones: the healthy ones, or all of weight > 0 when the set is in panic.
struct HostSet {
  std::vector<uint32_t> pickable;  // strategy host index -> target index
  BuiltStrategy strategy;
  uint32_t total = 0;    // Targets of weight > 0.
  uint32_t healthy = 0;  // Of those, healthy.
  bool panic = false;
  // Envoy's priority health: min(100, 1.4 x healthy share), in percent.
  uint32_t health_percent = 0;
};

// Why a pick would choose what it chooses (UpstreamSnapshot::Explain), in
// target indices.
struct SnapshotExplanation {
  // Panic in the priority the pick uses.
  bool panic = false;
  // Locality: the client's zone is priority 0, the others priority 1, and
  // the priority is drawn from the hash (hash % 100 + 1 <= local_percent).
  bool locality_applies = false;
  uint32_t local_percent = 100;
  uint32_t draw = 0;  // 0 when the hash is random: the priority is then random too.
  uint32_t priority = 0;
  // The targets the pick chooses among (the priority's pickable ones).
  std::vector<uint32_t> eligible;
  // False when the strategy does not explain itself: `strategy` then lists
  // the eligible targets by weight share.
  bool strategy_explained = true;
  StrategyExplanation strategy;  // Hosts are target indices.
};

class UpstreamSnapshot {
 public:
  // Builds the snapshot and its strategies (rings, tables, EDF queues). Runs
  // on admin and health threads, never on the pick path.
  static std::shared_ptr<const UpstreamSnapshot> Build(UpstreamConfig config,
                                                       absl::Span<const TargetEntry> targets,
                                                       std::shared_ptr<UpstreamLive> live,
                                                       WallTime now, uint64_t seed,
                                                       Timestamps times = {});

  const UpstreamConfig& config() const { return config_; }
  // The record's created_at and updated_at (Kong's).
  const Timestamps& times() const { return times_; }

  // The snapshot that picks from `client` use: that of the first per-client
  // configuration whose selector matches (its own strategy and tables over
  // the same targets and counts), else this one.
  const UpstreamSnapshot& ForClient(const Client& client) const;
  // Which per-client configuration `client` gets: its index in
  // config().client_configs, or nullopt for the upstream's own.
  std::optional<size_t> ClientConfigOf(const Client& client) const;
  // The first strategy of `kind` among the upstream's own and then its
  // per-client ones, or null: what releases feed (latency, load reports)
  // whichever configuration picked.
  const LoadBalancerConfig* FirstOfKind(StrategyKind kind) const;
  const std::vector<SnapshotTarget>& targets() const { return targets_; }
  UpstreamLive& live() const { return *live_; }
  const std::shared_ptr<UpstreamLive>& live_ptr() const { return live_; }

  // True when the healthy share is below the panic threshold, so picks
  // spread over every target of weight > 0.
  bool panic() const { return all_.panic; }
  uint32_t healthy_count() const { return healthy_count_; }
  // Targets a pick without a zone can return.
  size_t pickable_count() const { return all_.pickable.size(); }
  // Earliest end of a passive ejection, when the snapshot must be rebuilt.
  std::optional<WallTime> next_health_change() const { return next_health_change_; }
  // Earliest end of a target's slow start, after which RoundRobin and
  // LeastRequest can drop the EDF schedule slow start made them use.
  std::optional<WallTime> slow_start_ends() const { return slow_start_ends_; }
  // When the snapshot must be rebuilt: the earlier of the two.
  std::optional<WallTime> next_rebuild() const;
  // How often the strategy's weights must be refreshed (WeightedRoundRobin's
  // weight_update_period); 0 when never.
  Millis refresh_period() const;
  // Recomputes the weights of every host set's strategy at `now`, off the
  // pick path; picks go on meanwhile.
  void Refresh(WallTime now, uint64_t seed) const;
  // Target `index`'s slow-start factor at `now` (SlowStartFactor), or
  // nullopt when it is not in slow start.
  std::optional<double> SlowStartFactorOf(uint32_t index, WallTime now) const;
  // Time it took to build every ring, table or queue of the snapshot.
  std::chrono::nanoseconds build_duration() const { return build_duration_; }
  StrategyStats strategy_stats() const { return all_.strategy.strategy->Stats(); }
  // The targets (indices in targets()) that picks without a zone choose
  // among, in the strategy's host order: the healthy ones, or every one of
  // weight > 0 in panic.
  const std::vector<uint32_t>& pickable_targets() const { return all_.pickable; }
  // For RingHash and Maglev, the share of the hash space each target owns
  // in the ring or table that picks without a zone use, by target index (0
  // for targets not in it); empty for the other strategies.
  std::vector<double> TargetHashShares() const;

  // Index of the target with this canonical address, if any.
  std::optional<uint32_t> Find(absl::string_view canonical_address) const;

  // Chooses a target: its index in targets(), or kNoHost when nothing can be
  // picked. With locality awareness on and a `client_zone` that some targets
  // have, that zone is priority 0 and the rest priority 1, and the priority
  // is chosen from `hash` as Envoy does. `avoid_target` takes target indices.
  uint32_t Pick(uint64_t hash, absl::string_view client_zone,
                absl::FunctionRef<bool(uint32_t)> avoid_target,
                absl::FunctionRef<uint64_t()> random) const;
  // What Pick with these arguments would choose now, and why, moving no
  // pick state. `random_hash`: `hash` stands for a random draw (the request
  // gave none), so the priority and hashed choices are random.
  SnapshotExplanation Explain(uint64_t hash, bool random_hash, absl::string_view client_zone,
                              absl::FunctionRef<bool(uint32_t)> avoid_target) const;

  // The targets a pick without a zone chooses among, and the strategy
  // built over them (PreviewChange reads its ring or table).
  const HostSet& all_hosts() const { return all_; }

 private:
  // The two priorities seen by clients of one zone.
  struct ZonePriorities {
    HostSet local;
    HostSet remote;
    uint32_t local_load_percent = 0;  // Share of picks priority 0 takes.
  };

  UpstreamSnapshot() = default;
  // Counts `members` (total, healthy, health_percent) without building.
  HostSet CountHostSet(const std::vector<uint32_t>& members) const;
  // Decides panic, as Envoy's isHostSetInPanic, given the normalized total
  // health of all priorities, and builds the strategy over the pickable
  // members: the healthy ones, or all of weight > 0 in panic.
  void BuildHostSet(HostSet& set, const std::vector<uint32_t>& members, uint32_t normalized_total,
                    uint64_t seed, int64_t now_ns) const;
  // Finds when the first slow start of a healthy target ends.
  void FindSlowStartEnd(int64_t now_ms);
  // Builds a snapshot for each per-client configuration.
  void BuildClients(absl::Span<const TargetEntry> targets, WallTime now, uint64_t seed);
  uint32_t PickFrom(const HostSet& set, uint64_t hash,
                    absl::FunctionRef<bool(uint32_t)> avoid_target,
                    absl::FunctionRef<uint64_t()> random) const;
  // The strategy's explanation of a pick from `set`, in target indices.
  StrategyExplanation ExplainFrom(const HostSet& set, uint64_t hash, bool random_hash,
                                  absl::FunctionRef<bool(uint32_t)> avoid_target,
                                  bool& explained) const;

  UpstreamConfig config_;
  Timestamps times_;
  std::vector<SnapshotTarget> targets_;
  std::shared_ptr<UpstreamLive> live_;
  absl::flat_hash_map<absl::string_view, uint32_t> index_;  // address -> target index
  HostSet all_;
  // Only when locality awareness is on and the targets span several zones.
  absl::flat_hash_map<std::string, ZonePriorities> zones_;
  uint32_t healthy_count_ = 0;
  std::optional<WallTime> next_health_change_;
  std::optional<WallTime> slow_start_ends_;
  std::chrono::nanoseconds build_duration_{0};
  // One per config_.client_configs entry, in order.
  std::vector<std::shared_ptr<const UpstreamSnapshot>> clients_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_UPSTREAM_H_
