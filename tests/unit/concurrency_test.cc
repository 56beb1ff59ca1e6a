// The core under concurrent load, written to run under ThreadSanitizer (see
// scripts/test.sh): picks with every strategy, releases on other threads,
// leases left to expire, abandoned leases, and admin writes that swap
// snapshots (ReplaceTargets, UpdateUpstream, SetTargetHealth, active-health
// flips with MarkHealthChanged) all at once. Afterwards every target's and
// upstream's active counter is exactly zero and every lease ended exactly
// once: picked = released + expired + abandoned.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "server/core/hash/hash_policy.h"
#include "server/core/store.h"
#include "server/core/strategy/edf_scheduler.h"
#include "tests/support/fake_request.h"
#include "tests/support/local_picker.h"

// Options and configs are built with designated initializers naming only
// the fields set; the rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace picker::core {
namespace {

using ::picker::testing::LocalPicker;
using ::picker::testing::Outcome;
using ::picker::testing::PickInput;
using ::picker::testing::PickOutput;

// Long enough for thousands of picks and hundreds of snapshot swaps even at
// ThreadSanitizer's speed, short enough for CI.
constexpr auto kHammerTime = std::chrono::milliseconds(1500);
// Lease TTLs well under the hammer time, so expiry runs all along.
constexpr Millis kMinTtl{2};
constexpr Millis kMaxTtl{12};
constexpr int kAddressPool = 12;

std::string Address(int i) { return "10.0.0." + std::to_string(1 + i % kAddressPool) + ":80"; }

// What the test itself saw, to check against the registry's counters.
struct Tally {
  std::atomic<uint64_t> picked{0};
  std::atomic<uint64_t> released{0};       // Release answered kReleased.
  std::atomic<uint64_t> late_released{0};  // Release answered kExpired.
  std::atomic<uint64_t> abandoned{0};
  std::atomic<uint64_t> refused{0};  // RESOURCE_EXHAUSTED or UNAVAILABLE.
};

struct HeldLease {
  const std::string* upstream;
  uint64_t id;
};

// Leases handed from pickers to releasers.
class LeaseQueue {
 public:
  bool Push(HeldLease lease) {
    std::lock_guard lock(mu_);
    if (leases_.size() >= 4096) return false;  // Releasers are behind: let it expire.
    leases_.push_back(lease);
    return true;
  }
  std::optional<HeldLease> Pop() {
    std::lock_guard lock(mu_);
    if (leases_.empty()) return std::nullopt;
    HeldLease lease = leases_.front();
    leases_.pop_front();
    return lease;
  }

