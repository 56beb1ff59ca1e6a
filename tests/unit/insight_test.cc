// What operators see before they change: dry runs (validate_only and
// previews), partial updates (update_mask), allow_empty, the moved hash
// space of a preview measured against real picks, and ExplainPick checked
// against the pick that follows it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <map>
#include <string>
#include <thread>

#include "server/core/hash/hash.h"
#include "server/core/preview.h"
#include "server/core/store.h"
#include "server/core/update_mask.h"
#include "tests/support/fake_request.h"
#include "tests/support/local_picker.h"

namespace picker {
namespace {

using ::testing::HasSubstr;

core::UpstreamConfig Config(const std::string& name, core::StrategyKind kind) {
  core::UpstreamConfig c;
  c.name = name;
  c.load_balancer.kind = kind;
  return c;
}

std::vector<core::TargetConfig> Targets(
    std::initializer_list<std::pair<const char*, uint32_t>> list) {
  std::vector<core::TargetConfig> out;
  for (auto [address, weight] : list) out.push_back({address, weight});
  return out;
}

class InsightTest : public ::testing::Test {
 protected:
  core::MemoryStore store_;
  testing::LocalPicker picker_{store_};

  void Make(const core::UpstreamConfig& config, std::vector<core::TargetConfig> targets) {
    ASSERT_TRUE(picker_.CreateUpstream(config).ok());
    ASSERT_TRUE(picker_.ReplaceTargets(config.name, std::move(targets)).ok());
  }
  control::WriteResult Preview(std::vector<core::Change> changes) {
    std::promise<absl::StatusOr<control::WriteResult>> answer;
    picker_.control().Preview(std::move(changes), [&](absl::StatusOr<control::WriteResult> r) {
      answer.set_value(std::move(r));
    });
    absl::StatusOr<control::WriteResult> r = answer.get_future().get();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : control::WriteResult{};
  }
  data::PickExplanation Explain(const data::PickInput& input) {
    absl::StatusOr<data::PickExplanation> x = picker_.data().Explain(input);
    EXPECT_TRUE(x.ok()) << x.status();
    return *x;
  }
  std::string Address(const data::PickExplanation& x, uint32_t t) {
    return x.snapshot->targets()[t].config.address;
  }
  std::string PickTarget(const data::PickInput& input) {
    absl::StatusOr<data::PickOutput> out = picker_.Pick(input);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return "";
    std::string address = out->target->config.address;
    EXPECT_TRUE(picker_.Release(input.upstream, out->lease_id, data::Outcome::kSuccess, {}).ok());
    return address;
  }
};

TEST_F(InsightTest, UpdateMaskChangesOnlyTheNamedFields) {
  core::UpstreamConfig ring = Config("u", core::StrategyKind::kRingHash);
  ring.load_balancer.min_ring_size = 2048;
  Make(ring, Targets({{"10.0.0.1:80", 100}}));
  core::UpstreamConfig request = Config("u", core::StrategyKind::kRoundRobin);
  request.lease_ttl = core::Millis(5000);
  ASSERT_TRUE(picker_.control().Write(core::UpdateUpstream{request, {{"lease_ttl"}}}).ok());
  auto s = picker_.Find("u");
  EXPECT_EQ(s->config().lease_ttl, core::Millis(5000));
  EXPECT_EQ(s->config().load_balancer.kind, core::StrategyKind::kRingHash) << "kept";
  EXPECT_EQ(s->config().load_balancer.min_ring_size, 2048u);

  // A path into another member of the oneof than the stored one.
  auto refused =
      picker_.control().Write(core::UpdateUpstream{request, {{"load_balancer.maglev.table_size"}}});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("update_mask.paths[0]: \"load_balancer.maglev.table_size\""));
  // ... unless the mask names load_balancer whole.
  core::UpstreamConfig maglev = Config("u", core::StrategyKind::kMaglev);
  maglev.load_balancer.table_size = 7;
  ASSERT_TRUE(picker_.control()
                  .Write(core::UpdateUpstream{
                      maglev, {{"load_balancer", "load_balancer.maglev.table_size"}}})
                  .ok());
  EXPECT_EQ(picker_.Find("u")->config().load_balancer.kind, core::StrategyKind::kMaglev);
  EXPECT_EQ(picker_.Find("u")->config().lease_ttl, core::Millis(5000)) << "kept";
  // A merged configuration is validated as a whole.
  core::UpstreamConfig bad = maglev;
  bad.load_balancer.table_size = 8;
  EXPECT_THAT(std::string(picker_.control()
                              .Write(core::UpdateUpstream{bad, {{"load_balancer.maglev"}}})
                              .status()
                              .message()),
              HasSubstr("table_size"));
  EXPECT_EQ(
      picker_.control().Write(core::UpdateUpstream{request, {{"no_such_field"}}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  // "*" replaces everything; no mask keeps today's replace-all meaning.
  ASSERT_TRUE(picker_.control().Write(core::UpdateUpstream{request, {{"*"}}}).ok());
  EXPECT_EQ(picker_.Find("u")->config().load_balancer.kind, core::StrategyKind::kRoundRobin);
  for (const std::string& path : core::UpdateMaskPaths()) {
    auto merged = core::MergeUpstreamConfig(request, request, {path, "load_balancer"});
    EXPECT_TRUE(merged.ok()) << path << ": " << merged.status();
  }
}

TEST_F(InsightTest, ValidateOnlyBuildsButChangesNothing) {
  Make(Config("u", core::StrategyKind::kRoundRobin), Targets({{"10.0.0.1:80", 100}}));
  const uint64_t revision = picker_.control().revision();
  auto before = picker_.Find("u");
  core::TargetPatch patch{"10.0.0.2:80"};
  auto dry = picker_.control().Write(core::PutTarget{"u", patch}, {.validate_only = true});
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_TRUE(dry->dry_run);
  EXPECT_EQ(dry->record->targets.size(), 2u) << "answers what it would store";
  EXPECT_EQ(dry->snapshot->targets().size(), 2u) << "and builds it";
  EXPECT_EQ(picker_.control().revision(), revision);
  EXPECT_EQ(picker_.Find("u"), before) << "nothing published";
  EXPECT_EQ(store_.Load(nullptr)->revision, revision);
  // Refusals are the write's own.
  auto refused =
      picker_.control().Write(core::DeleteTarget{"u", "10.9.9.9:80"}, {.validate_only = true});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  auto create = picker_.control().Write(
      core::CreateUpstream{Config("u", core::StrategyKind::kRandom)}, {.validate_only = true});
  EXPECT_EQ(create.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(picker_.control().Write(core::DeleteUpstream{"u"}, {.validate_only = true}).ok());
  EXPECT_NE(picker_.Find("u"), nullptr);
}

TEST_F(InsightTest, AnEmptyTargetSetNeedsAllowEmpty) {
  Make(Config("u", core::StrategyKind::kRoundRobin), Targets({{"10.0.0.1:80", 100}}));
  auto refused = picker_.control().Write(core::ReplaceTargets{"u", {}});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("allow_empty"));
  EXPECT_EQ(picker_.Find("u")->targets().size(), 1u);
  ASSERT_TRUE(picker_.control().Write(core::ReplaceTargets{"u", {}, true}).ok());
  EXPECT_TRUE(picker_.Find("u")->targets().empty());
}

// The preview's moved share against 100,000 keys hashed before and after
// the change is applied for real: equal within sampling error.
void ExpectMovedMatchesPicks(InsightTest* test, testing::LocalPicker& picker,
                             const std::string& name, std::vector<core::Change> changes,
                             const control::WriteResult& preview) {
  const core::ChangePreview p =
      core::PreviewSnapshots(preview.before.get(), preview.snapshot.get());
  ASSERT_TRUE(p.hash_space.has_value());
  auto owner = [](const core::UpstreamSnapshot& s, uint64_t hash) {
    const uint32_t t = s.Pick(
        hash, "", [](uint32_t) { return false; }, [] { return uint64_t{0}; });
    return s.targets()[t].config.address;
  };
  constexpr int kKeys = 100000;
  std::vector<std::string> before(kKeys);
  auto snapshot = picker.Find(name);
  for (int i = 0; i < kKeys; ++i)
    before[i] = owner(*snapshot, core::XxHash64("key-" + std::to_string(i)));
  for (core::Change& change : changes) ASSERT_TRUE(picker.control().Write(std::move(change)).ok());
  snapshot = picker.Find(name);
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    moved += owner(*snapshot, core::XxHash64("key-" + std::to_string(i))) != before[i];
  }
  const double measured = static_cast<double>(moved) / kKeys;
  const double sigma = std::sqrt(p.hash_space->moved * (1 - p.hash_space->moved) / kKeys);
  EXPECT_NEAR(measured, p.hash_space->moved, 5 * sigma + 1e-4)
      << "preview " << p.hash_space->moved << ", measured " << measured;
  EXPECT_GT(p.hash_space->moved, 0.0);
}

TEST_F(InsightTest, PreviewMovedShareMatchesRealPicksOnRings) {
  Make(Config("r", core::StrategyKind::kRingHash),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 50}}));
  core::TargetPatch patch{"10.0.0.4:80"};
  const core::Change add = core::PutTarget{"r", patch};
  control::WriteResult preview = Preview({add});
  EXPECT_EQ(preview.revision, picker_.control().revision());
  const core::ChangePreview p =
      core::PreviewSnapshots(preview.before.get(), preview.snapshot.get());
  ASSERT_EQ(p.targets.size(), 4u);
  EXPECT_DOUBLE_EQ(p.targets[0].before, 0.4);
  EXPECT_DOUBLE_EQ(p.targets[3].after, 100.0 / 350);
  EXPECT_FALSE(p.targets[3].present_before);
  ExpectMovedMatchesPicks(this, picker_, "r", {add}, preview);
  // A weight change and a new ring size together (two changes previewed).
  core::UpstreamConfig bigger = Config("r", core::StrategyKind::kRingHash);
  bigger.load_balancer.min_ring_size = 4096;
  const core::Change resize = core::UpdateUpstream{bigger};
  const core::Change remove = core::DeleteTarget{"r", "10.0.0.1:80"};
  preview = Preview({resize, remove});
  ExpectMovedMatchesPicks(this, picker_, "r", {resize, remove}, preview);
}

