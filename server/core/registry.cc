#include "server/core/registry.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "server/core/address.h"
#include "server/core/random.h"
#include "server/core/thread_name.h"
#include "server/core/validate.h"

namespace picker::core {
namespace {

int64_t UnixMillis(WallTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

bool IsConsistentHashing(StrategyKind kind) {
  return kind == StrategyKind::kRingHash || kind == StrategyKind::kMaglev;
}

absl::Status UnknownUpstream(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("upstream: is required");
  // A name longer than any valid one is cut: the message travels back in a
  // header that clients bound.
  return absl::NotFoundError(absl::StrCat("upstream: no upstream named \"", name.substr(0, 128),
                                          name.size() > 128 ? "...\"" : "\""));
}

// The target at `address` (canonical) among `targets`, or their end.
std::vector<TargetEntry>::iterator FindTarget(std::vector<TargetEntry>& targets,
                                              absl::string_view address) {
  return std::find_if(targets.begin(), targets.end(),
                      [&](const TargetEntry& t) { return t.config.address == address; });
}

absl::Status UnknownTarget(absl::string_view upstream, absl::string_view address) {
  return absl::NotFoundError(
      absl::StrCat("address: upstream \"", upstream, "\" has no target \"", address, "\""));
}

// Distinguishes registries in the per-thread map cache, even one created at
// the address of a destroyed one.
std::atomic<uint64_t> next_registry_id{1};

}  // namespace

absl::StatusOr<std::unique_ptr<Registry>> Registry::Open(Store* store, Options options) {
  absl::StatusOr<uint64_t> epoch = store->NextEpoch();
  if (!epoch.ok()) return epoch.status();
  absl::StatusOr<std::vector<UpstreamRecord>> records = store->Load();
  if (!records.ok()) return records.status();
  auto registry = std::make_unique<Registry>(store, *epoch, options);
  std::lock_guard lock(registry->mu_);
  for (UpstreamRecord& record : *records) {
    if (absl::Status s = ValidateUpstreamConfig(record.config); !s.ok()) {
      return absl::DataLossError(
          absl::StrCat("stored upstream \"", record.config.name, "\" is invalid: ", s.message()));
    }
    UpstreamState state;
    state.config = std::move(record.config);
    state.live = std::make_shared<UpstreamLive>();
    state.slot = std::make_shared<Slot>();
    state.targets.reserve(record.targets.size());
    for (StoredTarget& target : record.targets) {
      TargetEntry& entry = state.targets.emplace_back();
      entry.config = std::move(target.config);
      entry.health_override = target.health_override;
    }
    const std::string name = state.config.name;
    registry->states_.emplace(name, std::move(state));
  }
  registry->BuildAllSnapshots();
  registry->PublishMap();
  return registry;
}

void Registry::BuildAllSnapshots() {
  // Snapshots are most of a start with many Maglev or ring upstreams (10,000
  // Maglev tables took 9 s on one core). They are independent of each other,
  // so every core builds a share; the states do not move meanwhile (the
  // writer mutex is held, and map nodes stay put).
  std::vector<UpstreamState*> states;
  states.reserve(states_.size());
  for (auto& [name, state] : states_) states.push_back(&state);
  std::atomic<size_t> next{0};
  auto build = [&] {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < states.size();) {
      UpstreamState& state = *states[i];
      state.slot->Publish(BuildSnapshot(state.config, state.targets, state.live));
    }
  };
  const size_t helpers =
      std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()) - 1, states.size() / 64);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < helpers; ++i) threads.emplace_back(build);
  build();
  for (std::thread& t : threads) t.join();
}

Registry::Registry(Store* store, uint64_t epoch, Options options)
    : id_(next_registry_id.fetch_add(1)), store_(store), options_(options), leases_(epoch) {
  map_.store(std::make_shared<const SlotMap>());
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
}

Registry::~Registry() {
  {
    std::lock_guard lock(maintenance_mu_);
    stopping_ = true;
  }
  maintenance_cv_.notify_all();
  maintenance_.join();
}

