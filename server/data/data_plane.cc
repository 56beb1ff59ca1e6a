#include "server/data/data_plane.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "server/core/address.h"
#include "server/core/random.h"
#include "server/core/thread_name.h"

namespace picker::data {
namespace {

using core::PickResult;

int64_t UnixMillis(core::WallTime t) {
  return std::chrono::duration_cast<core::Millis>(t.time_since_epoch()).count();
}

std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

core::Client ClientOf(const PickInput& input) {
  return core::Client{Std(input.client_service), input.client_tags, Std(input.client_zone)};
}

bool IsConsistentHashing(core::StrategyKind kind) {
  return kind == core::StrategyKind::kRingHash || kind == core::StrategyKind::kMaglev;
}

// The targets a pick avoids when it can: those the client excluded, and
// those at the circuit breaker's cap.
class Avoidance {
 public:
  static absl::StatusOr<Avoidance> Of(const core::UpstreamSnapshot& snapshot,
                                      const PickInput& input) {
    if (input.exclude.size() > core::kMaxExclude) {
      return absl::InvalidArgumentError(absl::StrCat("exclude: at most ", core::kMaxExclude,
                                                     " addresses, got ", input.exclude.size()));
    }
    Avoidance a(snapshot);
    for (size_t i = 0; i < input.exclude.size(); ++i) {
      absl::StatusOr<std::string> address =
          core::CanonicalAddress(*input.exclude[i], absl::StrCat("exclude[", i, "]"));
      if (!address.ok()) return address.status();
      if (std::optional<uint32_t> index = snapshot.Find(*address)) a.excluded_.push_back(*index);
    }
    // Sorted, so that each candidate a pick considers costs a binary search:
    // a pick that scans every target stays within a few times their number.
    std::sort(a.excluded_.begin(), a.excluded_.end());
    return a;
  }
  bool excluded(uint32_t t) const {
    return std::binary_search(excluded_.begin(), excluded_.end(), t);
  }
  bool at_cap(uint32_t t) const {
    return cap_ > 0 && targets_[t].live->active_requests.load(std::memory_order_relaxed) >= cap_;
  }
  bool operator()(uint32_t t) const { return at_cap(t) || excluded(t); }

