// Health and load rules through the real server: passive ejection and
// return, the ejection cap, circuit breaking, locality with client_zone, and
// generated cookies for cookie hashing.
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

class HealthRulesTest : public PickerServerTest {
 protected:
  v1::TargetHealth Health(const std::string& upstream, const std::string& address) {
    auto health = GetUpstreamHealth(upstream);
    EXPECT_TRUE(health.ok()) << StatusString(health.status);
    for (const v1::TargetHealth& t : health.value.targets()) {
      if (t.address() == address) return t;
    }
    ADD_FAILURE() << "no target " << address;
    return v1::TargetHealth();
  }

  // The target's health once an ejection shows. A failed Release marks the
  // ejection at once, but the snapshot that health reads and picks use is
  // rebuilt by the maintenance thread, a moment later (longer on a busy
  // machine).
  v1::TargetHealth UntilEjected(const std::string& upstream, const std::string& address) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    v1::TargetHealth health = Health(upstream, address);
    while (health.healthy() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      health = Health(upstream, address);
    }
    return health;
  }

  // Picks until `address` comes up, then releases that lease with `outcome`;
  // other leases are released as successes.
  void ReleaseOn(const std::string& upstream, const std::string& address,
                 v1::ReleaseRequest::Outcome outcome) {
    for (int i = 0; i < 20; ++i) {
      auto pick = Pick(upstream);
      ASSERT_TRUE(pick.ok()) << StatusString(pick.status);
      const bool hit = pick.value.target() == address;
      ASSERT_TRUE(
          Release(upstream, pick.value.lease_id(), hit ? outcome : v1::ReleaseRequest::SUCCESS)
              .ok());
      if (hit) return;
    }
    FAIL() << address << " never picked";
  }

  std::set<std::string> Picked(const v1::PickRequest& request, int n) {
    std::set<std::string> seen;
    for (const auto& [target, count] : PickAndReleaseCounts(request, n)) seen.insert(target);
    return seen;
  }

  static v1::PickRequest For(const std::string& upstream) {
    v1::PickRequest request;
    request.set_upstream(upstream);
    return request;
  }
};