TEST_F(InsightTest, PreviewMovedShareMatchesRealPicksOnMaglevTables) {
  core::UpstreamConfig m = Config("m", core::StrategyKind::kMaglev);
  m.load_balancer.table_size = 65537;
  Make(m, Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 100}}));
  const core::Change remove = core::DeleteTarget{"m", "10.0.0.2:80"};
  ExpectMovedMatchesPicks(this, picker_, "m", {remove}, Preview({remove}));
  // Another table size: the two residues are independent.
  m.load_balancer.table_size = 131071;
  const core::Change resize = core::UpdateUpstream{m};
  ExpectMovedMatchesPicks(this, picker_, "m", {resize}, Preview({resize}));
}

TEST_F(InsightTest, ExplainNamesTheTargetOfTheNextDeterministicPick) {
  Make(Config("rr", core::StrategyKind::kRoundRobin),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 100}}));
  Make(Config("wrr", core::StrategyKind::kRoundRobin),
       Targets({{"10.0.0.1:80", 300}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 50}}));
  Make(Config("wlr", core::StrategyKind::kLeastRequest),
       Targets({{"10.0.0.1:80", 300}, {"10.0.0.2:80", 100}}));
  Make(Config("ring", core::StrategyKind::kRingHash),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}}));
  Make(Config("maglev", core::StrategyKind::kMaglev),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}}));
  for (const char* name : {"rr", "wrr", "wlr", "ring", "maglev"}) {
    for (int i = 0; i < 12; ++i) {
      data::PickInput input{.upstream = name};
      if (i % 3 == 0) input.hash = core::XxHash64(std::to_string(i));
      data::PickExplanation x = Explain(input);
      // Explaining moves nothing: twice, the same answer.
      data::PickExplanation again = Explain(input);
      if (std::string(name) == "ring" || std::string(name) == "maglev") {
        if (!input.hash) continue;  // Random: see the next test.
      }
      ASSERT_TRUE(x.choice.strategy.deterministic) << name;
      EXPECT_EQ(x.choice.strategy.chosen, again.choice.strategy.chosen) << name;
      EXPECT_EQ(PickTarget(input), Address(x, x.choice.strategy.chosen)) << name << " pick " << i;
    }
  }
}

