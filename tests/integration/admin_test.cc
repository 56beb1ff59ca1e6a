// picker.v1.Admin over gRPC against the real server: effective values,
// updates, targets and their order, health overrides.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using v1::SetTargetHealthRequest;
using v1::TargetHealth;

class AdminTest : public PickerServerTest {};

std::vector<std::string> Addresses(const v1::ListTargetsResponse& list) {
  std::vector<std::string> out;
  for (const auto& t : list.targets()) out.push_back(t.address());
  return out;
}

// The defaults every upstream gets when nothing else is said.
void ExpectCommonDefaults(const v1::Upstream& u) {
  ASSERT_TRUE(u.has_panic_threshold_percent()) << u.DebugString();
  EXPECT_EQ(u.panic_threshold_percent(), 50u);
  EXPECT_EQ(Millis(u.lease_ttl()), 60000);
  EXPECT_FALSE(u.locality_awareness().disabled());
  const auto& passive = u.health_checks().passive();
  ASSERT_TRUE(passive.has_consecutive_failures()) << u.DebugString();
  EXPECT_EQ(passive.consecutive_failures(), 5u);
  EXPECT_EQ(Millis(passive.base_ejection_time()), 30000);
  EXPECT_EQ(Millis(passive.max_ejection_time()), 300000);
  ASSERT_TRUE(passive.has_max_ejection_percent()) << u.DebugString();
  EXPECT_EQ(passive.max_ejection_percent(), 10u);
  const auto& active = u.health_checks().active();
  EXPECT_EQ(Millis(active.interval()), 0) << "active checks are off by default";
  EXPECT_EQ(Millis(active.timeout()), 1000);
  EXPECT_EQ(active.http_path(), "/");
  EXPECT_THAT(active.healthy_http_statuses(), ElementsAre(200u, 302u));
  EXPECT_EQ(active.healthy_successes(), 2u);
  EXPECT_EQ(active.unhealthy_failures(), 3u);
}

TEST_F(AdminTest, CreateWithNothingSetFillsDefaults) {
  const std::string name = NewName();
  v1::Upstream request;
  request.set_name(name);
  auto created = CreateUpstream(request);
  ASSERT_OK(created.status);
  EXPECT_EQ(created.value.name(), name);
  EXPECT_TRUE(created.value.load_balancer().has_round_robin())
      << "unset load_balancer means round_robin: " << created.value.DebugString();
  ExpectCommonDefaults(created.value);

  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  EXPECT_TRUE(ProtoEqual(got.value, created.value));
  ExpectCommonDefaults(got.value);
}

TEST_F(AdminTest, RingHashDefaultsFilled) {
  const std::string name = NewName();
  auto created = CreateUpstreamText("name: '" + name + "' load_balancer { ring_hash {} }");
  ASSERT_OK(created.status);
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  ASSERT_TRUE(got.value.load_balancer().has_ring_hash()) << got.value.DebugString();
  const auto& rh = got.value.load_balancer().ring_hash();
  EXPECT_EQ(rh.hash_function(), v1::XX_HASH);
  EXPECT_EQ(rh.min_ring_size(), 1024u);
  EXPECT_EQ(rh.max_ring_size(), 8388608u);
  EXPECT_FALSE(rh.has_hash_balance_factor());
  ExpectCommonDefaults(got.value);
  EXPECT_TRUE(ProtoEqual(got.value, created.value));
}

