// The control and data planes end to end in one process: admin writes,
// picks, releases, lease expiry and passive health, with the in-memory store.
#include "tests/support/local_picker.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace picker::core {
namespace {

using ::picker::testing::LocalPicker;
using ::picker::testing::Outcome;
using ::picker::testing::PickInput;
using ::picker::testing::PickOutput;
using ::testing::HasSubstr;

// The records the store holds, by name.
std::vector<UpstreamRecord> Stored(Store& store) {
  std::vector<UpstreamRecord> out;
  // Held in a variable: a range-for over `Load(...)->records` would outlive
  // the StatusOr it reads.
  absl::StatusOr<StoreState> state = store.Load(nullptr);
  for (RevisionedRecord& r : state->records) out.push_back(std::move(r.record));
  return out;
}

class PlanesTest : public ::testing::Test {
 protected:
  void SetUp() override { registry_ = std::make_unique<LocalPicker>(store_); }

  void Create(const std::string& name, StrategyKind kind = StrategyKind::kRoundRobin,
              Millis ttl = Millis(60000)) {
    UpstreamConfig config;
    config.name = name;
    config.load_balancer.kind = kind;
    config.lease_ttl = ttl;
    ASSERT_TRUE(registry_->CreateUpstream(config).ok());
  }

  void Put(const std::string& upstream, const std::string& address, uint32_t weight = 100) {
    ASSERT_TRUE(
        registry_->PutTarget(upstream, TargetPatch{.address = address, .weight = weight}).ok());
  }

  absl::StatusOr<PickOutput> Pick(const std::string& upstream,
                                  std::vector<std::string> exclude = {}) {
    std::vector<const std::string*> pointers;
    for (const std::string& e : exclude) pointers.push_back(&e);
    PickInput input;
    input.upstream = upstream;
    input.exclude = pointers;
    return registry_->Pick(input);
  }

  uint64_t Active(const std::string& upstream) {
    return registry_->Find(upstream)->live().active_requests.load();
  }