TEST_F(InsightTest, ARandomPickIsAmongTheCandidates) {
  Make(Config("rand", core::StrategyKind::kRandom),
       Targets({{"10.0.0.1:80", 300}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 100}}));
  Make(Config("lr", core::StrategyKind::kLeastRequest),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 100}}));
  Make(Config("ring", core::StrategyKind::kRingHash),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}}));
  // One lease held on lr's first target: it is the least likely choice.
  auto held = picker_.Pick({.upstream = "lr", .exclude = {}});
  ASSERT_TRUE(held.ok());
  for (const char* name : {"rand", "lr", "ring"}) {
    const data::PickExplanation x = Explain({.upstream = name});
    EXPECT_FALSE(x.choice.strategy.deterministic) << name;
    std::map<std::string, double> p;
    double sum = 0;
    for (const auto& c : x.choice.strategy.candidates) {
      p[Address(x, c.host)] = c.probability;
      sum += c.probability;
    }
    EXPECT_NEAR(sum, 1.0, 1e-9) << name;
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(p.contains(PickTarget({.upstream = name}))) << name;
    if (std::string(name) == "rand") {
      EXPECT_DOUBLE_EQ(p["10.0.0.1:80"], 0.6);
    }
    if (std::string(name) == "lr") {
      // Two draws: the loaded target wins only when both land on it.
      EXPECT_NEAR(p[held->target->config.address], 1.0 / 9, 1e-9);
    }
  }
}