TEST_F(AdminTest, RingHashOptionsKept) {
  const std::string name = NewName();
  auto created = CreateUpstreamText("name: '" + name +
                                    "' load_balancer { ring_hash { hash_function: MURMUR_HASH_2 "
                                    "min_ring_size: 2048 max_ring_size: 4096 "
                                    "hash_policies { header { name: 'x-user' } terminal: true } "
                                    "hash_policies { connection { source_ip: true } } "
                                    "hash_balance_factor: 150 } }");
  ASSERT_OK(created.status);
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  const auto& rh = got.value.load_balancer().ring_hash();
  EXPECT_EQ(rh.hash_function(), v1::MURMUR_HASH_2);
  EXPECT_EQ(rh.min_ring_size(), 2048u);
  EXPECT_EQ(rh.max_ring_size(), 4096u);
  ASSERT_EQ(rh.hash_policies_size(), 2);
  EXPECT_EQ(rh.hash_policies(0).header().name(), "x-user");
  EXPECT_TRUE(rh.hash_policies(0).terminal());
  EXPECT_TRUE(rh.hash_policies(1).connection().source_ip());
  ASSERT_TRUE(rh.has_hash_balance_factor());
  EXPECT_EQ(rh.hash_balance_factor(), 150u);
  EXPECT_TRUE(ProtoEqual(got.value, created.value));
}

TEST_F(AdminTest, MaglevDefaultsFilledAndOptionsKept) {
  const std::string defaults = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + defaults + "' load_balancer { maglev {} }").status);
  auto got = GetUpstream(defaults);
  ASSERT_OK(got.status);
  ASSERT_TRUE(got.value.load_balancer().has_maglev()) << got.value.DebugString();
  EXPECT_EQ(got.value.load_balancer().maglev().table_size(), 65537u);
  ExpectCommonDefaults(got.value);

  const std::string custom = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + custom +
                               "' load_balancer { maglev { table_size: 5000011 "
                               "hash_policies { query_parameter { name: 'Session' } } "
                               "hash_policies { cookie { name: 'sid' ttl { seconds: 3600 } "
                               "path: '/' } } hash_balance_factor: 200 } }")
                .status);
  got = GetUpstream(custom);
  ASSERT_OK(got.status);
  const auto& mg = got.value.load_balancer().maglev();
  EXPECT_EQ(mg.table_size(), 5000011u);
  ASSERT_EQ(mg.hash_policies_size(), 2);
  EXPECT_EQ(mg.hash_policies(0).query_parameter().name(), "Session");
  EXPECT_EQ(mg.hash_policies(1).cookie().name(), "sid");
  EXPECT_EQ(mg.hash_policies(1).cookie().ttl().seconds(), 3600);
  EXPECT_EQ(mg.hash_policies(1).cookie().path(), "/");
  EXPECT_EQ(mg.hash_balance_factor(), 200u);
}

TEST_F(AdminTest, LeastRequestDefaultsFilledAndOptionsKept) {
  const std::string defaults = NewName();
  ASSERT_OK(
      CreateUpstreamText("name: '" + defaults + "' load_balancer { least_request {} }").status);
  auto got = GetUpstream(defaults);
  ASSERT_OK(got.status);
  ASSERT_TRUE(got.value.load_balancer().has_least_request()) << got.value.DebugString();
  EXPECT_EQ(got.value.load_balancer().least_request().choice_count(), 2u);
  ASSERT_TRUE(got.value.load_balancer().least_request().has_active_request_bias());
  EXPECT_DOUBLE_EQ(got.value.load_balancer().least_request().active_request_bias(), 1.0);

  const std::string custom = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + custom +
                               "' load_balancer { least_request { choice_count: 3 "
                               "active_request_bias: 0.5 } }")
                .status);
  got = GetUpstream(custom);
  ASSERT_OK(got.status);
  EXPECT_EQ(got.value.load_balancer().least_request().choice_count(), 3u);
  EXPECT_DOUBLE_EQ(got.value.load_balancer().least_request().active_request_bias(), 0.5);

  // A bias of 0 is a value, not "unset".
  const std::string zero = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + zero +
                               "' load_balancer { least_request { active_request_bias: 0 } }")
                .status);
  got = GetUpstream(zero);
  ASSERT_OK(got.status);
  ASSERT_TRUE(got.value.load_balancer().least_request().has_active_request_bias());
  EXPECT_DOUBLE_EQ(got.value.load_balancer().least_request().active_request_bias(), 0.0);
}