  MemoryStore store_;
  std::unique_ptr<LocalPicker> registry_;
};

TEST_F(PlanesTest, RoundRobinAlternatesAndCountsActive) {
  Create("u");
  Put("u", "10.0.0.1:80");
  Put("u", "10.0.0.2:80");
  absl::flat_hash_map<std::string, int> seen;
  std::vector<uint64_t> leases;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<PickOutput> pick = Pick("u");
    ASSERT_TRUE(pick.ok()) << pick.status();
    ++seen[pick->target->config.address];
    leases.push_back(pick->lease_id);
  }
  EXPECT_EQ(seen["10.0.0.1:80"], 5);
  EXPECT_EQ(seen["10.0.0.2:80"], 5);
  EXPECT_EQ(Active("u"), 10u);
  for (uint64_t id : leases) {
    EXPECT_EQ(*registry_->Release("u", id, Outcome::kSuccess, std::nullopt), LeaseState::kReleased);
  }
  EXPECT_EQ(Active("u"), 0u);
  EXPECT_EQ(*registry_->Release("u", leases[0], Outcome::kSuccess, std::nullopt),
            LeaseState::kAlreadyReleased);
  EXPECT_EQ(registry_->Release("u", leases.back() + 1000, Outcome::kSuccess, std::nullopt)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(PlanesTest, RejectedWritesChangeNothing) {
  Create("u");
  Put("u", "10.0.0.1:80");
  const std::vector<StoredTarget> before = Stored(store_)[0].targets;
  EXPECT_EQ(registry_->PutTarget("u", {.address = "10.0.0.1:80", .weight = 70000}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->ReplaceTargets("u", {{.address = "[::1]:80"}, {.address = "[0::1]:80"}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_->PutTarget("nope", {.address = "10.0.0.1:80"}).status().code(),
            absl::StatusCode::kNotFound);
  UpstreamConfig duplicate;
  duplicate.name = "u";
  duplicate.load_balancer.kind = StrategyKind::kMaglev;
  EXPECT_EQ(registry_->CreateUpstream(duplicate).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Stored(store_)[0].targets, before);
  EXPECT_EQ(registry_->Find("u")->config().load_balancer.kind, StrategyKind::kRoundRobin);
}

TEST_F(PlanesTest, PutTargetKeepsOmittedFieldsAndPlace) {
  Create("u");
  ASSERT_TRUE(registry_->PutTarget("u", {.address = "a.example:80", .zone = "z1"}).ok());
  Put("u", "b.example:80");
  ASSERT_TRUE(registry_->PutTarget("u", {.address = "A.EXAMPLE:80", .weight = 5}).ok());
  const auto& targets = registry_->Find("u")->targets();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].config.address, "a.example:80");
  EXPECT_EQ(targets[0].config.weight, 5u);
  EXPECT_EQ(targets[0].config.zone, "z1");
}

TEST_F(PlanesTest, WeightZeroAndNoTargetsAreUnavailable) {
  Create("u");
  EXPECT_EQ(Pick("u").status().code(), absl::StatusCode::kUnavailable);
  Put("u", "10.0.0.1:80", 0);
  EXPECT_EQ(Pick("u").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Pick("missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PlanesTest, ExcludeAvoidsTargetWhenAnotherExists) {
  Create("u");
  Put("u", "[::1]:80");
  Put("u", "10.0.0.2:80");
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<PickOutput> pick = Pick("u", {"[0:0::1]:80"});
    ASSERT_TRUE(pick.ok());
    EXPECT_EQ(pick->target->config.address, "10.0.0.2:80");
  }
  // Best effort: with everything excluded, a target still comes back.
  EXPECT_TRUE(Pick("u", {"[::1]:80", "10.0.0.2:80"}).ok());
}

TEST_F(PlanesTest, ManualOverrideAndPanic) {
  Create("u");
  Put("u", "10.0.0.1:80");
  Put("u", "10.0.0.2:80");
  ASSERT_TRUE(registry_->SetTargetHealth("u", "10.0.0.1:80", HealthOverride::kUnhealthy).ok());
  // 1 of 2 healthy: 140% x 50% = 70% >= 50%, no panic; the unhealthy one is skipped.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Pick("u")->target->config.address, "10.0.0.2:80");
  ASSERT_TRUE(registry_->SetTargetHealth("u", "10.0.0.2:80", HealthOverride::kUnhealthy).ok());
  EXPECT_TRUE(registry_->Find("u")->panic());
  EXPECT_TRUE(Pick("u").ok());  // Panic: picks spread over all targets.
  UpstreamConfig config = registry_->Find("u")->config();
  config.panic_threshold_percent = 0;
  ASSERT_TRUE(registry_->UpdateUpstream(config).ok());
  EXPECT_EQ(Pick("u").status().code(), absl::StatusCode::kUnavailable);
}

// Envoy's isHostSetInPanic: the plain healthy share against the threshold,
// unless the overprovisioned health (1.4 x) reaches 100%.
TEST_F(PlanesTest, PanicFollowsEnvoysRule) {
  struct Case {
    int targets, healthy;
    uint32_t threshold;
    bool panic;
  };
  const Case cases[] = {
      {5, 2, 50, true},    // 40% < 50%, although 1.4 x 40% = 56% is not.
      {3, 1, 50, true},    // 33%.
      {2, 1, 50, false},   // 50% is not below 50%.
      {3, 2, 50, false},   // 66%.
      {4, 3, 80, false},   // 75% < 80%, but 1.4 x 75% >= 100%: fully available.
      {10, 7, 80, true},   // 70% < 80% and 1.4 x 70% = 98% < 100%.
      {10, 0, 0, false},   // A threshold of 0 never panics.
      {10, 0, 100, true},  // Nothing healthy.
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string name = "p" + std::to_string(n++);
    Create(name);
    for (int i = 0; i < c.targets; ++i) {
      const std::string address = "10.0.0." + std::to_string(i + 1) + ":80";
      Put(name, address);
      if (i >= c.healthy) {
        ASSERT_TRUE(registry_->SetTargetHealth(name, address, HealthOverride::kUnhealthy).ok());
      }
    }
    UpstreamConfig config = registry_->Find(name)->config();
    config.panic_threshold_percent = c.threshold;
    ASSERT_TRUE(registry_->UpdateUpstream(config).ok());
    EXPECT_EQ(registry_->Find(name)->panic(), c.panic)
        << c.healthy << " of " << c.targets << " healthy, threshold " << c.threshold;
  }
}

// Envoy's priority loads as Kong Mesh configures them: the client's zone is
// priority 0 and takes min(100, 1.4 x its healthy share) of the picks.
TEST_F(PlanesTest, LocalityPrefersClientZoneAndSpills) {
  Create("u");
  for (const char* a : {"10.0.1.1:80", "10.0.1.2:80"}) {
    ASSERT_TRUE(registry_->PutTarget("u", {.address = a, .zone = "a"}).ok());
  }
  for (const char* b : {"10.0.2.1:80", "10.0.2.2:80"}) {
    ASSERT_TRUE(registry_->PutTarget("u", {.address = b, .zone = "b"}).ok());
  }
  auto zone_share = [&](const std::string& client_zone, const std::string& zone) {
    int hits = 0;
    for (int i = 0; i < 2000; ++i) {
      PickInput input;
      input.upstream = "u";
      input.client_zone = client_zone;
      absl::StatusOr<PickOutput> pick = registry_->Pick(input);
      EXPECT_TRUE(pick.ok());
      if (pick->target->config.zone == zone) ++hits;
      EXPECT_TRUE(registry_->Release("u", pick->lease_id, Outcome::kSuccess, std::nullopt).ok());
    }
    return hits / 2000.0;
  };
  EXPECT_EQ(zone_share("a", "a"), 1.0);
  EXPECT_EQ(zone_share("b", "b"), 1.0);
  EXPECT_NEAR(zone_share("", "a"), 0.5, 0.1);
  ASSERT_TRUE(registry_->SetTargetHealth("u", "10.0.1.1:80", HealthOverride::kUnhealthy).ok());
  EXPECT_NEAR(zone_share("a", "a"), 0.70, 0.06);  // 1.4 x 1/2 = 70%.
  ASSERT_TRUE(registry_->SetTargetHealth("u", "10.0.1.2:80", HealthOverride::kUnhealthy).ok());
  EXPECT_EQ(zone_share("a", "b"), 1.0);
  UpstreamConfig config = registry_->Find("u")->config();
  config.locality_aware = false;
  ASSERT_TRUE(registry_->UpdateUpstream(config).ok());
  EXPECT_EQ(zone_share("a", "b"), 1.0);  // Only zone b is healthy at all.
  ASSERT_TRUE(registry_->SetTargetHealth("u", "10.0.1.1:80", HealthOverride::kNone).ok());
  EXPECT_NEAR(zone_share("b", "a"), 1.0 / 3, 0.08);  // Zones ignored: 1 of 3 healthy targets.
}

// A pick's client tags, as the API layer hands them over.
class Tags final : public ClientTagsView {
 public:
  explicit Tags(std::map<std::string, std::string> tags) : tags_(std::move(tags)) {}
  std::optional<std::string_view> Tag(std::string_view key) const override {
    auto it = tags_.find(std::string(key));
    if (it == tags_.end()) return std::nullopt;
    return std::string_view(it->second);
  }

 private:
  std::map<std::string, std::string> tags_;
};

// An upstream's per-client configuration: picks from matching clients use
// its strategy (its own ring), the rest the upstream's; the targets'
// active-request counts are one.
TEST_F(PlanesTest, PerClientConfigurationsHaveTheirOwnTablesAndSharedCounts) {
  UpstreamConfig config;
  config.name = "backend";
  ClientConfig& web = config.client_configs.emplace_back();
  web.client = ClientSelector{"web", {}};
  web.load_balancer.kind = StrategyKind::kRingHash;
  web.load_balancer.hash_policies = {
      HashPolicy{.kind = HashPolicy::Kind::kHeader, .name = "x-header"}};
  ClientConfig& east = config.client_configs.emplace_back();
  east.client = ClientSelector{"", {{"kuma.io/zone", "east"}}};
  east.load_balancer.kind = StrategyKind::kLeastRequest;
  ReplaceZerosWithDefaults(config);
  ASSERT_TRUE(registry_->CreateUpstream(config).ok());
  for (int i = 1; i <= 4; ++i) Put("backend", "10.0.0." + std::to_string(i) + ":80");

  class Headers final : public RequestAttributesView {
   public:
    std::optional<std::string_view> Header(std::string_view name) const override {
      if (name == "x-header") return std::string_view("user-7");
      return std::nullopt;
    }
    std::optional<std::string_view> Cookie(std::string_view) const override { return {}; }
    std::optional<std::string_view> QueryParameter(std::string_view) const override { return {}; }
    std::optional<std::string_view> FilterState(std::string_view) const override { return {}; }
    std::string_view SourceIp() const override { return ""; }
  } headers;
  auto targets_of = [&](absl::string_view service, const Tags* tags, absl::string_view zone) {
    std::set<std::string> seen;
    for (int i = 0; i < 8; ++i) {
      PickInput input;
      input.upstream = "backend";
      input.attributes = &headers;
      input.client_service = service;
      input.client_tags = tags;
      input.client_zone = zone;
      absl::StatusOr<PickOutput> pick = registry_->Pick(input);
      EXPECT_TRUE(pick.ok()) << pick.status();
      if (!pick.ok()) continue;
      EXPECT_EQ(pick->hash.has_value(), service == "web");
      seen.insert(pick->target->config.address);
      // Every configuration's lease counts on the one upstream.
      EXPECT_EQ(Active("backend"), 1u);
      EXPECT_TRUE(registry_->Release("backend", pick->lease_id, Outcome::kSuccess, {}).ok());
    }
    return seen.size();
  };
  EXPECT_EQ(targets_of("web", nullptr, ""), 1u);  // The ring: one header, one target.
  EXPECT_EQ(targets_of("api", nullptr, ""), 4u);  // Round robin over the four.
  EXPECT_EQ(targets_of("", nullptr, ""), 4u);
  const Tags web_east(std::map<std::string, std::string>{{"kuma.io/zone", "east"}});
  EXPECT_EQ(targets_of("web", &web_east, ""), 1u);  // The first that matches wins.
  // client_zone counts as kuma.io/zone: the LeastRequest configuration.
  std::shared_ptr<const UpstreamSnapshot> snapshot = registry_->Find("backend");
  const Client from_east{"api", nullptr, "east"};
  EXPECT_EQ(snapshot->ClientConfigOf(from_east), std::optional<size_t>(1));
  EXPECT_EQ(snapshot->ForClient(from_east).config().load_balancer.kind,
            StrategyKind::kLeastRequest);
  const Tags west(std::map<std::string, std::string>{{"kuma.io/zone", "west"}});
  EXPECT_EQ(snapshot->ClientConfigOf(Client{"api", &west, "east"}), std::nullopt);

  // A lease of one configuration holds a count the others see.
  PickInput input;
  input.upstream = "backend";
  input.attributes = &headers;
  input.client_service = "web";
  absl::StatusOr<PickOutput> held = registry_->Pick(input);
  ASSERT_TRUE(held.ok());
  const SnapshotTarget* in_default = nullptr;
  for (const SnapshotTarget& t : registry_->Find("backend")->targets()) {
    if (t.config.address == held->target->config.address) in_default = &t;
  }
  ASSERT_NE(in_default, nullptr);
  EXPECT_EQ(in_default->live->active_requests.load(), 1u);
  EXPECT_TRUE(registry_->Release("backend", held->lease_id, Outcome::kSuccess, {}).ok());
}

TEST_F(PlanesTest, LeasesExpire) {
  Create("u", StrategyKind::kRoundRobin, Millis(30));
  Put("u", "10.0.0.1:80");
  const uint64_t id = Pick("u")->lease_id;
  EXPECT_EQ(Active("u"), 1u);
  for (int i = 0; i < 400 && Active("u") != 0; ++i) std::this_thread::sleep_for(Millis(5));
  EXPECT_EQ(Active("u"), 0u);
  EXPECT_EQ(*registry_->Release("u", id, Outcome::kSuccess, std::nullopt), LeaseState::kExpired);
  EXPECT_EQ(Active("u"), 0u);
}

TEST_F(PlanesTest, PassiveEjectionAndReturn) {
  UpstreamConfig config;
  config.name = "u";
  config.passive.consecutive_failures = 3;
  // Long enough that a loaded machine cannot end it before the checks.
  config.passive.base_ejection_time = Millis(800);
  config.passive.max_ejection_percent = 50;
  ASSERT_TRUE(registry_->CreateUpstream(config).ok());
  Put("u", "10.0.0.1:80");
  Put("u", "10.0.0.2:80");
  // Fail every request that lands on the first target.
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<PickOutput> pick = Pick("u");
    const bool bad = pick->target->config.address == "10.0.0.1:80";
    EXPECT_TRUE(registry_
                    ->Release("u", pick->lease_id, bad ? Outcome::kFailure : Outcome::kSuccess,
                              std::nullopt)
                    .ok());
  }
  for (int i = 0; i < 200 && registry_->Find("u")->healthy_count() != 1; ++i) {
    std::this_thread::sleep_for(Millis(1));
  }
  EXPECT_EQ(registry_->Find("u")->healthy_count(), 1u);
  EXPECT_EQ(registry_->Find("u")->targets()[0].reasons, kReasonPassive);
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<PickOutput> pick = Pick("u");
    EXPECT_EQ(pick->target->config.address, "10.0.0.2:80");
    EXPECT_TRUE(registry_->Release("u", pick->lease_id, Outcome::kSuccess, std::nullopt).ok());
  }
  for (int i = 0; i < 500 && registry_->Find("u")->healthy_count() != 2; ++i) {
    std::this_thread::sleep_for(Millis(10));
  }
  EXPECT_EQ(registry_->Find("u")->healthy_count(), 2u);
}

// Many threads pick, release, let leases expire and remove targets at once;
// afterwards every counter is back to exactly zero.
TEST_F(PlanesTest, CountersReturnToZeroUnderConcurrency) {
  Create("u", StrategyKind::kLeastRequest, Millis(20));
  for (int i = 1; i <= 8; ++i) Put("u", "10.0.0." + std::to_string(i) + ":80");
  std::vector<std::shared_ptr<TargetLive>> lives;
  for (const SnapshotTarget& t : registry_->Find("u")->targets()) lives.push_back(t.live);

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        absl::StatusOr<PickOutput> pick = Pick("u");
        if (!pick.ok()) continue;
        if ((i + t) % 3 != 0) {  // Every third lease is left to expire.
          EXPECT_TRUE(
              registry_->Release("u", pick->lease_id, Outcome::kSuccess, std::nullopt).ok());
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; !stop; ++i) {
      const std::string address = "10.0.0." + std::to_string(1 + i % 8) + ":80";
      registry_->DeleteTarget("u", address).IgnoreError();
      Put("u", address);
    }
  });
  for (int t = 0; t < 4; ++t) threads[t].join();
  stop = true;
  threads.back().join();
  for (const SnapshotTarget& t : registry_->Find("u")->targets()) lives.push_back(t.live);
  for (int i = 0; i < 400 && registry_->leases().active_count() != 0; ++i) {
    std::this_thread::sleep_for(Millis(5));
  }
  EXPECT_EQ(registry_->leases().active_count(), 0u);
  EXPECT_EQ(Active("u"), 0u);
  for (const auto& live : lives) EXPECT_EQ(live->active_requests.load(), 0u);
}