// Bounded load: the hashed target over its cap is named as passed over with
// how far over it is, and the next pick goes where explain says. Maglev
// names its slot: the hash modulo the table size.
TEST_F(InsightTest, ExplainShowsBoundedLoadAndTheMaglevSlot) {
  core::UpstreamConfig ring = Config("bounded", core::StrategyKind::kRingHash);
  ring.load_balancer.hash_balance_factor = 100;
  Make(ring, Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}}));
  const uint64_t hash = core::XxHash64("user-7");
  const data::PickInput input{.upstream = "bounded", .hash = hash};
  // With two equal targets and factor 100 a target's cap is
  // ceil((active + 1) / 2): three leases fit on the hashed one, a fourth not.
  std::string hashed;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<data::PickOutput> held = picker_.Pick(input);
    ASSERT_TRUE(held.ok()) << held.status();
    if (i == 0) hashed = held->target->config.address;
    EXPECT_EQ(held->target->config.address, hashed) << "lease " << i;
  }
  const data::PickExplanation x = Explain(input);
  ASSERT_EQ(x.choice.strategy.passed_over.size(), 1u);
  const auto& passed = x.choice.strategy.passed_over[0];
  EXPECT_EQ(Address(x, passed.host), hashed);
  EXPECT_FALSE(passed.avoided);
  EXPECT_DOUBLE_EQ(passed.overload, 1.5);  // 3 active over a cap of 2.
  ASSERT_TRUE(x.choice.strategy.deterministic);
  const std::string chosen = Address(x, x.choice.strategy.chosen);
  EXPECT_NE(chosen, hashed);
  EXPECT_EQ(PickTarget(input), chosen);

  core::UpstreamConfig maglev = Config("maglev", core::StrategyKind::kMaglev);
  maglev.load_balancer.table_size = 65537;
  Make(maglev, Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}}));
  const data::PickExplanation m = Explain({.upstream = "maglev", .hash = hash});
  ASSERT_TRUE(m.choice.strategy.entry.has_value());
  EXPECT_EQ(*m.choice.strategy.entry, hash % 65537);
  EXPECT_FALSE(m.choice.strategy.entry_hash.has_value()) << "a ring entry's hash is RingHash's";
  EXPECT_EQ(PickTarget({.upstream = "maglev", .hash = hash}), Address(m, m.choice.strategy.chosen));
}