// ---------------------------------------------------------------------------
// Publishing.

void Registry::PublishMap() {
  auto map = std::make_shared<SlotMap>();
  map->reserve(states_.size());
  for (const auto& [name, state] : states_) map->emplace(name, state.slot);
  map_.store(std::move(map));
  map_version_.fetch_add(1, std::memory_order_release);
}

Registry::ThreadCache& Registry::CurrentCache() const {
  thread_local ThreadCache cache;
  const uint64_t version = map_version_.load(std::memory_order_acquire);
  if (cache.registry_id != id_ || cache.map_version != version || !cache.map) {
    cache.map = map_.load();
    cache.map_version = version;
    cache.registry_id = id_;
    cache.snapshots.clear();
  }
  return cache;
}

std::shared_ptr<const UpstreamSnapshot> Registry::Find(absl::string_view name) const {
  // Picks read the map and the snapshot from this thread's cache, and go to
  // the shared cells (a spin lock held for a pointer copy) only when a
  // version moved: in the steady state a pick takes no lock at all. A thread
  // keeps the last snapshot it read of each upstream alive until it reads
  // that upstream again or the map changes; snapshots are immutable, so an
  // old one is merely memory.
  ThreadCache& cache = CurrentCache();
  auto it = cache.map->find(name);
  if (it == cache.map->end()) return nullptr;
  const Slot* slot = it->second.get();
  const uint64_t version = slot->version.load(std::memory_order_acquire);
  ThreadCache::Entry& entry = cache.snapshots[slot];
  if (entry.version != version || !entry.snapshot) {
    // A Publish between the version read and this load leaves a newer
    // snapshot under the older version: read again next time, never stale.
    entry.snapshot = slot->snapshot.load();
    entry.version = version;
  }
  return entry.snapshot;
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Registry::Get(
    absl::string_view name) const {
  if (absl::Status s = ValidateUpstreamName(name, "name"); !s.ok()) return s;
  std::shared_ptr<const UpstreamSnapshot> snapshot = Find(name);
  if (!snapshot) return UnknownUpstream(name);
  return snapshot;
}

std::vector<std::shared_ptr<const UpstreamSnapshot>> Registry::List() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const UpstreamSnapshot>> out;
  out.reserve(states_.size());
  for (const auto& [name, state] : states_) out.push_back(state.slot->snapshot.load());
  return out;
}

// ---------------------------------------------------------------------------
// Admin writes.

absl::Status Registry::CheckLimits(const UpstreamConfig& config) const {
  if (config.load_balancer.hash_policies.size() > options_.max_hash_policies) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "upstream.load_balancer.", StrategyName(config.load_balancer.kind),
        ".hash_policies: ", config.load_balancer.hash_policies.size(), " policies, the limit is ",
        options_.max_hash_policies, " (--max-hash-policies)"));
  }
  return absl::OkStatus();
}