TEST_F(AdminTest, RandomAndRoundRobinKept) {
  const std::string random = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + random + "' load_balancer { random {} }").status);
  auto got = GetUpstream(random);
  ASSERT_OK(got.status);
  EXPECT_TRUE(got.value.load_balancer().has_random()) << got.value.DebugString();

  const std::string rr = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + rr + "' load_balancer { round_robin {} }").status);
  got = GetUpstream(rr);
  ASSERT_OK(got.status);
  EXPECT_TRUE(got.value.load_balancer().has_round_robin()) << got.value.DebugString();
}

TEST_F(AdminTest, TopLevelOptionsKept) {
  const std::string name = NewName();
  ASSERT_OK(CreateUpstreamText(
                "name: '" + name +
                "' panic_threshold_percent: 0 lease_ttl { seconds: 5 } "
                "locality_awareness { disabled: true } "
                "health_checks { passive { consecutive_failures: 0 base_ejection_time "
                "{ seconds: 2 } max_ejection_time { seconds: 20 } max_ejection_percent: 100 } "
                "active { type: TCP interval { seconds: 10 } timeout { nanos: 500000000 } "
                "http_path: '/healthz' healthy_http_statuses: 204 healthy_successes: 1 "
                "unhealthy_failures: 4 } }")
                .status);
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  const auto& u = got.value;
  ASSERT_TRUE(u.has_panic_threshold_percent());
  EXPECT_EQ(u.panic_threshold_percent(), 0u) << "0 = never panic, not the default";
  EXPECT_EQ(Millis(u.lease_ttl()), 5000);
  EXPECT_TRUE(u.locality_awareness().disabled());
  const auto& passive = u.health_checks().passive();
  ASSERT_TRUE(passive.has_consecutive_failures());
  EXPECT_EQ(passive.consecutive_failures(), 0u) << "0 = passive health off, not the default";
  EXPECT_EQ(Millis(passive.base_ejection_time()), 2000);
  EXPECT_EQ(Millis(passive.max_ejection_time()), 20000);
  EXPECT_EQ(passive.max_ejection_percent(), 100u);
  const auto& active = u.health_checks().active();
  EXPECT_EQ(active.type(), v1::HealthChecks::Active::TCP);
  EXPECT_EQ(Millis(active.interval()), 10000);
  EXPECT_EQ(Millis(active.timeout()), 500);
  EXPECT_EQ(active.http_path(), "/healthz");
  EXPECT_THAT(active.healthy_http_statuses(), ElementsAre(204u));
  EXPECT_EQ(active.healthy_successes(), 1u);
  EXPECT_EQ(active.unhealthy_failures(), 4u);
}

TEST_F(AdminTest, ListUpstreamsOrderedByNameWithEffectiveValues) {
  const std::string base = NewName();
  const std::string b = base + "-b", a = base + "-a", c = base + "-c";
  ASSERT_OK(CreateUpstreamText("name: '" + b + "' load_balancer { maglev {} }").status);
  ASSERT_OK(CreateUpstreamText("name: '" + a + "'").status);
  ASSERT_OK(CreateUpstreamText("name: '" + c + "' load_balancer { ring_hash {} }").status);
  auto list = ListUpstreams();
  ASSERT_OK(list.status);
  std::vector<std::string> names;
  for (const auto& u : list.value.upstreams()) names.push_back(u.name());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()))
      << "ListUpstreams is ordered by name: " << ::testing::PrintToString(names);
  int found = 0;
  for (const auto& u : list.value.upstreams()) {
    if (u.name() != a && u.name() != b && u.name() != c) continue;
    ++found;
    auto got = GetUpstream(u.name());
    ASSERT_OK(got.status);
    EXPECT_TRUE(ProtoEqual(u, got.value)) << "List and Get agree on " << u.name();
    if (u.name() == a) {
      EXPECT_TRUE(u.load_balancer().has_round_robin());
      ExpectCommonDefaults(u);
    }
    if (u.name() == b) {
      EXPECT_EQ(u.load_balancer().maglev().table_size(), 65537u);
    }
    if (u.name() == c) {
      EXPECT_EQ(u.load_balancer().ring_hash().min_ring_size(), 1024u);
    }
  }
  EXPECT_EQ(found, 3);
}

