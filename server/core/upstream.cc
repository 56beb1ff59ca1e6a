#include "server/core/upstream.h"

#include <algorithm>

#include "server/core/strategy/slow_start.h"

namespace picker::core {
namespace {

// Envoy's default overprovisioning factor (140%): a priority whose healthy
// share is 5/7 or more counts as fully healthy.
constexpr uint64_t kOverprovisioningFactor = 140;

int64_t ToUnixMillis(WallTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

// Health of one target at `now`, with the reasons behind it.
void ComputeHealth(const TargetEntry& entry, int64_t now_ms, SnapshotTarget& out) {
  out.reasons = 0;
  out.healthy = true;
  if (entry.config.weight == 0) {
    out.healthy = false;
    out.reasons |= kReasonWeightZero;
  }
  const int64_t ejected_until = entry.live->ejected_until_ms.load(std::memory_order_relaxed);
  const bool ejected = ejected_until > now_ms;
  if (ejected) {
    out.returns_at = WallTime(Millis(ejected_until));
  }
  const bool active_unhealthy = entry.live->active_unhealthy.load(std::memory_order_relaxed);
  switch (entry.health_override) {
    case HealthOverride::kHealthy:
      out.reasons |= kReasonManual;
      return;
    case HealthOverride::kUnhealthy:
      out.reasons |= kReasonManual;
      out.healthy = false;
      return;
    case HealthOverride::kNone:
      break;
  }
  if (ejected) {
    out.healthy = false;
    out.reasons |= kReasonPassive;
  }
  if (active_unhealthy) {
    out.healthy = false;
    out.reasons |= kReasonActive;
  }
}

// Envoy's share of picks for priority 0 (the client's zone) out of two
// priorities (recalculatePerPriorityState): each takes its health over the
// normalized total, in order, and the rounding remainder goes to the first
// priority that got load. When both are in panic, shares follow host counts
// (recalculateLoadInTotalPanic), the remainder to the first non-empty one.
uint32_t LocalLoadPercent(const HostSet& local, const HostSet& remote, uint32_t normalized) {
  if (local.panic && remote.panic) {
    const uint32_t hosts = local.total + remote.total;
    if (hosts == 0) return 100;
    const uint32_t l = 100 * local.total / hosts;
    const uint32_t r = 100 * remote.total / hosts;
    return local.total > 0 ? 100 - r : l;
  }
  if (normalized == 0) return 100;  // Nothing healthy and no panic: nothing to pick.
  const uint32_t l = std::min<uint32_t>(100, local.health_percent * 100 / normalized);
  const uint32_t r = std::min<uint32_t>(100 - l, remote.health_percent * 100 / normalized);
  return l > 0 || r == 0 ? 100 - r : l;
}

int64_t ToUnixNanos(WallTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// RoundRobin and LeastRequest have slow start.
bool HasSlowStart(const LoadBalancerConfig& lb) {
  return (lb.kind == StrategyKind::kRoundRobin || lb.kind == StrategyKind::kLeastRequest) &&
         lb.slow_start.enabled();
}

}  // namespace

void MarkSlowStarts(absl::Span<const TargetEntry> targets, WallTime now) {
  const int64_t now_ms = ToUnixMillis(now);
  for (const TargetEntry& entry : targets) {
    SnapshotTarget health;
    ComputeHealth(entry, now_ms, health);
    const int8_t seen = health.healthy ? 1 : 0;
    if (entry.live->seen_healthy.exchange(seen, std::memory_order_relaxed) != 1 && seen == 1) {
      entry.live->healthy_since_ms.store(now_ms, std::memory_order_relaxed);
    }
  }
}

std::shared_ptr<const UpstreamSnapshot> UpstreamSnapshot::Build(
    UpstreamConfig config, absl::Span<const TargetEntry> targets,
    std::shared_ptr<UpstreamLive> live, WallTime now, uint64_t seed, Timestamps times) {
  std::shared_ptr<UpstreamSnapshot> s(new UpstreamSnapshot());
  s->config_ = std::move(config);
  s->times_ = times;
  s->live_ = std::move(live);
  const int64_t now_ms = ToUnixMillis(now);

  s->targets_.reserve(targets.size());
  for (const TargetEntry& entry : targets) {
    SnapshotTarget& t = s->targets_.emplace_back();
    t.config = entry.config;
    t.times = entry.times;
    t.live = entry.live;
    t.health_override = entry.health_override;
    t.healthy_since_ms = entry.live->healthy_since_ms.load(std::memory_order_relaxed);
    ComputeHealth(entry, now_ms, t);
    if (t.healthy) ++s->healthy_count_;
    if (t.returns_at && (!s->next_health_change_ || *t.returns_at < *s->next_health_change_)) {
      s->next_health_change_ = t.returns_at;
    }
  }
  s->index_.reserve(s->targets_.size());
  std::vector<uint32_t> everyone(s->targets_.size());
  for (uint32_t i = 0; i < s->targets_.size(); ++i) {
    s->index_.emplace(s->targets_[i].config.address, i);
    everyone[i] = i;
  }

  s->FindSlowStartEnd(now_ms);
  const int64_t now_ns = ToUnixNanos(now);
  const auto start = std::chrono::steady_clock::now();
  s->all_ = s->CountHostSet(everyone);
  s->BuildHostSet(s->all_, everyone, s->all_.health_percent, seed, now_ns);
  if (s->config_.locality_aware) {
    // Zones in host-set order of first appearance, so builds are repeatable.
    std::vector<std::string> zones;
    for (const SnapshotTarget& t : s->targets_) {
      if (std::find(zones.begin(), zones.end(), t.config.zone) == zones.end()) {
        zones.push_back(t.config.zone);
      }
    }
    if (zones.size() > 1) {
      for (const std::string& zone : zones) {
        std::vector<uint32_t> local, remote;
        for (uint32_t i = 0; i < s->targets_.size(); ++i) {
          (s->targets_[i].config.zone == zone ? local : remote).push_back(i);
        }
        ZonePriorities& p = s->zones_[zone];
        p.local = s->CountHostSet(local);
        p.remote = s->CountHostSet(remote);
        const uint32_t normalized =
            std::min<uint32_t>(100, p.local.health_percent + p.remote.health_percent);
        s->BuildHostSet(p.local, local, normalized, seed, now_ns);
        s->BuildHostSet(p.remote, remote, normalized, seed, now_ns);
        p.local_load_percent = LocalLoadPercent(p.local, p.remote, normalized);
      }
    }
  }
  s->build_duration_ = std::chrono::steady_clock::now() - start;
  s->BuildClients(targets, now, seed);
  return s;
}

void UpstreamSnapshot::BuildClients(absl::Span<const TargetEntry> targets, WallTime now,
                                    uint64_t seed) {
  clients_.reserve(config_.client_configs.size());
  for (const ClientConfig& client : config_.client_configs) {
    UpstreamConfig own = config_;
    own.client_configs.clear();
    own.load_balancer = client.load_balancer;
    own.locality_aware = client.locality_aware;
    std::shared_ptr<const UpstreamSnapshot> built =
        Build(std::move(own), targets, live_, now, seed);
    build_duration_ += built->build_duration_;
    if (built->slow_start_ends_ &&
        (!slow_start_ends_ || *built->slow_start_ends_ < *slow_start_ends_)) {
      slow_start_ends_ = built->slow_start_ends_;
    }
    clients_.push_back(std::move(built));
  }
}

std::optional<size_t> UpstreamSnapshot::ClientConfigOf(const Client& client) const {
  for (size_t i = 0; i < config_.client_configs.size(); ++i) {
    if (config_.client_configs[i].client.Matches(client)) return i;
  }
  return std::nullopt;
}

const UpstreamSnapshot& UpstreamSnapshot::ForClient(const Client& client) const {
  if (clients_.empty()) return *this;
  std::optional<size_t> index = ClientConfigOf(client);
  return index ? *clients_[*index] : *this;
}

const LoadBalancerConfig* UpstreamSnapshot::FirstOfKind(StrategyKind kind) const {
  if (config_.load_balancer.kind == kind) return &config_.load_balancer;
  for (const ClientConfig& client : config_.client_configs) {
    if (client.load_balancer.kind == kind) return &client.load_balancer;
  }
  return nullptr;
}

Millis UpstreamSnapshot::refresh_period() const {
  Millis period = all_.strategy.strategy->RefreshPeriod();
  for (const auto& client : clients_) {
    const Millis own = client->refresh_period();
    if (own.count() > 0 && (period.count() == 0 || own < period)) period = own;
  }
  return period;
}

void UpstreamSnapshot::FindSlowStartEnd(int64_t now_ms) {
  const LoadBalancerConfig& lb = config_.load_balancer;
  if (!HasSlowStart(lb)) return;
  for (const SnapshotTarget& t : targets_) {
    if (!t.healthy || !InSlowStart(lb.slow_start, t.healthy_since_ms, now_ms)) continue;
    const WallTime ends(Millis(t.healthy_since_ms + lb.slow_start.window.count()));
    if (!slow_start_ends_ || ends < *slow_start_ends_) slow_start_ends_ = ends;
  }
}

std::optional<WallTime> UpstreamSnapshot::next_rebuild() const {
  if (!slow_start_ends_) return next_health_change_;
  if (!next_health_change_) return slow_start_ends_;
  return std::min(*next_health_change_, *slow_start_ends_);
}

std::optional<double> UpstreamSnapshot::SlowStartFactorOf(uint32_t index, WallTime now) const {
  const LoadBalancerConfig& lb = config_.load_balancer;
  const SnapshotTarget& t = targets_[index];
  const int64_t now_ms = ToUnixMillis(now);
  if (!HasSlowStart(lb) || !t.healthy || !InSlowStart(lb.slow_start, t.healthy_since_ms, now_ms)) {
    return std::nullopt;
  }
  return SlowStartFactor(lb.slow_start, t.healthy_since_ms, now_ms);
}

void UpstreamSnapshot::Refresh(WallTime now, uint64_t seed) const {
  const int64_t now_ns = ToUnixNanos(now);
  all_.strategy.Refresh(now_ns, seed);
  for (const auto& [zone, p] : zones_) {
    p.local.strategy.Refresh(now_ns, seed);
    p.remote.strategy.Refresh(now_ns, seed);
  }
  for (const auto& client : clients_) client->Refresh(now, seed);
}

HostSet UpstreamSnapshot::CountHostSet(const std::vector<uint32_t>& members) const {
  HostSet set;
  for (uint32_t i : members) {
    const SnapshotTarget& t = targets_[i];
    if (t.config.weight == 0) continue;
    ++set.total;
    if (t.healthy) ++set.healthy;
  }
  if (set.total > 0) {
    set.health_percent = static_cast<uint32_t>(
        std::min<uint64_t>(100, kOverprovisioningFactor * set.healthy / set.total));
  }
  return set;
}

void UpstreamSnapshot::BuildHostSet(HostSet& set, const std::vector<uint32_t>& members,
                                    uint32_t normalized_total, uint64_t seed,
                                    int64_t now_ns) const {
  // Envoy's panic rule: the plain healthy share (not overprovisioned) below
  // the threshold, unless the priorities together are fully available; a
  // threshold of 0 never panics. 100 * healthy < threshold * total is
  // healthy% < threshold without rounding; an empty set is 0% healthy.
  const uint32_t threshold = config_.panic_threshold_percent;
  set.panic = threshold > 0 && normalized_total < 100 &&
              uint64_t{100} * set.healthy < uint64_t{threshold} * set.total + (set.total == 0);
  std::vector<StrategyHost> hosts;
  for (uint32_t i : members) {
    const SnapshotTarget& t = targets_[i];
    if (t.config.weight == 0 || !(t.healthy || set.panic)) continue;
    set.pickable.push_back(i);
    hosts.push_back(StrategyHost{t.config.HashKey(), t.config.weight, &t.live->active_requests,
                                 t.healthy ? t.healthy_since_ms : 0, &t.live->load});
  }
  set.strategy = BuildStrategy(config_.load_balancer, std::move(hosts), seed, now_ns);
}

std::vector<double> UpstreamSnapshot::TargetHashShares() const {
  const StrategyKind kind = config_.load_balancer.kind;
  if (kind != StrategyKind::kRingHash && kind != StrategyKind::kMaglev) return {};
  const std::vector<double> by_host = all_.strategy.strategy->HashShares();
  std::vector<double> shares(targets_.size(), 0.0);
  for (size_t host = 0; host < by_host.size() && host < all_.pickable.size(); ++host) {
    shares[all_.pickable[host]] = by_host[host];
  }
  return shares;
}

std::optional<uint32_t> UpstreamSnapshot::Find(absl::string_view canonical_address) const {
  auto it = index_.find(canonical_address);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

uint32_t UpstreamSnapshot::PickFrom(const HostSet& set, uint64_t hash,
                                    absl::FunctionRef<bool(uint32_t)> avoid_target,
                                    absl::FunctionRef<uint64_t()> random) const {
  if (set.pickable.empty()) return kNoHost;
  const uint32_t host = set.strategy.Pick(PickParams{
      .hash = hash,
      .avoid = [&](uint32_t h) { return avoid_target(set.pickable[h]); },
      .random = random,
      .upstream_active_requests = live_->active_requests.load(std::memory_order_relaxed),
  });
  return host == kNoHost ? kNoHost : set.pickable[host];
}

uint32_t UpstreamSnapshot::Pick(uint64_t hash, absl::string_view client_zone,
                                absl::FunctionRef<bool(uint32_t)> avoid_target,
                                absl::FunctionRef<uint64_t()> random) const {
  if (!client_zone.empty() && !zones_.empty()) {
    auto it = zones_.find(client_zone);
    if (it != zones_.end()) {
      const ZonePriorities& p = it->second;
      // Envoy chooses the priority with the request hash: hash % 100 + 1
      // against the cumulative loads.
      const bool local = hash % 100 + 1 <= p.local_load_percent;
      const uint32_t chosen = PickFrom(local ? p.local : p.remote, hash, avoid_target, random);
      if (chosen != kNoHost) return chosen;
      return PickFrom(local ? p.remote : p.local, hash, avoid_target, random);
    }
  }
  return PickFrom(all_, hash, avoid_target, random);
}

}  // namespace picker::core

namespace picker::core {

StrategyExplanation UpstreamSnapshot::ExplainFrom(const HostSet& set, uint64_t hash,
                                                  bool random_hash,
                                                  absl::FunctionRef<bool(uint32_t)> avoid_target,
                                                  bool& explained) const {
  auto avoid = [&](uint32_t h) { return avoid_target(set.pickable[h]); };
  const PickParams params{
      .hash = hash,
      .avoid = avoid,
      .random = [] { return uint64_t{0}; },
      .upstream_active_requests = live_->active_requests.load(std::memory_order_relaxed),
  };
  StrategyExplanation out;
  if (std::optional<StrategyExplanation> e = set.strategy.Explain(params, random_hash)) {
    out = *std::move(e);
  } else {
    // A strategy that does not explain itself: its hosts by weight share,
    // those avoided left out when any other remains.
    explained = false;
    double total = 0;
    for (int pass = 0; pass < 2 && out.candidates.empty(); ++pass) {
      for (uint32_t h = 0; h < set.pickable.size(); ++h) {
        if (pass == 0 && avoid(h)) continue;
        const double w = targets_[set.pickable[h]].config.weight;
        out.candidates.push_back({h, w, w});
        total += w;
      }
    }
    for (auto& c : out.candidates) c.probability /= total;
    out.rule = std::string(StrategyName(config_.load_balancer.kind)) +
               " does not explain its picks: its targets by weight share";
  }
  if (out.chosen != kNoHost) out.chosen = set.pickable[out.chosen];
  for (auto& p : out.passed_over) p.host = set.pickable[p.host];
  for (auto& c : out.candidates) {
    c.host = set.pickable[c.host];
    if (c.weight == 0) c.weight = targets_[c.host].config.weight;
  }
  return out;
}

SnapshotExplanation UpstreamSnapshot::Explain(
    uint64_t hash, bool random_hash, absl::string_view client_zone,
    absl::FunctionRef<bool(uint32_t)> avoid_target) const {
  SnapshotExplanation x;
  const HostSet* set = &all_;
  auto zone = client_zone.empty() ? zones_.end() : zones_.find(client_zone);
  if (zone != zones_.end()) {
    const ZonePriorities& p = zone->second;
    x.locality_applies = true;
    x.local_percent = p.local_load_percent;
    if (random_hash && !p.local.pickable.empty() && !p.remote.pickable.empty()) {
      // The priority is drawn at random too: both priorities' candidates,
      // each scaled by its priority's share.
      StrategyExplanation local =
          ExplainFrom(p.local, hash, true, avoid_target, x.strategy_explained);
      StrategyExplanation remote =
          ExplainFrom(p.remote, hash, true, avoid_target, x.strategy_explained);
      for (auto [part, share] : {std::pair{&local, p.local_load_percent / 100.0},
                                 std::pair{&remote, 1 - p.local_load_percent / 100.0}}) {
        if (part->deterministic) part->candidates = {{part->chosen, 1.0, 0}};
        for (auto c : part->candidates) {
          c.probability *= share;
          if (c.probability > 0) x.strategy.candidates.push_back(c);
        }
        x.strategy.passed_over.insert(x.strategy.passed_over.end(), part->passed_over.begin(),
                                      part->passed_over.end());
      }
      x.strategy.rule = local.rule + "; the priority is drawn at random too";
      x.panic = p.local.panic || p.remote.panic;
      x.eligible = p.local.pickable;
      x.eligible.insert(x.eligible.end(), p.remote.pickable.begin(), p.remote.pickable.end());
      return x;
    }
    x.draw = static_cast<uint32_t>(hash % 100 + 1);
    const bool local = random_hash ? !p.local.pickable.empty() : x.draw <= p.local_load_percent;
    if (random_hash) x.draw = 0;
    set = local ? &p.local : &p.remote;
    x.priority = local ? 0 : 1;
    if (set->pickable.empty()) {
      set = local ? &p.remote : &p.local;
      x.priority = 1 - x.priority;
    }
  }
  x.panic = set->panic;
  x.eligible = set->pickable;
  x.strategy = ExplainFrom(*set, hash, random_hash, avoid_target, x.strategy_explained);
  return x;
}

}  // namespace picker::core