 private:
  std::mutex mu_;
  std::deque<HeldLease> leases_;
};

class ConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A short expiry granularity so expiry races with everything else; a
    // low lease limit so the overloaded path runs too.
    registry_ = std::make_unique<LocalPicker>(
        store_,
        LocalPicker::Options{.max_leases_per_upstream = 48, .expiry_granularity = Millis(2)});
  }

  UpstreamConfig BaseConfig(const std::string& name, StrategyKind kind) {
    UpstreamConfig config;
    config.name = name;
    config.load_balancer.kind = kind;
    config.lease_ttl = Millis(5);
    // Failures eject targets for milliseconds, so passive health rebuilds
    // snapshots on the maintenance thread during the run.
    config.passive.consecutive_failures = 3;
    config.passive.base_ejection_time = Millis(5);
    config.passive.max_ejection_time = Millis(20);
    config.passive.max_ejection_percent = 50;
    // Small rings and tables: every admin write rebuilds them.
    config.load_balancer.min_ring_size = 64;
    config.load_balancer.max_ring_size = 256;
    config.load_balancer.table_size = 251;
    return config;
  }

  // A window of the address pool, in two zones, with uneven weights so
  // RoundRobin and LeastRequest use their EDF schedules.
  static std::vector<TargetConfig> Targets(int round) {
    std::vector<TargetConfig> targets;
    const int count = 6 + round % 5;
    for (int i = 0; i < count; ++i) {
      TargetConfig& t = targets.emplace_back();
      t.address = Address(round + i);
      t.weight = static_cast<uint32_t>(1 + (round + i) % 3);
      t.zone = (round + i) % 2 == 0 ? "a" : "b";
    }
    return targets;
  }

  void PickLoop(const std::string& upstream, StrategyKind kind, uint64_t seed) {
    std::mt19937_64 rng(seed);
    absl::flat_hash_set<std::shared_ptr<TargetLive>> seen;
    while (!stop_.load(std::memory_order_relaxed)) {
      PickInput input;
      input.upstream = upstream;
      if (rng() % 4 == 0) input.client_zone = rng() % 2 == 0 ? "a" : "b";
      if (kind == StrategyKind::kRingHash) input.hash = rng() % 1000;
      // One header for Maglev's hash policy, so picks also run
      // ComputeRequestHash.
      testing::FakeRequest user;
      user.headers["x-user"] = "user-" + std::to_string(rng() % 100);
      if (kind == StrategyKind::kMaglev) input.attributes = &user;
      const std::string excluded = Address(static_cast<int>(rng() % kAddressPool));
      const std::string* exclude[] = {&excluded};
      if (rng() % 8 == 0) input.exclude = exclude;

      absl::StatusOr<PickOutput> pick = registry_->Pick(input);
      if (!pick.ok()) {
        const absl::StatusCode code = pick.status().code();
        EXPECT_TRUE(code == absl::StatusCode::kResourceExhausted ||
                    code == absl::StatusCode::kUnavailable)
            << pick.status();
        tally_.refused.fetch_add(1);
        std::this_thread::yield();
        continue;
      }
      tally_.picked.fetch_add(1);
      // The target must belong to the snapshot the pick returned.
      const auto& targets = pick->snapshot->targets();
      EXPECT_TRUE(pick->target >= targets.data() && pick->target < targets.data() + targets.size());
      seen.insert(pick->target->live);

      switch (rng() % 8) {
        case 0:
        case 1:
        case 2:  // Released at once, mostly successfully.
          ReleaseOnce(upstream, pick->lease_id,
                      rng() % 8 == 0 ? Outcome::kFailure : Outcome::kSuccess);
          break;
        case 3:
        case 4:                                      // Released later, on another thread.
          queue_.Push({&upstream, pick->lease_id});  // When full, it expires.
          break;
        case 5:  // The client went away.
          if (registry_->Abandon(pick->lease_id)) tally_.abandoned.fetch_add(1);
          break;
        default:  // Left to expire.
          break;
      }
    }
    std::lock_guard lock(seen_mu_);
    seen_.insert(seen.begin(), seen.end());
  }

  void ReleaseOnce(const std::string& upstream, uint64_t id, Outcome outcome) {
    absl::StatusOr<LeaseState> state = registry_->Release(upstream, id, outcome, std::nullopt);
    ASSERT_TRUE(state.ok()) << state.status();
    if (*state == LeaseState::kReleased) {
      tally_.released.fetch_add(1);
    } else {
      // Only expiry can beat the one release of a lease.
      EXPECT_EQ(*state, LeaseState::kExpired);
      tally_.late_released.fetch_add(1);
    }
  }

  void ReleaseLoop(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (;;) {
      std::optional<HeldLease> lease = queue_.Pop();
      if (!lease) {
        if (stop_.load()) return;
        std::this_thread::yield();
        continue;
      }
      const Outcome outcome = rng() % 10 == 0 ? Outcome::kTimeout : Outcome::kSuccess;
      ReleaseOnce(*lease->upstream, lease->id, outcome);
      if (rng() % 16 == 0) {
        // A duplicate release never counts twice.
        absl::StatusOr<LeaseState> again =
            registry_->Release(*lease->upstream, lease->id, Outcome::kSuccess, std::nullopt);
        ASSERT_TRUE(again.ok()) << again.status();
        EXPECT_NE(*again, LeaseState::kReleased);
      }
    }
  }

  void AdminLoop(const std::vector<std::string>& upstreams, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int round = 0; !stop_.load(); ++round) {
      const std::string& name = upstreams[round % upstreams.size()];
      switch (rng() % 5) {
        case 0:
          ASSERT_TRUE(registry_->ReplaceTargets(name, Targets(static_cast<int>(rng() % 64))).ok());
          break;
        case 1: {
          UpstreamConfig config = registry_->Find(name)->config();
          config.lease_ttl = Millis(kMinTtl.count() + rng() % (kMaxTtl - kMinTtl).count());
          config.locality_aware = rng() % 2 == 0;
          config.panic_threshold_percent = static_cast<uint32_t>(rng() % 80);
          config.max_active_requests_per_target = static_cast<uint32_t>(rng() % 3 * 4);
          if (config.load_balancer.kind == StrategyKind::kLeastRequest) {
            config.load_balancer.choice_count = static_cast<uint32_t>(2 + rng() % 3);
          }
          if (config.load_balancer.kind == StrategyKind::kRingHash) {
            config.load_balancer.hash_balance_factor =
                rng() % 2 == 0 ? std::nullopt : std::optional<uint32_t>(150);
          }
          ASSERT_TRUE(registry_->UpdateUpstream(config).ok());
          break;
        }
        case 2: {
          // Holds the snapshot: a rebuild may drop the published one meanwhile.
          std::shared_ptr<const UpstreamSnapshot> snapshot = registry_->Find(name);
          const auto& targets = snapshot->targets();
          if (targets.empty()) break;
          const auto health = static_cast<HealthOverride>(rng() % 3);
          ASSERT_TRUE(
              registry_
                  ->SetTargetHealth(name, targets[rng() % targets.size()].config.address, health)
                  .ok());
          break;
        }
        case 3: {
          // What the active health prober does: flip a live flag, ask for a
          // rebuild on the control plane's thread.
          std::shared_ptr<const UpstreamSnapshot> snapshot = registry_->Find(name);
          if (snapshot->targets().empty()) break;
          TargetLive& live = *snapshot->targets()[rng() % snapshot->targets().size()].live;
          live.active_unhealthy.store(!live.active_unhealthy.load());
          registry_->MarkHealthChanged(name);
          break;
        }
        default:
          // Lease expiry on this thread too, racing the data plane's timer.
          registry_->RunMaintenance();
          break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  MemoryStore store_;
  std::unique_ptr<LocalPicker> registry_;
  std::atomic<bool> stop_{false};
  Tally tally_;
  LeaseQueue queue_;
  std::mutex seen_mu_;
  absl::flat_hash_set<std::shared_ptr<TargetLive>> seen_;
};

TEST_F(ConcurrencyTest, PicksReleasesExpiryAndSwapsKeepCountersExact) {
  struct Upstream {
    std::string name;
    StrategyKind kind;
  };
  const std::vector<Upstream> upstreams = {
      {"round-robin", StrategyKind::kRoundRobin}, {"least-request", StrategyKind::kLeastRequest},
      {"ring-hash", StrategyKind::kRingHash},     {"maglev", StrategyKind::kMaglev},
      {"random", StrategyKind::kRandom},
  };
  std::vector<std::string> names;
  for (const Upstream& u : upstreams) {
    UpstreamConfig config = BaseConfig(u.name, u.kind);
    if (u.kind == StrategyKind::kMaglev) {
      config.load_balancer.hash_policies.push_back(
          {.kind = HashPolicy::Kind::kHeader, .name = "x-user"});
    }
    if (u.kind == StrategyKind::kRandom) config.max_active_requests = 24;
    ASSERT_TRUE(registry_->CreateUpstream(config).ok());
    ASSERT_TRUE(registry_->ReplaceTargets(u.name, Targets(0)).ok());
    names.push_back(u.name);
  }

  std::vector<std::thread> threads;
  for (size_t i = 0; i < upstreams.size(); ++i) {
    threads.emplace_back([&, i] { PickLoop(upstreams[i].name, upstreams[i].kind, 1000 + i); });
  }
  for (uint64_t i = 0; i < 2; ++i) threads.emplace_back([&, i] { ReleaseLoop(2000 + i); });
  threads.emplace_back([&] { AdminLoop(names, 3000); });
  std::this_thread::sleep_for(kHammerTime);
  stop_.store(true);
  for (std::thread& t : threads) t.join();

  // Whatever was neither released nor abandoned expires within the longest
  // TTL plus a maintenance round.
  for (int i = 0; i < 500 && registry_->leases().active_count() != 0; ++i) {
    std::this_thread::sleep_for(Millis(10));
  }
  ASSERT_EQ(registry_->leases().active_count(), 0u);

  // Meaningful only if every path ran.
  std::printf("picked %llu, released %llu (%llu after expiry), abandoned %llu, refused %llu\n",
              static_cast<unsigned long long>(tally_.picked.load()),
              static_cast<unsigned long long>(tally_.released.load()),
              static_cast<unsigned long long>(tally_.late_released.load()),
              static_cast<unsigned long long>(tally_.abandoned.load()),
              static_cast<unsigned long long>(tally_.refused.load()));
  EXPECT_GT(tally_.picked.load(), 1000u);
  EXPECT_GT(tally_.released.load(), 0u);
  EXPECT_GT(tally_.abandoned.load(), 0u);

  uint64_t picks_ok = 0, ended_by_release = 0, expired = 0, abandoned = 0;
  for (const std::string& name : names) {
    std::shared_ptr<const UpstreamSnapshot> snapshot = registry_->Find(name);
    const UpstreamLive& live = snapshot->live();
    EXPECT_EQ(live.active_requests.load(), 0u) << name;
    const auto& releases = live.counters.releases;
    const auto count = [&](ReleaseOutcome o) { return releases[static_cast<size_t>(o)].load(); };
    const uint64_t ok = live.counters.picks[static_cast<size_t>(PickResult::kOk)].load();
    const uint64_t by_release = count(ReleaseOutcome::kSuccess) + count(ReleaseOutcome::kFailure) +
                                count(ReleaseOutcome::kTimeout);
    // Every lease of this upstream ended exactly once.
    EXPECT_EQ(ok, by_release + count(ReleaseOutcome::kExpired) + count(ReleaseOutcome::kAbandoned))
        << name;
    EXPECT_GT(ok, 0u) << name;
    picks_ok += ok;
    ended_by_release += by_release;
    expired += count(ReleaseOutcome::kExpired);
    abandoned += count(ReleaseOutcome::kAbandoned);
    for (const SnapshotTarget& t : snapshot->targets()) seen_.insert(t.live);
  }
  EXPECT_EQ(picks_ok, tally_.picked.load());
  EXPECT_EQ(ended_by_release, tally_.released.load());
  EXPECT_EQ(abandoned, tally_.abandoned.load());
  EXPECT_GE(expired, tally_.late_released.load());
  EXPECT_GT(expired, 0u);
  // Including targets that admin writes removed while they had leases.
  for (const auto& live : seen_) EXPECT_EQ(live->active_requests.load(), 0u);
}

// Found by the test above: CreateWithPicks read every weight twice (for the
// sum, then for the split). LeastRequest's weights follow live active-request
// counters, so a change in between left up to `picks` (hundreds of millions)
// to the one-at-a-time loop, and a snapshot build held the registry's writer
// mutex for seconds: admin writes, health rebuilds and lease expiry stalled.
TEST(EdfSchedulerTest, CreateWithPicksReadsEachWeightOnce) {
  int calls = 0;
  // Weights that drop after the first reads, as when requests start.
  auto weight = [&calls](uint32_t) { return calls++ < 8 ? 10.0 : 1.0; };
  const EdfScheduler scheduler = EdfScheduler::CreateWithPicks(8, weight, 400000000);
  EXPECT_FALSE(scheduler.empty());
  // One read per host, then fewer than two leftover picks per host.
  EXPECT_LE(calls, 8 + 2 * 8);
}

}  // namespace
}  // namespace picker::core