TEST_F(AdminTest, UpdateUpstreamReplacesConfigAndKeepsTargets) {
  const std::string name =
      MakeUpstream("ring_hash { min_ring_size: 2048 hash_policies { header { name: 'x' } } }",
                   {MakeTarget("10.0.0.1:80", 10, "z1"), MakeTarget("10.0.0.2:80"),
                    MakeTarget("10.0.0.3:80", 0)},
                   "panic_threshold_percent: 30 lease_ttl { seconds: 9 }");
  auto targets_before = ListTargets(name);
  ASSERT_OK(targets_before.status);
  ASSERT_EQ(targets_before.value.targets_size(), 3);
  // A lease held across the update keeps its count.
  auto pick = Pick(name);
  ASSERT_OK(pick.status);

  v1::Upstream update;
  update.set_name(name);
  update.mutable_load_balancer()->mutable_maglev();
  auto updated = UpdateUpstream(update);
  ASSERT_OK(updated.status);
  EXPECT_TRUE(updated.value.load_balancer().has_maglev());
  EXPECT_EQ(updated.value.load_balancer().maglev().table_size(), 65537u);
  EXPECT_EQ(updated.value.panic_threshold_percent(), 50u)
      << "UpdateUpstream replaces the whole configuration: fields left out take defaults";
  EXPECT_EQ(Millis(updated.value.lease_ttl()), 60000);

  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  EXPECT_TRUE(ProtoEqual(got.value, updated.value));

  auto targets_after = ListTargets(name);
  ASSERT_OK(targets_after.status);
  EXPECT_TRUE(ProtoEqual(targets_after.value, targets_before.value))
      << "targets survive UpdateUpstream";
  EXPECT_EQ(TotalActive(name), 1) << "active counts survive UpdateUpstream";
  auto release = Release(name, pick.value.lease_id());
  ASSERT_OK(release.status);
  EXPECT_EQ(release.value.state(), v1::ReleaseResponse::RELEASED);
  EXPECT_EQ(TotalActive(name), 0);
}

TEST_F(AdminTest, UpdateUpstreamKeepsHealthOverride) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")},
                   "panic_threshold_percent: 0");
  ASSERT_OK(SetTargetHealth(name, "10.0.0.1:80", SetTargetHealthRequest::UNHEALTHY).status);
  v1::Upstream update;
  update.set_name(name);
  update.set_panic_threshold_percent(0);
  update.mutable_load_balancer()->mutable_random();
  ASSERT_OK(UpdateUpstream(update).status);
  auto health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  ASSERT_EQ(health.value.targets_size(), 2);
  EXPECT_FALSE(health.value.targets(0).healthy()) << "override survives UpdateUpstream";
  v1::PickRequest request;
  request.set_upstream(name);
  auto counts = PickAndReleaseCounts(request, 20);
  EXPECT_EQ(counts.count("10.0.0.1:80"), 0u);
  EXPECT_EQ(counts["10.0.0.2:80"], 20);
}

TEST_F(AdminTest, DeleteUpstream) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  ASSERT_OK(DeleteUpstream(name));
  EXPECT_CODE(GetUpstream(name).status, NOT_FOUND);
  EXPECT_CODE(ListTargets(name).status, NOT_FOUND);
  EXPECT_CODE(Pick(name).status, NOT_FOUND);
  EXPECT_CODE(Release(name, pick.value.lease_id()).status, NOT_FOUND)
      << "leases of a deleted upstream are unknown to Release";
  auto list = ListUpstreams();
  ASSERT_OK(list.status);
  for (const auto& u : list.value.upstreams()) EXPECT_NE(u.name(), name);
  EXPECT_CODE(DeleteUpstream(name), NOT_FOUND);
  // The name can be reused, starting empty.
  ASSERT_OK(CreateUpstreamText("name: '" + name + "'").status);
  auto targets = ListTargets(name);
  ASSERT_OK(targets.status);
  EXPECT_EQ(targets.value.targets_size(), 0);
}