 private:
  explicit Avoidance(const core::UpstreamSnapshot& s)
      : targets_(s.targets()), cap_(s.config().max_active_requests_per_target) {}
  const std::vector<core::SnapshotTarget>& targets_;
  uint32_t cap_;
  absl::InlinedVector<uint32_t, 4> excluded_;
};

}  // namespace

DataPlane::DataPlane(const core::SnapshotMap& snapshots, core::HealthEvents& health, uint64_t boot,
                     Options options)
    : snapshots_(snapshots), health_(health), options_(std::move(options)), leases_(boot) {
  leases_.OnEarlierDeadline([this] {
    {
      std::lock_guard lock(expiry_mu_);
      expiry_woken_ = true;
    }
    expiry_cv_.notify_one();
  });
  expiry_ = std::thread([this] { ExpiryLoop(); });
}

DataPlane::~DataPlane() {
  {
    std::lock_guard lock(expiry_mu_);
    stopping_ = true;
  }
  expiry_cv_.notify_one();
  expiry_.join();
}

void DataPlane::ExpiryLoop() {
  // A timer: it sleeps until the earliest lease deadline (an acquire with
  // an earlier one wakes it), expires what is due, and sleeps again.
  core::NameThisThread("lease-expiry");
  while (true) {
    const auto now = core::LeaseTable::Clock::now();
    leases_.ExpireDue(now);
    auto next = std::max(leases_.NextDeadline(), now + options_.expiry_granularity);
    leases_.PlanExpiry(next);
    next = std::max(std::min(next, leases_.NextDeadline()), now + options_.expiry_granularity);
    std::unique_lock lock(expiry_mu_);
    expiry_cv_.wait_until(lock, next, [this] { return stopping_ || expiry_woken_; });
    if (stopping_) return;
    expiry_woken_ = false;
  }
}

absl::Status DataPlane::CheckCapacity(const core::UpstreamSnapshot& snapshot) const {
  const core::UpstreamConfig& config = snapshot.config();
  core::UpstreamLive& live = snapshot.live();
  const uint64_t active = live.active_requests.load(std::memory_order_relaxed);
  const core::Limit& limit = options_.max_leases_per_upstream;
  if (active >= limit.value) {
    live.counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(absl::StrCat("upstream \"", config.name, "\" holds ",
                                                     active, " leases, the limit is ", limit.value,
                                                     " (", limit.name, ")"));
  }
  if (config.max_active_requests > 0 && active >= config.max_active_requests) {
    live.counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(absl::StrCat("upstream \"", config.name,
                                                     "\" is at its max_active_requests (",
                                                     config.max_active_requests, ")"));
  }
  if (snapshot.pickable_count() == 0) {
    live.counters.CountPick(PickResult::kUnavailable);
    return absl::UnavailableError(
        absl::StrCat("upstream \"", config.name, "\" has no target that can be picked (",
                     snapshot.targets().size(), " targets, ", snapshot.healthy_count(), " healthy",
                     config.panic_threshold_percent == 0 ? ", panic mode off" : "", ")"));
  }
  return absl::OkStatus();
}

std::optional<uint64_t> DataPlane::RequestHash(const core::UpstreamSnapshot& snapshot,
                                               const PickInput& input,
                                               std::vector<core::GeneratedCookie>* cookies,
                                               bool random,
                                               std::vector<core::PolicyTrace>* trace) const {
  if (input.hash) return *input.hash;
  const core::LoadBalancerConfig& lb = snapshot.config().load_balancer;
  if (IsConsistentHashing(lb.kind) && !lb.hash_policies.empty() && input.attributes != nullptr) {
    std::optional<uint64_t> computed = core::ComputeRequestHash(
        lb.hash_policies, *input.attributes, snapshot.config().name, cookies, trace);
    if (computed) return *computed;
  }
  // No hash: a random target, as in Envoy.
  if (!random) return std::nullopt;
  return core::ThreadRandom();
}

absl::Status DataPlane::Choose(const core::UpstreamSnapshot& snapshot, const PickInput& input,
                               PickOutput& out) {
  const core::UpstreamConfig& config = snapshot.config();
  const uint64_t hash = *RequestHash(snapshot, input, &out.cookies, /*random=*/true);
  if (IsConsistentHashing(config.load_balancer.kind)) out.hash = hash;
  absl::StatusOr<Avoidance> avoid = Avoidance::Of(snapshot, input);
  if (!avoid.ok()) return avoid.status();
  const std::vector<core::SnapshotTarget>& targets = snapshot.targets();
  const uint32_t cap = config.max_active_requests_per_target;
  const uint32_t chosen = snapshot.Pick(hash, input.client_zone, *avoid, core::ThreadRandom);
  core::UpstreamCounters& counters = snapshot.live().counters;
  if (chosen == core::kNoHost) {
    counters.CountPick(PickResult::kUnavailable);
    return absl::UnavailableError(
        absl::StrCat("upstream \"", config.name, "\" has no target that can be picked"));
  }
  if (avoid->at_cap(chosen)) {
    counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(
        absl::StrCat("upstream \"", config.name,
                     "\": every target is at its max_active_requests_per_target (", cap, ")"));
  }
  const core::SnapshotTarget& target = targets[chosen];
  std::optional<uint64_t> lease =
      leases_.Acquire(target.live, snapshot.live_ptr(), config.lease_ttl);
  if (!lease) {
    counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(
        "lease_id: this boot of picker-server has issued every lease id it can; a restart "
        "starts a new boot");
  }
  out.lease_id = *lease;
  out.lease_ttl = config.lease_ttl;
  out.target = &target;
  counters.CountPick(PickResult::kOk);
  target.live->picks.fetch_add(1, std::memory_order_relaxed);
  if (snapshot.panic()) counters.panic_picks.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status DataPlane::CheckOverload() const {
  core::ProcessStats* stats = options_.stats;
  if (stats == nullptr || !stats->overloaded.load(std::memory_order_relaxed)) {
    return absl::OkStatus();
  }
  stats->overload_refused_picks.fetch_add(1, std::memory_order_relaxed);
  return absl::ResourceExhaustedError(absl::StrCat(
      "picker-server is overloaded: ", stats->memory_in_use.load(std::memory_order_relaxed),
      " bytes of memory in use, above --max-memory ", stats->max_memory,
      "; new picks are refused until it falls (releases still work)"));
}

absl::StatusOr<PickOutput> DataPlane::Pick(const PickInput& input) {
  std::shared_ptr<const core::UpstreamSnapshot> snapshot = snapshots_.Find(input.upstream);
  if (absl::Status s = CheckOverload(); !s.ok()) return s;
  if (!snapshot) return core::UnknownUpstream(input.upstream);
  if (absl::Status s = CheckCapacity(*snapshot); !s.ok()) return s;
  PickOutput out;
  const core::UpstreamSnapshot& chosen = snapshot->ForClient(ClientOf(input));
  if (absl::Status s = Choose(chosen, input, out); !s.ok()) return s;
  out.snapshot = std::move(snapshot);
  return out;
}

absl::StatusOr<PickExplanation> DataPlane::Explain(const PickInput& input) const {
  PickExplanation x;
  x.snapshot = snapshots_.Find(input.upstream);
  if (!x.snapshot) return core::UnknownUpstream(input.upstream);
  x.client_config = x.snapshot->ClientConfigOf(ClientOf(input));
  const core::UpstreamSnapshot& snapshot = x.snapshot->ForClient(ClientOf(input));
  x.balancer = &snapshot;
  x.client_zone = std::string(input.client_zone);
  absl::StatusOr<Avoidance> avoid = Avoidance::Of(snapshot, input);
  if (!avoid.ok()) return avoid.status();
  // Cookies a pick would generate are hashed alike; none is handed out.
  std::vector<core::GeneratedCookie> cookies;
  x.hash = RequestHash(snapshot, input, &cookies, /*random=*/false, &x.policies);
  x.hash_source = input.hash ? "request" : x.hash ? "hash_policies" : "random";
  x.choice = snapshot.Explain(x.hash.value_or(0), !x.hash, input.client_zone, *avoid);
  const std::vector<uint32_t>& eligible = x.choice.eligible;
  for (uint32_t t = 0; t < snapshot.targets().size(); ++t) {
    const core::SnapshotTarget& target = snapshot.targets()[t];
    if (std::find(eligible.begin(), eligible.end(), t) == eligible.end()) {
      x.left_out.push_back({t, target.config.weight == 0 ? "weight_zero"
                               : !target.healthy         ? "unhealthy"
                                                         : "other_priority"});
    } else if (avoid->excluded(t)) {
      x.left_out.push_back({t, "excluded"});
    } else if (avoid->at_cap(t)) {
      x.left_out.push_back({t, "circuit_breaker"});
    }
  }
  return x;
}

absl::StatusOr<core::LeaseState> DataPlane::Release(absl::string_view upstream, uint64_t lease_id,
                                                    Outcome outcome,
                                                    std::optional<std::chrono::nanoseconds> latency,
                                                    const core::LoadReport* load_report) {
  std::shared_ptr<const core::UpstreamSnapshot> snapshot = snapshots_.Find(upstream);
  if (!snapshot) return core::UnknownUpstream(upstream);
  core::LeaseTable::ReleaseResult result = leases_.Release(lease_id, &snapshot->live());
  switch (result.state) {
    case core::LeaseState::kNeverIssued:
      return absl::NotFoundError(
          absl::StrCat("lease_id: ", lease_id, " was never issued by upstream \"", upstream, "\""));
    case core::LeaseState::kReleased:
      break;
    case core::LeaseState::kAlreadyReleased:
    case core::LeaseState::kExpired:
      return result.state;
  }
  core::UpstreamCounters& counters = result.upstream->counters;
  switch (outcome) {
    case Outcome::kSuccess:
      counters.CountRelease(core::ReleaseOutcome::kSuccess);
      break;
    case Outcome::kFailure:
      counters.CountRelease(core::ReleaseOutcome::kFailure);
      break;
    case Outcome::kTimeout:
      counters.CountRelease(core::ReleaseOutcome::kTimeout);
      break;
  }
  if (latency) counters.request_duration.Observe(*latency);
  RecordLoad(*snapshot, *result.target, outcome, latency, load_report);
  RecordOutcome(*snapshot, result.target, outcome);
  return core::LeaseState::kReleased;
}

void DataPlane::RecordLoad(const core::UpstreamSnapshot& snapshot, core::TargetLive& target,
                           Outcome outcome, std::optional<std::chrono::nanoseconds> latency,
                           const core::LoadReport* load_report) {
  // The upstream's own strategy or a per-client one may balance on these;
  // the target's load is one, whichever configuration picked.
  if (const core::LoadBalancerConfig* lb = snapshot.FirstOfKind(core::StrategyKind::kPeakEwma)) {
    // A failure counts as at least failure_penalty, so that a target that
    // fails fast does not look fast.
    std::optional<std::chrono::nanoseconds> sample = latency;
    if (outcome != Outcome::kSuccess) {
      sample = std::max<std::chrono::nanoseconds>(latency.value_or(std::chrono::nanoseconds(0)),
                                                  lb->failure_penalty);
    }
    // A success without a latency says nothing.
    if (sample) {
      const double tau_ns = static_cast<double>(lb->decay_time.count()) * 1e6;
      target.load.latency.Observe(static_cast<double>(sample->count()), core::UnixNanos(), tau_ns);
    }
  }
  const core::LoadBalancerConfig* wrr =
      snapshot.FirstOfKind(core::StrategyKind::kWeightedRoundRobin);
  if (wrr != nullptr && load_report != nullptr) {
    target.load.weight.Observe(
        *load_report, wrr->error_utilization_penalty,
        {wrr->blackout_period.count(), wrr->weight_expiration_period.count()},
        UnixMillis(std::chrono::system_clock::now()));
  }
}

void DataPlane::RecordOutcome(const core::UpstreamSnapshot& snapshot,
                              const std::shared_ptr<core::TargetLive>& target, Outcome outcome) {
  if (outcome == Outcome::kSuccess) {
    if (target->consecutive_failures.load(std::memory_order_relaxed) != 0) {
      target->consecutive_failures.store(0, std::memory_order_relaxed);
    }
    return;
  }
  const core::PassiveHealthConfig& passive = snapshot.config().passive;
  if (passive.consecutive_failures == 0) return;
  const uint32_t failures = target->consecutive_failures.fetch_add(1) + 1;
  if (failures < passive.consecutive_failures) return;
  {
    std::lock_guard lock(ejection_mu_);
    const int64_t now_ms = UnixMillis(std::chrono::system_clock::now());
    if (target->ejected_until_ms.load() > now_ms) return;
    uint32_t ejected = 0, total = 0;
    for (const core::SnapshotTarget& t : snapshot.targets()) {
      if (t.config.weight == 0) continue;
      ++total;
      if (t.live->ejected_until_ms.load() > now_ms) ++ejected;
    }
    // At least one target may always be ejected; beyond that the percentage
    // bounds how much of the upstream passive health can take away.
    if (ejected > 0 && (ejected + 1) * 100 > passive.max_ejection_percent * total) return;
    const uint32_t ejections = target->ejections.fetch_add(1) + 1;
    const core::Millis duration =
        std::min(passive.base_ejection_time * ejections, passive.max_ejection_time);
    target->ejected_until_ms.store(now_ms + duration.count());
    target->consecutive_failures.store(0);
    snapshot.live().counters.ejections.fetch_add(1, std::memory_order_relaxed);
  }
  health_.HealthChanged(snapshot.config().name);
}

}  // namespace picker::data