TEST_F(HealthRulesTest, PassiveEjectionReturnsByItselfAndGrowsWithEachEjection) {
  const std::string a = "10.9.0.1:80", b = "10.9.0.2:80";
  const std::string name = MakeUpstream(
      "round_robin {}", {MakeTarget(a), MakeTarget(b)},
      "health_checks { passive { consecutive_failures: 2 base_ejection_time { nanos: 600000000 } "
      "max_ejection_time { seconds: 5 } max_ejection_percent: 100 } }");
  // A success between failures resets the count: no ejection.
  ReleaseOn(name, a, v1::ReleaseRequest::FAILURE);
  ReleaseOn(name, a, v1::ReleaseRequest::SUCCESS);
  ReleaseOn(name, a, v1::ReleaseRequest::FAILURE);
  EXPECT_TRUE(Health(name, a).healthy());

  ReleaseOn(name, a, v1::ReleaseRequest::TIMEOUT);  // Second in a row: ejected.
  v1::TargetHealth ejected = UntilEjected(name, a);
  EXPECT_FALSE(ejected.healthy());
  ASSERT_EQ(ejected.reasons_size(), 1);
  EXPECT_EQ(ejected.reasons(0), v1::TargetHealth::PASSIVE);
  EXPECT_EQ(ejected.ejections(), 1u);
  ASSERT_TRUE(ejected.has_returns_at());
  EXPECT_EQ(Picked(For(name), 10), std::set<std::string>{b});

  // Back by itself after base_ejection_time.
  const auto first_ejection = std::chrono::steady_clock::now();
  while (!Health(name, a).healthy() &&
         std::chrono::steady_clock::now() - first_ejection < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(Health(name, a).healthy()) << "an ejected target never returned";
  EXPECT_EQ(Picked(For(name), 10), (std::set<std::string>{a, b}));

  // The second ejection lasts twice as long (2 x 600 ms).
  ReleaseOn(name, a, v1::ReleaseRequest::FAILURE);
  ReleaseOn(name, a, v1::ReleaseRequest::FAILURE);
  const auto second = std::chrono::steady_clock::now();
  EXPECT_EQ(UntilEjected(name, a).ejections(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_FALSE(Health(name, a).healthy()) << "second ejection not longer than the first";
  while (!Health(name, a).healthy() &&
         std::chrono::steady_clock::now() - second < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(Health(name, a).healthy());

  std::string error;
  auto metrics = server()->GetMetrics(&error);
  ASSERT_TRUE(metrics) << error;
  EXPECT_NE(metrics->find("picker_ejections_total{upstream=\"" + name + "\"} 2"),
            std::string::npos);
}

TEST_F(HealthRulesTest, EjectionPercentCapLeavesTheRestInRotation) {
  const std::string a = "10.9.1.1:80", b = "10.9.1.2:80", c = "10.9.1.3:80";
  const std::string name = MakeUpstream(
      "round_robin {}", {MakeTarget(a), MakeTarget(b), MakeTarget(c)},
      "health_checks { passive { consecutive_failures: 1 base_ejection_time { seconds: 30 } "
      "max_ejection_percent: 10 } }");
  // 10% of 3 targets rounds to none, but one target may always be ejected.
  ReleaseOn(name, a, v1::ReleaseRequest::FAILURE);
  EXPECT_FALSE(UntilEjected(name, a).healthy());
  ReleaseOn(name, b, v1::ReleaseRequest::FAILURE);
  // Long enough for a rebuild that would eject b (a's took less).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(Health(name, b).healthy()) << "ejected beyond max_ejection_percent";
}

TEST_F(HealthRulesTest, CircuitBreakers) {
  const std::string a = "10.9.2.1:80", b = "10.9.2.2:80";
  const std::string capped =
      MakeUpstream("round_robin {}", {MakeTarget(a), MakeTarget(b)}, "max_active_requests: 2");
  auto first = Pick(capped);
  auto second = Pick(capped);
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = Pick(capped);
  EXPECT_CODE(third.status, RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.status.error_message(), ::testing::HasSubstr("max_active_requests"));
  ASSERT_TRUE(Release(capped, first.value.lease_id()).ok());
  auto again = Pick(capped);
  EXPECT_TRUE(again.ok()) << "a released slot was not reusable";
  std::string error;
  auto metrics = server()->GetMetrics(&error);
  ASSERT_TRUE(metrics) << error;
  bool counted = false;
  std::istringstream lines(*metrics);
  for (std::string line; std::getline(lines, line);) {
    counted |= line.rfind("picker_picks_total{", 0) == 0 &&
               line.find("upstream=\"" + capped + "\"") != std::string::npos &&
               line.find("result=\"overloaded\"") != std::string::npos &&
               line.substr(line.rfind(' ') + 1) == "1";
  }
  EXPECT_TRUE(counted) << "the refused pick is not counted as overloaded";

  // Per target: a target at its cap is skipped; when all are, RESOURCE_EXHAUSTED.
  const std::string per_target = MakeUpstream("least_request {}", {MakeTarget(a), MakeTarget(b)},
                                              "max_active_requests_per_target: 1");
  auto p1 = Pick(per_target);
  auto p2 = Pick(per_target);
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_NE(p1.value.target(), p2.value.target());
  EXPECT_CODE(Pick(per_target).status, RESOURCE_EXHAUSTED);
}

TEST_F(HealthRulesTest, ClientZoneKeepsPicksLocalUntilItsHealthDrops) {
  std::vector<v1::Target> targets;
  for (int i = 1; i <= 4; ++i)
    targets.push_back(MakeTarget("10.9.3." + std::to_string(i) + ":80", std::nullopt, "zone-a"));
  for (int i = 1; i <= 4; ++i)
    targets.push_back(MakeTarget("10.9.4." + std::to_string(i) + ":80", std::nullopt, "zone-b"));
  const std::string name = MakeUpstream("random {}", targets);
  v1::PickRequest local = For(name);
  local.set_client_zone("zone-a");
  auto zone_a_share = [&] {
    int in_a = 0;
    for (const auto& [target, count] : PickAndReleaseCounts(local, 400)) {
      if (target.rfind("10.9.3.", 0) == 0) in_a += count;
    }
    return in_a / 400.0;
  };
  EXPECT_EQ(zone_a_share(), 1.0);
  // 3 of 4 healthy: 1.4 x 75% >= 100%, still all local.
  ASSERT_TRUE(SetTargetHealth(name, "10.9.3.1:80", v1::SetTargetHealthRequest::UNHEALTHY).ok());
  EXPECT_EQ(zone_a_share(), 1.0);
  // 2 of 4: the local zone takes 70%, the rest spills to zone-b.
  ASSERT_TRUE(SetTargetHealth(name, "10.9.3.2:80", v1::SetTargetHealthRequest::UNHEALTHY).ok());
  EXPECT_NEAR(zone_a_share(), 0.70, 0.08);
  // Turned off: the client's zone no longer matters.
  v1::Upstream upstream = GetUpstream(name).value;
  upstream.mutable_locality_awareness()->set_disabled(true);
  ASSERT_TRUE(UpdateUpstream(upstream).ok());
  EXPECT_NEAR(zone_a_share(), 2.0 / 6, 0.08);
}

TEST_F(HealthRulesTest, CookiePolicyGeneratesACookieThatKeepsTheTarget) {
  std::vector<v1::Target> targets;
  for (int i = 1; i <= 5; ++i) targets.push_back(MakeTarget("10.9.5." + std::to_string(i) + ":80"));
  const std::string name = MakeUpstream(
      "ring_hash { hash_policies { cookie { name: \"session\" ttl { seconds: 3600 } "
      "path: \"/\" } } }",
      targets);
  v1::PickRequest request = For(name);
  request.mutable_attributes()->set_source_ip("192.0.2.10");
  auto first = Pick(request);
  ASSERT_TRUE(first.ok()) << StatusString(first.status);
  ASSERT_EQ(first.value.set_cookies_size(), 1);
  const v1::SetCookie& cookie = first.value.set_cookies(0);
  EXPECT_EQ(cookie.name(), "session");
  EXPECT_EQ(cookie.path(), "/");
  EXPECT_EQ(Millis(cookie.ttl()), 3600000);
  ASSERT_TRUE(Release(name, first.value.lease_id()).ok());
  // The client sends the cookie back: same target, and no new cookie.
  (*request.mutable_attributes()->mutable_cookies())["session"] = cookie.value();
  for (int i = 0; i < 5; ++i) {
    auto next = Pick(request);
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next.value.target(), first.value.target());
    EXPECT_EQ(next.value.set_cookies_size(), 0);
    ASSERT_TRUE(Release(name, next.value.lease_id()).ok());
  }
}

}  // namespace
}  // namespace picker::testing