TEST_F(AdminTest, PutTargetAddsWithDefaults) {
  const std::string name = MakeUpstream("round_robin {}", {});
  auto put = PutTarget(name, MakeTarget("10.0.0.1:8080"));
  ASSERT_OK(put.status);
  EXPECT_EQ(put.value.address(), "10.0.0.1:8080");
  ASSERT_TRUE(put.value.has_weight()) << put.value.DebugString();
  EXPECT_EQ(put.value.weight(), 100u);
  auto list = ListTargets(name);
  ASSERT_OK(list.status);
  ASSERT_EQ(list.value.targets_size(), 1);
  EXPECT_TRUE(ProtoEqual(list.value.targets(0), put.value));
}

TEST_F(AdminTest, PutTargetUpdateKeepsUnspecifiedFieldsAndOrder) {
  const std::string name = MakeUpstream("round_robin {}", {});
  v1::Target first = MakeTarget("10.0.0.1:80", 7, "zone-a");
  first.set_hash_key("key-1");
  ASSERT_OK(PutTarget(name, first).status);
  ASSERT_OK(PutTarget(name, MakeTarget("10.0.0.2:80", 20, "zone-b")).status);
  ASSERT_OK(PutTarget(name, MakeTarget("10.0.0.3:80")).status);

  // Weight only: zone and hash_key kept, place kept.
  auto put = PutTarget(name, MakeTarget("10.0.0.1:80", 300));
  ASSERT_OK(put.status);
  EXPECT_EQ(put.value.weight(), 300u);
  EXPECT_EQ(put.value.zone(), "zone-a");
  EXPECT_EQ(put.value.hash_key(), "key-1");

  // Zone only: weight kept.
  put = PutTarget(name, MakeTarget("10.0.0.2:80", std::nullopt, "zone-c"));
  ASSERT_OK(put.status);
  EXPECT_EQ(put.value.weight(), 20u);
  EXPECT_EQ(put.value.zone(), "zone-c");

  // Weight 0 is a value, not "unset".
  put = PutTarget(name, MakeTarget("10.0.0.3:80", 0));
  ASSERT_OK(put.status);
  ASSERT_TRUE(put.value.has_weight());
  EXPECT_EQ(put.value.weight(), 0u);

  auto list = ListTargets(name);
  ASSERT_OK(list.status);
  EXPECT_THAT(Addresses(list.value), ElementsAre("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"));
  ASSERT_EQ(list.value.targets_size(), 3);
  EXPECT_EQ(list.value.targets(0).weight(), 300u);
  EXPECT_EQ(list.value.targets(0).zone(), "zone-a");
  EXPECT_EQ(list.value.targets(0).hash_key(), "key-1");
  EXPECT_EQ(list.value.targets(1).weight(), 20u);
  EXPECT_EQ(list.value.targets(1).zone(), "zone-c");
  EXPECT_EQ(list.value.targets(2).weight(), 0u);
}

TEST_F(AdminTest, DeleteTargetKeepsOrderOfOthers) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"),
                                      MakeTarget("10.0.0.3:80"), MakeTarget("10.0.0.4:80")});
  ASSERT_OK(DeleteTarget(name, "10.0.0.2:80"));
  auto list = ListTargets(name);
  ASSERT_OK(list.status);
  EXPECT_THAT(Addresses(list.value), ElementsAre("10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"));
  EXPECT_CODE(DeleteTarget(name, "10.0.0.2:80"), NOT_FOUND);
  // Re-adding appends it at the end (first added now).
  ASSERT_OK(PutTarget(name, MakeTarget("10.0.0.2:80")).status);
  list = ListTargets(name);
  ASSERT_OK(list.status);
  EXPECT_THAT(Addresses(list.value),
              ElementsAre("10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.2:80"));
}