// Until the control plane has applied `revision` (another writer's change
// arrives through the feed, on the control plane's thread).
void WaitForRevision(LocalPicker& picker, uint64_t revision) {
  for (int i = 0; i < 1000 && picker.control().revision() < revision; ++i) {
    std::this_thread::sleep_for(Millis(1));
  }
}

UpstreamRecord RecordOf(const std::string& name, std::vector<std::string> addresses) {
  UpstreamRecord record;
  record.config.name = name;
  for (const std::string& a : addresses) record.targets.push_back({TargetConfig{.address = a}});
  return record;
}

// What another replica sharing the store does: it commits to the store, and
// picks here follow, as they follow local writes.
TEST_F(PlanesTest, AChangeCommittedByAnotherWriterIsServedAsALocalOne) {
  const uint64_t created = *store_.Put(RecordOf("other", {"10.0.0.9:80"}));
  WaitForRevision(*registry_, created);
  absl::StatusOr<PickOutput> pick = Pick("other");
  ASSERT_TRUE(pick.ok()) << pick.status();
  EXPECT_EQ(pick->target->config.address, "10.0.0.9:80");

  // A local write builds on the other writer's record.
  Put("other", "10.0.0.8:80");
  EXPECT_EQ(registry_->Find("other")->targets().size(), 2u);
  const uint64_t replaced = *store_.Put(RecordOf("other", {"10.0.0.7:80"}));
  WaitForRevision(*registry_, replaced);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Pick("other")->target->config.address, "10.0.0.7:80");
  // The lease taken before lives on; its target's count goes back to 0.
  EXPECT_EQ(*registry_->Release("other", pick->lease_id, Outcome::kSuccess, std::nullopt),
            LeaseState::kReleased);

  const uint64_t deleted = *store_.Delete("other");
  WaitForRevision(*registry_, deleted);
  EXPECT_EQ(Pick("other").status().code(), absl::StatusCode::kNotFound);
}