// PeakEwma and WeightedRoundRobin explain themselves: PeakEwma's candidates
// carry the power-of-two-choices chance at the costs of now (a host with
// one active request more than two others costs twice as much and wins only
// when both draws land on it: 1/9); WeightedRoundRobin names the target its
// schedule gives next, and the pick goes there.
TEST_F(InsightTest, PeakEwmaAndWeightedRoundRobinExplainThemselves) {
  Make(Config("ewma", core::StrategyKind::kPeakEwma),
       Targets({{"10.0.0.1:80", 100}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 100}}));
  auto held = picker_.Pick({.upstream = "ewma"});
  ASSERT_TRUE(held.ok()) << held.status();
  const data::PickExplanation x = Explain({.upstream = "ewma"});
  EXPECT_FALSE(x.choice.strategy.deterministic);
  EXPECT_THAT(x.choice.strategy.rule, HasSubstr("peak EWMA"));
  ASSERT_EQ(x.choice.strategy.candidates.size(), 3u);
  double sum = 0;
  for (const auto& c : x.choice.strategy.candidates) {
    const bool loaded = Address(x, c.host) == held->target->config.address;
    EXPECT_NEAR(c.probability, loaded ? 1.0 / 9 : 4.0 / 9, 1e-9) << Address(x, c.host);
    sum += c.probability;
  }
  EXPECT_NEAR(sum, 1.0, 1e-9);

  Make(Config("wrr2", core::StrategyKind::kWeightedRoundRobin),
       Targets({{"10.0.0.1:80", 300}, {"10.0.0.2:80", 100}, {"10.0.0.3:80", 50}}));
  for (int i = 0; i < 12; ++i) {
    const data::PickExplanation w = Explain({.upstream = "wrr2"});
    ASSERT_TRUE(w.choice.strategy.deterministic);
    EXPECT_THAT(w.choice.strategy.rule, HasSubstr("weighted round robin"));
    EXPECT_EQ(PickTarget({.upstream = "wrr2"}), Address(w, w.choice.strategy.chosen)) << i;
  }
}