TEST_F(AdminTest, ReplaceTargetsKeepsPlaceOfExistingAndAppendsNew) {
  const std::string name = MakeUpstream(
      "round_robin {}",
      {MakeTarget("10.0.0.1:80", 10, "za"), MakeTarget("10.0.0.2:80"), MakeTarget("10.0.0.3:80")});
  auto replaced = ReplaceTargets(name, {MakeTarget("10.0.0.9:80", 5), MakeTarget("10.0.0.3:80"),
                                        MakeTarget("10.0.0.8:80"), MakeTarget("10.0.0.1:80", 70)});
  ASSERT_OK(replaced.status);
  auto list = ListTargets(name);
  ASSERT_OK(list.status);
  EXPECT_THAT(Addresses(list.value),
              ElementsAre("10.0.0.1:80", "10.0.0.3:80", "10.0.0.9:80", "10.0.0.8:80"));
  ASSERT_EQ(replaced.value.targets_size(), list.value.targets_size());
  for (int i = 0; i < list.value.targets_size(); ++i) {
    EXPECT_TRUE(ProtoEqual(replaced.value.targets(i), list.value.targets(i)));
  }
  ASSERT_EQ(list.value.targets_size(), 4);
  EXPECT_EQ(list.value.targets(0).weight(), 70u);
  EXPECT_EQ(list.value.targets(2).weight(), 5u);
  EXPECT_EQ(list.value.targets(3).weight(), 100u) << "new target gets the default weight";

  // An empty set is refused unless allow_empty says it is meant, and then
  // removes every target.
  EXPECT_CODE(ReplaceTargets(name, {}).status, INVALID_ARGUMENT);
  EXPECT_EQ(ListTargets(name).value.targets_size(), 4);
  v1::ReplaceTargetsRequest empty;
  empty.set_upstream(name);
  empty.set_allow_empty(true);
  v1::ReplaceTargetsResponse emptied;
  ASSERT_OK(admin_->ReplaceTargets(Ctx().get(), empty, &emptied));
  list = ListTargets(name);
  ASSERT_OK(list.status);
  EXPECT_EQ(list.value.targets_size(), 0);
  EXPECT_CODE(Pick(name).status, UNAVAILABLE);
}