// A control plane whose watch was lost resumes after the last revision it
// applied; when the store no longer has those changes, it loads the whole
// state again and serves it.
TEST(PlanesResyncTest, AWatchLostResumesOrReloadsAfterCompacted) {
  MemoryStore store(1, /*history=*/4);
  LocalPicker picker(store);
  ASSERT_TRUE(picker.CreateUpstream(UpstreamConfig{.name = "kept"}).ok());
  ASSERT_TRUE(picker.PutTarget("kept", {.address = "10.0.0.1:80"}).ok());
  ASSERT_TRUE(picker.CreateUpstream(UpstreamConfig{.name = "gone"}).ok());

  store.InterruptWatches();  // Resynced on the control plane's thread.
  ASSERT_TRUE(store.Put(RecordOf("kept", {"10.0.0.2:80"})).ok());
  const uint64_t resumed = *store.Put(RecordOf("new", {"10.0.0.3:80"}));
  WaitForRevision(picker, resumed);
  EXPECT_EQ(picker.Find("kept")->targets()[0].config.address, "10.0.0.2:80");
  EXPECT_NE(picker.Find("new"), nullptr);

  // A loss noticed only after more changes than the store keeps.
  const std::vector<StoreWatcher*> lost = store.DropWatches();
  ASSERT_EQ(lost.size(), 1u);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store.Put(RecordOf("kept", {"10.0.1." + std::to_string(i) + ":80"})).ok());
  }
  ASSERT_TRUE(store.Delete("gone").ok());
  const uint64_t last = *store.Put(RecordOf("late", {"10.0.0.4:80"}));
  EXPECT_NE(picker.Find("gone"), nullptr);  // Not heard of yet.
  EXPECT_TRUE(IsCompacted(store.Watch(resumed, lost[0])));
  lost[0]->OnWatchLost();
  WaitForRevision(picker, last);  // Compacted: loaded again.
  EXPECT_EQ(picker.control().revision(), last);
  EXPECT_EQ(picker.Find("gone"), nullptr);
  EXPECT_EQ(picker.Find("kept")->targets()[0].config.address, "10.0.1.5:80");
  absl::StatusOr<PickOutput> pick = picker.Pick(PickInput{.upstream = "late"});
  ASSERT_TRUE(pick.ok()) << pick.status();
  EXPECT_EQ(pick->target->config.address, "10.0.0.4:80");
}