TEST_F(InsightTest, ExplainSaysWhyEachTargetIsLeftOut) {
  core::UpstreamConfig c = Config("u", core::StrategyKind::kRoundRobin);
  c.max_active_requests_per_target = 1;
  c.panic_threshold_percent = 0;
  Make(c, Targets({{"10.0.0.1:80", 100},
                   {"10.0.0.2:80", 0},
                   {"10.0.0.3:80", 100},
                   {"10.0.0.4:80", 100},
                   {"10.0.0.5:80", 100},
                   {"10.0.0.6:80", 100},
                   {"10.0.0.7:80", 100}}));
  ASSERT_TRUE(picker_.SetTargetHealth("u", "10.0.0.3:80", core::HealthOverride::kUnhealthy).ok());
  // Passive: an ejection until a time; active: the prober's flag.
  auto s = picker_.Find("u");
  const int64_t until =
      std::chrono::duration_cast<core::Millis>(std::chrono::system_clock::now().time_since_epoch())
          .count() +
      60000;
  s->targets()[3].live->ejected_until_ms.store(until);
  s->targets()[4].live->active_unhealthy.store(true);
  picker_.MarkHealthChanged("u");
  for (int i = 0; i < 100 && picker_.Find("u") == s; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A lease on .6 puts it at its circuit-breaker cap; .7 is excluded.
  const std::string one = "10.0.0.1:80", capped = "10.0.0.6:80", exclude = "10.0.0.7:80";
  const std::string* others[] = {&one, &exclude};
  auto lease = picker_.Pick({.upstream = "u", .exclude = others});
  ASSERT_TRUE(lease.ok());
  ASSERT_EQ(lease->target->config.address, capped);
  const std::string* excluded[] = {&exclude};
  const data::PickExplanation x = Explain({.upstream = "u", .exclude = excluded});
  std::map<std::string, std::string> why;
  for (const auto& left : x.left_out) why[Address(x, left.target)] = left.reason;
  EXPECT_EQ(why["10.0.0.2:80"], "weight_zero");
  EXPECT_EQ(why["10.0.0.3:80"], "unhealthy");
  EXPECT_EQ(why["10.0.0.4:80"], "unhealthy");
  EXPECT_EQ(why["10.0.0.5:80"], "unhealthy");
  EXPECT_EQ(why[capped], "circuit_breaker");
  EXPECT_EQ(why[exclude], "excluded");
  EXPECT_FALSE(why.contains("10.0.0.1:80"));
  const auto& targets = x.snapshot->targets();
  EXPECT_EQ(targets[2].reasons, core::kReasonManual);
  EXPECT_EQ(targets[3].reasons, core::kReasonPassive);
  EXPECT_TRUE(targets[3].returns_at.has_value());
  EXPECT_EQ(targets[4].reasons, core::kReasonActive);
  EXPECT_FALSE(x.choice.panic);
  EXPECT_EQ(Address(x, x.choice.strategy.chosen), "10.0.0.1:80");
}

TEST_F(InsightTest, ExplainShowsPolicyResultsLocalityAndPanic) {
  core::UpstreamConfig c = Config("z", core::StrategyKind::kRingHash);
  c.load_balancer.hash_policies = {{core::HashPolicy::Kind::kHeader, "x-a", true},
                                   {core::HashPolicy::Kind::kHeader, "x-b"}};
  Make(c, {{"10.0.0.1:80", 100, "a"}, {"10.0.0.2:80", 100, "b"}});
  core::testing::FakeRequest request;
  request.headers["x-a"] = "1";
  request.headers["x-b"] = "2";
  data::PickExplanation x = Explain({.upstream = "z", .attributes = &request, .client_zone = "a"});
  ASSERT_EQ(x.policies.size(), 2u);
  EXPECT_EQ(x.policies[0].result, core::PolicyTrace::Result::kHashed);
  EXPECT_EQ(x.policies[1].result, core::PolicyTrace::Result::kSkipped);
  EXPECT_EQ(x.hash_source, "hash_policies");
  EXPECT_TRUE(x.choice.locality_applies);
  EXPECT_EQ(x.choice.local_percent, 100u);
  EXPECT_EQ(x.choice.priority, 0u);
  EXPECT_EQ(Address(x, x.choice.strategy.chosen), "10.0.0.1:80");
  std::map<std::string, std::string> why;
  for (const auto& left : x.left_out) why[Address(x, left.target)] = left.reason;
  EXPECT_EQ(why["10.0.0.2:80"], "other_priority");
  // Both unhealthy: panic, and nothing is left out for its health.
  ASSERT_TRUE(picker_.SetTargetHealth("z", "10.0.0.1:80", core::HealthOverride::kUnhealthy).ok());
  ASSERT_TRUE(picker_.SetTargetHealth("z", "10.0.0.2:80", core::HealthOverride::kUnhealthy).ok());
  x = Explain({.upstream = "z"});
  EXPECT_TRUE(x.choice.panic);
  EXPECT_TRUE(x.left_out.empty());
}

}  // namespace
}  // namespace picker