TEST_F(AdminTest, ReplaceTargetsKeepsActiveCounts) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  v1::PickRequest request;
  request.set_upstream(name);
  request.add_exclude("10.0.0.2:80");
  auto pick = Pick(request);
  ASSERT_OK(pick.status);
  ASSERT_EQ(pick.value.target(), "10.0.0.1:80");
  ASSERT_OK(ReplaceTargets(name, {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.3:80")}).status);
  auto active = ActiveByTarget(name);
  EXPECT_EQ(active["10.0.0.1:80"], 1u) << "a kept target keeps its counter";
  auto release = Release(name, pick.value.lease_id());
  ASSERT_OK(release.status);
  EXPECT_EQ(release.value.state(), v1::ReleaseResponse::RELEASED);
  EXPECT_EQ(TotalActive(name), 0);
}

TEST_F(AdminTest, SetTargetHealthUnhealthyIsNotPickedAndClearRestores) {
  const std::string name = MakeUpstream(
      "round_robin {}",
      {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"), MakeTarget("10.0.0.3:80")});
  auto set = SetTargetHealth(name, "10.0.0.2:80", SetTargetHealthRequest::UNHEALTHY);
  ASSERT_OK(set.status);
  EXPECT_EQ(set.value.target().address(), "10.0.0.2:80");
  EXPECT_FALSE(set.value.target().healthy());
  EXPECT_THAT(set.value.target().reasons(), Contains(TargetHealth::MANUAL));

  v1::PickRequest request;
  request.set_upstream(name);
  auto counts = PickAndReleaseCounts(request, 30);
  EXPECT_EQ(counts.count("10.0.0.2:80"), 0u) << ::testing::PrintToString(counts);
  EXPECT_GT(counts["10.0.0.1:80"], 0);
  EXPECT_GT(counts["10.0.0.3:80"], 0);

  auto health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  EXPECT_EQ(health.value.healthy_targets(), 2u);
  EXPECT_EQ(health.value.total_targets(), 3u);
  EXPECT_FALSE(health.value.panic());

  set = SetTargetHealth(name, "10.0.0.2:80", SetTargetHealthRequest::CLEAR);
  ASSERT_OK(set.status);
  EXPECT_TRUE(set.value.target().healthy());
  EXPECT_THAT(set.value.target().reasons(), ::testing::Not(Contains(TargetHealth::MANUAL)));
  counts = PickAndReleaseCounts(request, 30);
  EXPECT_EQ(counts["10.0.0.2:80"], 10) << ::testing::PrintToString(counts);
  health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  EXPECT_EQ(health.value.healthy_targets(), 3u);
}

TEST_F(AdminTest, SetTargetHealthHealthyOverrideAndErrors) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto set = SetTargetHealth(name, "10.0.0.1:80", SetTargetHealthRequest::HEALTHY);
  ASSERT_OK(set.status);
  EXPECT_TRUE(set.value.target().healthy());
  EXPECT_THAT(set.value.target().reasons(), Contains(TargetHealth::MANUAL));

  const std::string before = StoredState(name);
  auto bad = SetTargetHealth(name, "10.0.0.1:80", SetTargetHealthRequest::OVERRIDE_UNSPECIFIED);
  EXPECT_CODE(bad.status, INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("override"));
  bad = SetTargetHealth(name, "10.0.0.1:80", static_cast<SetTargetHealthRequest::Override>(9));
  EXPECT_CODE(bad.status, INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("override"));
  bad = SetTargetHealth(name, "10.0.0.7:80", SetTargetHealthRequest::UNHEALTHY);
  EXPECT_CODE(bad.status, NOT_FOUND);
  bad = SetTargetHealth(NewName("missing"), "10.0.0.1:80", SetTargetHealthRequest::UNHEALTHY);
  EXPECT_CODE(bad.status, NOT_FOUND);
  EXPECT_EQ(StoredState(name), before);
}

TEST_F(AdminTest, GetUpstreamHealthReportsCountsAndActiveRequests) {
  const std::string name = MakeUpstream("round_robin {}",
                                        {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"),
                                         MakeTarget("10.0.0.3:80", 0), MakeTarget("10.0.0.4:80")},
                                        "panic_threshold_percent: 0");
  ASSERT_OK(SetTargetHealth(name, "10.0.0.4:80", SetTargetHealthRequest::UNHEALTHY).status);
  std::vector<uint64_t> leases;
  for (int i = 0; i < 3; ++i) {
    auto pick = Pick(name);
    ASSERT_OK(pick.status);
    leases.push_back(pick.value.lease_id());
  }
  auto health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  const auto& h = health.value;
  EXPECT_EQ(h.name(), name);
  EXPECT_FALSE(h.panic());
  EXPECT_EQ(h.total_targets(), 4u) << "weight-0 targets are counted in total_targets";
  EXPECT_EQ(h.healthy_targets(), 2u) << "weight 0 and UNHEALTHY targets are not pickable";
  ASSERT_EQ(h.targets_size(), 4);
  EXPECT_EQ(h.targets(0).address(), "10.0.0.1:80");
  EXPECT_EQ(h.targets(1).address(), "10.0.0.2:80");
  EXPECT_EQ(h.targets(2).address(), "10.0.0.3:80");
  EXPECT_EQ(h.targets(3).address(), "10.0.0.4:80");
  EXPECT_TRUE(h.targets(0).healthy());
  EXPECT_TRUE(h.targets(0).reasons().empty());
  EXPECT_FALSE(h.targets(2).healthy());
  EXPECT_THAT(h.targets(2).reasons(), Contains(TargetHealth::WEIGHT_ZERO));
  EXPECT_FALSE(h.targets(3).healthy());
  EXPECT_THAT(h.targets(3).reasons(), Contains(TargetHealth::MANUAL));
  // Round robin over the two healthy targets: 2 + 1.
  EXPECT_EQ(h.targets(0).active_requests() + h.targets(1).active_requests(), 3u);
  EXPECT_GE(h.targets(0).active_requests(), 1u);
  EXPECT_GE(h.targets(1).active_requests(), 1u);
  EXPECT_EQ(h.targets(2).active_requests(), 0u);
  EXPECT_EQ(h.targets(3).active_requests(), 0u);
  for (uint64_t lease : leases) ASSERT_OK(Release(name, lease).status);
  EXPECT_EQ(TotalActive(name), 0);

  EXPECT_CODE(GetUpstreamHealth(NewName("missing")).status, NOT_FOUND);
}

TEST_F(AdminTest, PanicWhenHealthyShareBelowThreshold) {
  // 1 of 4 healthy (25%) < 50%: panic, picks spread over all targets.
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"),
                                      MakeTarget("10.0.0.3:80"), MakeTarget("10.0.0.4:80")});
  for (const char* a : {"10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"}) {
    ASSERT_OK(SetTargetHealth(name, a, SetTargetHealthRequest::UNHEALTHY).status);
  }
  auto health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  EXPECT_TRUE(health.value.panic());
  EXPECT_EQ(health.value.healthy_targets(), 1u);
  v1::PickRequest request;
  request.set_upstream(name);
  auto counts = PickAndReleaseCounts(request, 40);
  EXPECT_EQ(counts.size(), 4u) << "in panic every target is picked: "
                               << ::testing::PrintToString(counts);

  // Panic threshold 0: never panic, UNAVAILABLE when none is healthy.
  v1::Upstream update;
  update.set_name(name);
  update.set_panic_threshold_percent(0);
  ASSERT_OK(UpdateUpstream(update).status);
  ASSERT_OK(SetTargetHealth(name, "10.0.0.1:80", SetTargetHealthRequest::UNHEALTHY).status);
  health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  EXPECT_FALSE(health.value.panic());
  EXPECT_CODE(Pick(name).status, UNAVAILABLE);
}

// PreviewChange and ExplainPick list at most 1000 entries of a kind, keep
// the ones that matter (the most likely candidates, the targets whose share
// changes), and count the rest, so their answers fit a default client at
// any upstream size.
TEST_F(AdminTest, PreviewAndExplainListAtMostAThousandAndCountTheRest) {
  std::vector<v1::Target> targets;
  for (int i = 0; i < 1500; ++i) {
    targets.push_back(
        MakeTarget(absl::StrCat("10.1.", i / 250, ".", i % 250 + 1, ":80"), i < 10 ? 1000 : 1));
  }
  const std::string name = MakeUpstream("random {}", {});
  ASSERT_OK(ReplaceTargets(name, targets).status);

  v1::PickRequest pick;
  pick.set_upstream(name);
  v1::PickExplanation why;
  ASSERT_OK(admin_->ExplainPick(Ctx().get(), pick, &why));
  EXPECT_EQ(why.candidates_size(), 1000);
  EXPECT_EQ(why.candidates_not_listed(), 500u);
  std::set<std::string> listed;
  for (const auto& c : why.candidates()) listed.insert(c.address());
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(listed.count(targets[i].address())) << "the heaviest are listed: " << i;
  }

  // Replace 1500 targets with 1500 new ones, keeping the first: 2999
  // targets are added or removed, one changes its share.
  std::vector<v1::Target> next = {targets[0]};
  for (int i = 1; i < 1500; ++i) {
    next.push_back(MakeTarget(absl::StrCat("10.2.", i / 250, ".", i % 250 + 1, ":80")));
  }
  v1::PreviewChangeRequest request;
  auto* replace = request.add_changes()->mutable_replace_targets();
  replace->set_upstream(name);
  for (const v1::Target& t : next) *replace->add_targets() = t;
  v1::PreviewChangeResponse preview;
  ASSERT_OK(admin_->PreviewChange(Ctx().get(), request, &preview));
  EXPECT_EQ(preview.targets_size(), 1000);
  EXPECT_EQ(preview.targets_not_listed(), 1999u);
  for (const v1::TargetShare& t : preview.targets()) {
    EXPECT_NE(t.present_before(), t.present_after()) << "added or removed first: " << t.address();
  }
}

}  // namespace
}  // namespace picker::testing
