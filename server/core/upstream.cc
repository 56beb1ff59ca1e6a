#include "server/core/upstream.h"

#include <algorithm>

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

}  // namespace

std::shared_ptr<const UpstreamSnapshot> UpstreamSnapshot::Build(
    UpstreamConfig config, absl::Span<const TargetEntry> targets,
    std::shared_ptr<UpstreamLive> live, WallTime now, uint64_t seed) {
  std::shared_ptr<UpstreamSnapshot> s(new UpstreamSnapshot());
  s->config_ = std::move(config);
  s->live_ = std::move(live);
  const int64_t now_ms = ToUnixMillis(now);

  s->targets_.reserve(targets.size());
  uint32_t weighted = 0;
  for (const TargetEntry& entry : targets) {
    SnapshotTarget& t = s->targets_.emplace_back();
    t.config = entry.config;
    t.live = entry.live;
    t.health_override = entry.health_override;
    ComputeHealth(entry, now_ms, t);
    if (t.config.weight > 0) ++weighted;
    if (t.healthy) ++s->healthy_count_;
    if (t.returns_at && (!s->next_health_change_ || *t.returns_at < *s->next_health_change_)) {
      s->next_health_change_ = t.returns_at;
    }
  }
  s->index_.reserve(s->targets_.size());
  for (uint32_t i = 0; i < s->targets_.size(); ++i) {
    s->index_.emplace(s->targets_[i].config.address, i);
  }

  // Envoy's panic rule: the healthy share, scaled by the overprovisioning
  // factor and capped at 100, below the threshold means panic.
  if (weighted > 0 && s->config_.panic_threshold_percent > 0) {
    const uint64_t health =
        std::min<uint64_t>(100, kOverprovisioningFactor * s->healthy_count_ / weighted);
    s->panic_ = health < s->config_.panic_threshold_percent;
  }

  std::vector<StrategyHost> hosts;
  for (uint32_t i = 0; i < s->targets_.size(); ++i) {
    const SnapshotTarget& t = s->targets_[i];
    if (t.config.weight == 0 || !(t.healthy || s->panic_)) continue;
    s->pickable_.push_back(i);
    hosts.push_back(StrategyHost{t.config.HashKey(), t.config.weight, &t.live->active_requests});
  }
  const auto start = std::chrono::steady_clock::now();
  s->strategy_ = BuildStrategy(s->config_.load_balancer, std::move(hosts), seed);
  s->build_duration_ = std::chrono::steady_clock::now() - start;
  return s;
}

std::optional<uint32_t> UpstreamSnapshot::Find(absl::string_view canonical_address) const {
  auto it = index_.find(canonical_address);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

uint32_t UpstreamSnapshot::Pick(uint64_t hash, absl::FunctionRef<bool(uint32_t)> avoid_target,
                                absl::FunctionRef<uint64_t()> random) const {
  if (pickable_.empty()) return kNoHost;
  const uint32_t host = strategy_->Pick(PickParams{
      .hash = hash,
      .avoid = [&](uint32_t h) { return avoid_target(pickable_[h]); },
      .random = random,
      .upstream_active_requests = live_->active_requests.load(std::memory_order_relaxed),
  });
  return host == kNoHost ? kNoHost : pickable_[host];
}

}  // namespace picker::core