absl::Status Registry::CheckTargetCount(size_t count) const {
  if (count > options_.max_targets_per_upstream) {
    return absl::ResourceExhaustedError(
        absl::StrCat("targets: ", count, " targets, the limit per upstream is ",
                     options_.max_targets_per_upstream, " (--max-targets-per-upstream)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Registry::UpstreamState*> Registry::StateOf(absl::string_view name) {
  auto it = states_.find(name);
  if (it == states_.end()) return UnknownUpstream(name);
  return &it->second;
}

UpstreamRecord Registry::RecordOf(const UpstreamConfig& config,
                                  const std::vector<TargetEntry>& targets) const {
  UpstreamRecord record;
  record.config = config;
  record.targets.reserve(targets.size());
  for (const TargetEntry& t : targets) record.targets.push_back({t.config, t.health_override});
  return record;
}

std::shared_ptr<const UpstreamSnapshot> Registry::BuildSnapshot(
    const UpstreamConfig& config, const std::vector<TargetEntry>& targets,
    const std::shared_ptr<UpstreamLive>& live) {
  return UpstreamSnapshot::Build(config, targets, live, std::chrono::system_clock::now(),
                                 ThreadRandom());
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Registry::Commit(
    UpstreamState& state, UpstreamConfig config, std::vector<TargetEntry> targets) {
  // Build first (it cannot fail), persist second, publish last: a failed
  // write leaves both the store and the published state as they were.
  std::shared_ptr<const UpstreamSnapshot> snapshot = BuildSnapshot(config, targets, state.live);
  if (absl::Status s = store_->Put(RecordOf(config, targets)); !s.ok()) return s;
  state.config = std::move(config);
  state.targets = std::move(targets);
  state.slot->Publish(snapshot);
  return snapshot;
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Registry::CreateUpstream(
    UpstreamConfig config) {
  if (absl::Status s = ValidateUpstreamConfig(config); !s.ok()) return s;
  if (absl::Status s = CheckLimits(config); !s.ok()) return s;
  std::lock_guard lock(mu_);
  if (states_.contains(config.name)) {
    return absl::AlreadyExistsError(
        absl::StrCat("upstream.name: an upstream named \"", config.name, "\" already exists"));
  }
  if (states_.size() >= options_.max_upstreams) {
    return absl::ResourceExhaustedError(absl::StrCat("upstream: ", states_.size(),
                                                     " upstreams exist, the limit is ",
                                                     options_.max_upstreams, " (--max-upstreams)"));
  }
  UpstreamState state;
  state.live = std::make_shared<UpstreamLive>();
  state.slot = std::make_shared<Slot>();
  const std::string name = config.name;
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> snapshot =
      Commit(state, std::move(config), {});
  if (!snapshot.ok()) return snapshot.status();
  states_.emplace(name, std::move(state));
  PublishMap();
  return snapshot;
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Registry::UpdateUpstream(
    UpstreamConfig config) {
  if (absl::Status s = ValidateUpstreamConfig(config); !s.ok()) return s;
  if (absl::Status s = CheckLimits(config); !s.ok()) return s;
  std::lock_guard lock(mu_);
  absl::StatusOr<UpstreamState*> state = StateOf(config.name);
  if (!state.ok()) return state.status();
  return Commit(**state, std::move(config), (*state)->targets);
}

absl::Status Registry::DeleteUpstream(absl::string_view name) {
  if (absl::Status s = ValidateUpstreamName(name, "name"); !s.ok()) return s;
  std::lock_guard lock(mu_);
  auto it = states_.find(name);
  if (it == states_.end()) return UnknownUpstream(name);
  if (absl::Status s = store_->Delete(name); !s.ok()) return s;
  states_.erase(it);
  PublishMap();
  return absl::OkStatus();
}

absl::StatusOr<TargetConfig> Registry::PutTarget(absl::string_view upstream,
                                                 const TargetPatch& patch) {
  absl::StatusOr<std::string> address = CanonicalAddress(patch.address, "target.address");
  if (!address.ok()) return address.status();
  if (patch.weight && *patch.weight > kMaxTargetWeight) {
    return absl::InvalidArgumentError(
        absl::StrCat("target.weight: must be 0..", kMaxTargetWeight, ", got ", *patch.weight));
  }
  std::lock_guard lock(mu_);
  absl::StatusOr<UpstreamState*> state = StateOf(upstream);
  if (!state.ok()) return state.status();
  std::vector<TargetEntry> targets = (*state)->targets;
  auto it = FindTarget(targets, *address);
  if (it == targets.end()) {
    if (absl::Status s = CheckTargetCount(targets.size() + 1); !s.ok()) return s;
    it = targets.insert(targets.end(), TargetEntry{});
    it->config.address = *address;
  }
  TargetConfig& target = it->config;
  if (patch.weight) target.weight = *patch.weight;
  if (!patch.zone.empty()) target.zone = patch.zone;
  if (!patch.hash_key.empty()) target.hash_key = patch.hash_key;
  if (absl::Status s = ValidateTarget(target, "target"); !s.ok()) return s;
  TargetConfig result = target;
  absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> snapshot =
      Commit(**state, (*state)->config, std::move(targets));
  if (!snapshot.ok()) return snapshot.status();
  return result;
}

absl::Status Registry::DeleteTarget(absl::string_view upstream, absl::string_view address) {
  absl::StatusOr<std::string> canonical = CanonicalAddress(address, "address");
  if (!canonical.ok()) return canonical.status();
  std::lock_guard lock(mu_);
  absl::StatusOr<UpstreamState*> state = StateOf(upstream);
  if (!state.ok()) return state.status();
  std::vector<TargetEntry> targets = (*state)->targets;
  auto it = FindTarget(targets, *canonical);
  if (it == targets.end()) return UnknownTarget(upstream, *canonical);
  targets.erase(it);
  return Commit(**state, (*state)->config, std::move(targets)).status();
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Registry::ReplaceTargets(
    absl::string_view upstream, std::vector<TargetConfig> targets) {
  if (absl::Status s = CheckTargetCount(targets.size()); !s.ok()) return s;
  absl::flat_hash_map<std::string, size_t> position;
  position.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string field = absl::StrCat("targets[", i, "]");
    absl::StatusOr<std::string> address =
        CanonicalAddress(targets[i].address, absl::StrCat(field, ".address"));
    if (!address.ok()) return address.status();
    targets[i].address = *std::move(address);
    if (absl::Status s = ValidateTarget(targets[i], field); !s.ok()) return s;
    auto [it, inserted] = position.emplace(targets[i].address, i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".address: \"", targets[i].address,
                                                     "\" duplicates targets[", it->second, "]"));
    }
  }
  std::lock_guard lock(mu_);
  absl::StatusOr<UpstreamState*> state = StateOf(upstream);
  if (!state.ok()) return state.status();
  // Targets already present keep their place (host-set order), counters and
  // health; new ones follow in request order.
  std::vector<TargetEntry> next;
  next.reserve(targets.size());
  std::vector<bool> placed(targets.size(), false);
  for (const TargetEntry& existing : (*state)->targets) {
    auto it = position.find(existing.config.address);
    if (it == position.end()) continue;
    TargetEntry entry = existing;
    entry.config = targets[it->second];
    next.push_back(std::move(entry));
    placed[it->second] = true;
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    if (placed[i]) continue;
    TargetEntry& entry = next.emplace_back();
    entry.config = std::move(targets[i]);
  }
  return Commit(**state, (*state)->config, std::move(next));
}

absl::StatusOr<std::shared_ptr<const UpstreamSnapshot>> Registry::SetTargetHealth(
    absl::string_view upstream, absl::string_view address, HealthOverride health_override) {
  absl::StatusOr<std::string> canonical = CanonicalAddress(address, "address");
  if (!canonical.ok()) return canonical.status();
  std::lock_guard lock(mu_);
  absl::StatusOr<UpstreamState*> state = StateOf(upstream);
  if (!state.ok()) return state.status();
  std::vector<TargetEntry> targets = (*state)->targets;
  auto it = FindTarget(targets, *canonical);
  if (it == targets.end()) return UnknownTarget(upstream, *canonical);
  it->health_override = health_override;
  return Commit(**state, (*state)->config, std::move(targets));
}

// ---------------------------------------------------------------------------
// Data plane.

absl::StatusOr<PickOutput> Registry::Pick(const PickInput& input) {
  std::shared_ptr<const UpstreamSnapshot> snapshot = Find(input.upstream);
  if (!snapshot) return UnknownUpstream(input.upstream);
  const UpstreamConfig& config = snapshot->config();
  UpstreamLive& live = snapshot->live();

  const uint64_t active = live.active_requests.load(std::memory_order_relaxed);
  if (active >= options_.max_leases_per_upstream) {
    live.counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(
        absl::StrCat("upstream \"", config.name, "\" holds ", active, " leases, the limit is ",
                     options_.max_leases_per_upstream, " (--max-leases-per-upstream)"));
  }
  if (config.max_active_requests > 0 && active >= config.max_active_requests) {
    live.counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(absl::StrCat("upstream \"", config.name,
                                                     "\" is at its max_active_requests (",
                                                     config.max_active_requests, ")"));
  }
  if (snapshot->pickable_count() == 0) {
    live.counters.CountPick(PickResult::kUnavailable);
    return absl::UnavailableError(absl::StrCat(
        "upstream \"", config.name, "\" has no target that can be picked (",
        snapshot->targets().size(), " targets, ", snapshot->healthy_count(), " healthy",
        config.panic_threshold_percent == 0 ? ", panic mode off" : "", ")"));
  }

  PickOutput out;
  const LoadBalancerConfig& lb = config.load_balancer;
  uint64_t hash;
  if (input.hash) {
    hash = *input.hash;
  } else if (IsConsistentHashing(lb.kind) && !lb.hash_policies.empty() &&
             input.attributes != nullptr) {
    std::optional<uint64_t> computed =
        ComputeRequestHash(lb.hash_policies, *input.attributes, config.name, &out.cookies);
    hash = computed ? *computed : ThreadRandom();
  } else {
    hash = ThreadRandom();
  }
  if (IsConsistentHashing(lb.kind)) out.hash = hash;

  absl::InlinedVector<uint32_t, 4> excluded;
  for (size_t i = 0; i < input.exclude.size(); ++i) {
    absl::StatusOr<std::string> address =
        CanonicalAddress(*input.exclude[i], absl::StrCat("exclude[", i, "]"));
    if (!address.ok()) return address.status();
    if (std::optional<uint32_t> index = snapshot->Find(*address)) excluded.push_back(*index);
  }
  const std::vector<SnapshotTarget>& targets = snapshot->targets();
  const uint32_t cap = config.max_active_requests_per_target;
  auto at_cap = [&](uint32_t t) {
    return cap > 0 && targets[t].live->active_requests.load(std::memory_order_relaxed) >= cap;
  };
  auto avoid = [&](uint32_t t) {
    return at_cap(t) || std::find(excluded.begin(), excluded.end(), t) != excluded.end();
  };
  const uint32_t chosen = snapshot->Pick(hash, input.client_zone, avoid, ThreadRandom);
  if (chosen == kNoHost) {
    live.counters.CountPick(PickResult::kUnavailable);
    return absl::UnavailableError(
        absl::StrCat("upstream \"", config.name, "\" has no target that can be picked"));
  }
  if (at_cap(chosen)) {
    live.counters.CountPick(PickResult::kOverloaded);
    return absl::ResourceExhaustedError(
        absl::StrCat("upstream \"", config.name,
                     "\": every target is at its max_active_requests_per_target (", cap, ")"));
  }
  const SnapshotTarget& target = targets[chosen];
  out.lease_id = leases_.Acquire(target.live, snapshot->live_ptr(), config.lease_ttl);
  out.lease_ttl = config.lease_ttl;
  out.target = &target;
  live.counters.CountPick(PickResult::kOk);
  if (snapshot->panic()) live.counters.panic_picks.fetch_add(1, std::memory_order_relaxed);
  out.snapshot = std::move(snapshot);
  return out;
}

absl::StatusOr<LeaseState> Registry::Release(absl::string_view upstream, uint64_t lease_id,
                                             Outcome outcome,
                                             std::optional<std::chrono::nanoseconds> latency) {
  std::shared_ptr<const UpstreamSnapshot> snapshot = Find(upstream);
  if (!snapshot) return UnknownUpstream(upstream);
  LeaseTable::ReleaseResult result = leases_.Release(lease_id, &snapshot->live());
  switch (result.state) {
    case LeaseState::kNeverIssued:
      return absl::NotFoundError(
          absl::StrCat("lease_id: ", lease_id, " was never issued by upstream \"", upstream, "\""));
    case LeaseState::kReleased:
      break;
    case LeaseState::kAlreadyReleased:
    case LeaseState::kExpired:
      return result.state;
  }
  UpstreamCounters& counters = result.upstream->counters;
  switch (outcome) {
    case Outcome::kSuccess:
      counters.CountRelease(ReleaseOutcome::kSuccess);
      break;
    case Outcome::kFailure:
      counters.CountRelease(ReleaseOutcome::kFailure);
      break;
    case Outcome::kTimeout:
      counters.CountRelease(ReleaseOutcome::kTimeout);
      break;
  }
  if (latency) counters.request_duration.Observe(*latency);
  RecordOutcome(*snapshot, result.target, outcome);
  return LeaseState::kReleased;
}

// ---------------------------------------------------------------------------
// Passive health and maintenance.

void Registry::RecordOutcome(const UpstreamSnapshot& snapshot,
                             const std::shared_ptr<TargetLive>& target, Outcome outcome) {
  if (outcome == Outcome::kSuccess) {
    if (target->consecutive_failures.load(std::memory_order_relaxed) != 0) {
      target->consecutive_failures.store(0, std::memory_order_relaxed);
    }
    return;
  }
  const PassiveHealthConfig& passive = snapshot.config().passive;
  if (passive.consecutive_failures == 0) return;
  const uint32_t failures = target->consecutive_failures.fetch_add(1) + 1;
  if (failures < passive.consecutive_failures) return;

  std::lock_guard lock(dirty_mu_);  // Serialises ejection decisions.
  const WallTime now = std::chrono::system_clock::now();
  const int64_t now_ms = UnixMillis(now);
  if (target->ejected_until_ms.load() > now_ms) return;
  uint32_t ejected = 0, total = 0;
  for (const SnapshotTarget& t : snapshot.targets()) {
    if (t.config.weight == 0) continue;
    ++total;
    if (t.live->ejected_until_ms.load() > now_ms) ++ejected;
  }
  // At least one target may always be ejected; beyond that the percentage
  // bounds how much of the upstream passive health can take away.
  if (ejected > 0 && (ejected + 1) * 100 > passive.max_ejection_percent * total) return;
  const uint32_t ejections = target->ejections.fetch_add(1) + 1;
  const Millis duration =
      std::min(passive.base_ejection_time * ejections, passive.max_ejection_time);
  target->ejected_until_ms.store(now_ms + duration.count());
  target->consecutive_failures.store(0);
  snapshot.live().counters.ejections.fetch_add(1, std::memory_order_relaxed);
  dirty_.insert(&snapshot.live());
  maintenance_cv_.notify_all();
}

void Registry::MarkHealthChanged(absl::string_view upstream) {
  std::shared_ptr<const UpstreamSnapshot> snapshot = Find(upstream);
  if (!snapshot) return;
  {
    std::lock_guard lock(dirty_mu_);
    dirty_.insert(&snapshot->live());
  }
  maintenance_cv_.notify_all();
}

void Registry::RebuildDue(WallTime now) {
  absl::flat_hash_set<UpstreamLive*> dirty;
  {
    std::lock_guard lock(dirty_mu_);
    dirty.swap(dirty_);
  }
  std::lock_guard lock(mu_);
  for (auto& [name, state] : states_) {
    std::shared_ptr<const UpstreamSnapshot> current = state.slot->snapshot.load();
    const bool due = current->next_health_change() && *current->next_health_change() <= now;
    if (!due && !dirty.contains(state.live.get())) continue;
    state.slot->Publish(BuildSnapshot(state.config, state.targets, state.live));
  }
}

void Registry::RunMaintenance() {
  leases_.ExpireDue(LeaseTable::Clock::now());
  RebuildDue(std::chrono::system_clock::now());
}

void Registry::MaintenanceLoop() {
  NameThisThread("maintenance");
  std::unique_lock lock(maintenance_mu_);
  while (!stopping_) {
    maintenance_cv_.wait_for(lock, options_.maintenance_interval);
    if (stopping_) break;
    lock.unlock();
    RunMaintenance();
    lock.lock();
  }
}

}  // namespace picker::core