TEST_F(PlanesTest, StatePersistsAcrossOpen) {
  Create("u", StrategyKind::kMaglev);
  Put("u", "10.0.0.1:80", 7);
  ASSERT_TRUE(registry_->SetTargetHealth("u", "10.0.0.1:80", HealthOverride::kUnhealthy).ok());
  const uint64_t old_lease_epoch = registry_->leases().boot();
  registry_.reset();
  store_.Reopen();
  registry_ = std::make_unique<LocalPicker>(store_);
  auto snapshot = registry_->Find("u");
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->config().load_balancer.kind, StrategyKind::kMaglev);
  EXPECT_EQ(snapshot->targets()[0].config.weight, 7u);
  EXPECT_EQ(snapshot->targets()[0].health_override, HealthOverride::kUnhealthy);
  EXPECT_GT(registry_->leases().boot(), old_lease_epoch);
}

// A record stored by an earlier version with choice_count above today's
// bound loads, and its picks are cheap (the strategy clamps the count);
// a new write of the same value is refused.
TEST_F(PlanesTest, AStoredChoiceCountAboveTheBoundLoadsAndPicksCheaply) {
  registry_.reset();
  UpstreamRecord record = RecordOf("old", {"10.0.0.1:80", "10.0.0.2:80"});
  record.config.load_balancer.kind = StrategyKind::kLeastRequest;
  record.config.load_balancer.choice_count = 4294967295u;
  ASSERT_TRUE(store_.Put(record).ok());
  store_.Reopen();
  registry_ = std::make_unique<LocalPicker>(store_);
  ASSERT_NE(registry_->Find("old"), nullptr);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(registry_->Pick({.upstream = "old"}).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  record.config.name = "new";
  EXPECT_EQ(registry_->control().Write(core::CreateUpstream{record.config}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Open builds the upstreams' snapshots on several threads once there are
// enough of them: every upstream comes back with its own strategy and
// targets.
TEST_F(PlanesTest, ManyUpstreamsAreRebuiltOnOpen) {
  constexpr int kUpstreams = 300;
  const StrategyKind kinds[] = {StrategyKind::kRoundRobin, StrategyKind::kMaglev,
                                StrategyKind::kRingHash, StrategyKind::kLeastRequest};
  for (int i = 0; i < kUpstreams; ++i) {
    const std::string name = "u" + std::to_string(i);
    Create(name, kinds[i % 4]);
    Put(name, "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80");
    Put(name, "10.2." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80");
  }
  registry_.reset();
  store_.Reopen();
  registry_ = std::make_unique<LocalPicker>(store_);
  for (int i = 0; i < kUpstreams; ++i) {
    const std::string name = "u" + std::to_string(i);
    std::shared_ptr<const UpstreamSnapshot> snapshot = registry_->Find(name);
    ASSERT_NE(snapshot, nullptr) << name;
    EXPECT_EQ(snapshot->config().load_balancer.kind, kinds[i % 4]) << name;
    ASSERT_EQ(snapshot->targets().size(), 2u) << name;
    absl::StatusOr<PickOutput> pick = Pick(name);
    ASSERT_TRUE(pick.ok()) << name << ": " << pick.status();
    const std::string suffix =
        "." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80";
    EXPECT_TRUE(absl::EndsWith(pick->target->config.address, suffix))
        << name << " picked " << pick->target->config.address;
  }
}

// A store whose writes fail on demand, as a full or failing disk makes them
// (root, who runs the tests here, writes through file permissions, so the
// real FileStore cannot be made to fail).
class FailingStore : public MemoryStore {
 public:
  using MemoryStore::Put;
  absl::StatusOr<uint64_t> Put(RecordPtr record, uint64_t expected) override {
    if (failing) return absl::InternalError("cannot fsync: No space left on device");
    return MemoryStore::Put(record, expected);
  }
  absl::StatusOr<uint64_t> Delete(absl::string_view name, uint64_t expected) override {
    if (failing) return absl::InternalError("cannot remove: Input/output error");
    return MemoryStore::Delete(name, expected);
  }
  bool failing = false;
};

TEST(PlanesStoreFailureTest, AFailedWriteChangesNeitherTheStoreNorWhatPicksSee) {
  FailingStore store;
  auto registry = std::make_unique<LocalPicker>(store);
  UpstreamConfig config;
  config.name = "u";
  ASSERT_TRUE(registry->CreateUpstream(config).ok());
  ASSERT_TRUE(registry->PutTarget("u", TargetPatch{.address = "10.0.0.1:80", .weight = 100}).ok());
  const std::shared_ptr<const UpstreamSnapshot> before = registry->Find("u");
  const std::vector<UpstreamRecord> stored_before = Stored(store);

  store.failing = true;
  UpstreamConfig other;
  other.name = "v";
  EXPECT_EQ(registry->CreateUpstream(other).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(registry->Find("v"), nullptr);
  absl::StatusOr<TargetConfig> put =
      registry->PutTarget("u", TargetPatch{.address = "10.0.0.2:80", .weight = 100});
  EXPECT_EQ(put.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(put.status().message(), HasSubstr("No space left"));
  EXPECT_EQ(
      registry->PutTarget("u", TargetPatch{.address = "10.0.0.1:80", .weight = 7}).status().code(),
      absl::StatusCode::kInternal);
  EXPECT_EQ(registry->ReplaceTargets("u", {{.address = "10.0.0.3:80"}}).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(registry->DeleteTarget("u", "10.0.0.1:80").code(), absl::StatusCode::kInternal);
  config.lease_ttl = Millis(1234);
  EXPECT_EQ(registry->UpdateUpstream(config).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(registry->DeleteUpstream("u").code(), absl::StatusCode::kInternal);

  // Picks still see the snapshot from before the failures, and so does the
  // store.
  EXPECT_EQ(registry->Find("u"), before);
  EXPECT_EQ(Stored(store), stored_before);
  ASSERT_EQ(registry->Find("u")->targets().size(), 1u);
  EXPECT_EQ(registry->Find("u")->targets()[0].config.weight, 100u);

  // Once the disk is back, writes go on from the state before the failures.
  store.failing = false;
  ASSERT_TRUE(registry->PutTarget("u", TargetPatch{.address = "10.0.0.2:80", .weight = 100}).ok());
  EXPECT_EQ(registry->Find("u")->targets().size(), 2u);
  EXPECT_NE(registry->Find("u")->config().lease_ttl, Millis(1234));
  EXPECT_EQ(Stored(store).size(), 1u);
}

}  // namespace
}  // namespace picker::core
