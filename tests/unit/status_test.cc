// The status page's data: rates from counters, the hash-space shares of
// rings and Maglev tables (against where keys really go), and /status.json
// over both planes in one process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "server/core/strategy/maglev.h"
#include "server/core/strategy/ring_hash.h"
#include "server/http/router.h"
#include "server/status/page.h"
#include "server/status/rates.h"
#include "server/status/report.h"
#include "tests/support/local_picker.h"
#include "tests/unit/strategy_test_util.h"

namespace picker {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

TEST(RateTrackerTest, RatesOverAtLeastTheMinimumInterval) {
  status::RateTracker rates(std::chrono::seconds(1), std::chrono::minutes(10));
  const auto t0 = status::RateTracker::Clock::time_point() + std::chrono::hours(1);
  EXPECT_EQ(rates.Rate("a", 100, t0), std::nullopt);
  EXPECT_EQ(rates.Rate("a", 150, t0 + milliseconds(500)), std::nullopt);  // Too soon.
  EXPECT_DOUBLE_EQ(*rates.Rate("a", 300, t0 + milliseconds(2000)), 100.0);
  // Within the interval the last rate is given again.
  EXPECT_DOUBLE_EQ(*rates.Rate("a", 1000, t0 + milliseconds(2100)), 100.0);
  EXPECT_DOUBLE_EQ(*rates.Rate("a", 400, t0 + milliseconds(3000)), 100.0);
  // A counter that went down (the upstream came back) starts over.
  EXPECT_EQ(rates.Rate("a", 5, t0 + milliseconds(4000)), std::nullopt);
  EXPECT_EQ(rates.Rate("b", 0, t0), std::nullopt);
  EXPECT_EQ(rates.size(), 2u);
  // Samples not asked for in 10 minutes are dropped.
  rates.Rate("a", 10, t0 + std::chrono::minutes(12));
  EXPECT_EQ(rates.size(), 1u);
}

// Shares of the hash space against the hosts that random keys reach.
void ExpectSharesMatchKeys(const std::vector<double>& shares, size_t hosts,
                           const std::function<uint32_t(uint64_t)>& choose) {
  ASSERT_EQ(shares.size(), hosts);
  double sum = 0;
  for (double s : shares) sum += s;
  EXPECT_NEAR(sum, 1.0, 1e-9);
  std::mt19937_64 random(7);
  constexpr int kKeys = 200000;
  std::vector<int> hits(hosts, 0);
  for (int i = 0; i < kKeys; ++i) ++hits[choose(random())];
  for (size_t h = 0; h < hosts; ++h) {
    // 200000 keys: a share's standard error is below 0.0012.
    EXPECT_NEAR(hits[h] * 1.0 / kKeys, shares[h], 0.006) << "host " << h;
  }
}

TEST(HashSharesTest, RingSharesAreWhereKeysGo) {
  core::testing::TestHosts hosts({"a:80", "b:80", "c:80", "d:80"}, {100, 300, 50, 50});
  core::RingHashStrategy ring(hosts.hosts(), 64, 1024, core::HashFunction::kXxHash, 0);
  ExpectSharesMatchKeys(ring.HashShares(), 4,
                        [&](uint64_t h) { return ring.ring().ChooseHost(h, 0); });
  // Few entries: shares are far from the weights, and still exact.
  core::RingHashStrategy small(hosts.hosts(), 4, 8, core::HashFunction::kXxHash, 0);
  ExpectSharesMatchKeys(small.HashShares(), 4,
                        [&](uint64_t h) { return small.ring().ChooseHost(h, 0); });
  core::testing::TestHosts one({"a:80"});
  EXPECT_EQ(core::RingHashStrategy(one.hosts(), 8, 8, core::HashFunction::kXxHash, 0).HashShares(),
            std::vector<double>{1.0});
}

TEST(HashSharesTest, MaglevSharesAreSlotsOverTableSize) {
  core::testing::TestHosts hosts({"a:80", "b:80", "c:80"}, {1, 2, 1});
  core::MaglevStrategy maglev(hosts.hosts(), 65537, 0);
  ExpectSharesMatchKeys(maglev.HashShares(), 3,
                        [&](uint64_t h) { return maglev.table().ChooseHost(h, 0); });
  core::testing::TestHosts one({"a:80"});
  EXPECT_EQ(core::MaglevStrategy(one.hosts(), 13, 0).HashShares(), std::vector<double>{1.0});
}

class StatusReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core::UpstreamConfig config;
    config.name = "users";
    config.load_balancer.kind = core::StrategyKind::kMaglev;
    ASSERT_TRUE(picker_.CreateUpstream(config).ok());
    for (const char* address : {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}) {
      ASSERT_TRUE(picker_.PutTarget("users", {.address = address}).ok());
    }
    ASSERT_TRUE(
        picker_.SetTargetHealth("users", "10.0.0.3:80", core::HealthOverride::kUnhealthy).ok());
    config.name = "orders";
    config.load_balancer.kind = core::StrategyKind::kRoundRobin;
    ASSERT_TRUE(picker_.CreateUpstream(config).ok());
  }

  // GET `target` through the status routes, with the token.
  http::Response Get(const std::string& path, const std::string& query = "") {
    http::Request request;
    request.method = "GET";
    request.path = path;
    request.query = http::ParseForm(query);
    request.headers["authorization"] = "Bearer t0ken";
    return router_.Handle(request);
  }

  core::MemoryStore store_;
  testing::LocalPicker picker_{store_};
  status::StatusReport report_{picker_.snapshots(), {.version = "9.9.9"}};
  http::TokenGuard guard_{"t0ken"};
  http::Router router_ = [this] {
    http::Router router;
    status::AddStatusRoutes(router, report_, guard_);
    return router;
  }();
};

TEST_F(StatusReportTest, ReportsTargetsSharesAndPicks) {
  for (int i = 0; i < 10; ++i) {
    auto pick = picker_.Pick({.upstream = "users"});
    ASSERT_TRUE(pick.ok());
  }
  // "orders" has no target: 0% healthy, so in panic (as Envoy counts it).
  http::Response response = Get("/status.json", "filter=USE");
  ASSERT_EQ(response.status, 200) << response.body;
  const std::string& json = response.body;
  EXPECT_THAT(json, HasSubstr(R"("version":"9.9.9")"));
  EXPECT_THAT(json, HasSubstr(R"("replica":null)"));
  EXPECT_THAT(json, HasSubstr(R"("upstreams":2,"upstreams_in_panic":1,"targets":3,)"
                              R"("healthy_targets":2,"active_requests":10,"picks_total":10,)"));
  EXPECT_THAT(json, HasSubstr(R"("name":"users","strategy":"maglev","config":{"load_balancer":)"
                              R"({"maglev":{"table_size":"65537"}})"));
  EXPECT_THAT(json, ::testing::Not(HasSubstr(R"("name":"orders")")));
  EXPECT_THAT(json, HasSubstr(R"("address":"10.0.0.3:80","zone":"","weight":100,)"
                              R"("state":"unhealthy","healthy":false,"reasons":["manual"],)"
                              R"("health_override":"unhealthy")"));
  EXPECT_THAT(json, HasSubstr(R"("weight_share":0,"hash_share":0,"slow_start_factor":null})"));
  EXPECT_THAT(json,
              ::testing::ContainsRegex(R"("weight_share":0\.5,"hash_share":0\.(5|49)[0-9]*,)"));
  EXPECT_THAT(json, HasSubstr(R"("page":{"filter":"USE","offset":0,"size":50,"matched":1,)"
                              R"("next_offset":null})"));
  // The per-target pick counter counts each target's picks.
  uint64_t picks = 0;
  for (const auto& t : picker_.snapshots().Find("users")->targets()) picks += t.live->picks.load();
  EXPECT_EQ(picks, 10u);
}

TEST_F(StatusReportTest, PagesAndRefusals) {
  const std::string first = Get("/status.json", "size=1").body;
  EXPECT_THAT(first, HasSubstr(R"("name":"orders")"));
  EXPECT_THAT(first, HasSubstr(R"("matched":2,"next_offset":1})"));
  EXPECT_THAT(Get("/status.json", "size=1&offset=1").body, HasSubstr(R"("name":"users")"));
  EXPECT_EQ(Get("/status.json", "size=501").status, 400);
  EXPECT_EQ(Get("/status.json", "offset=-1").body,
            R"({"message":"offset: must be a whole number from 0 to 4294967295, got \"-1\""})");
  http::Request anonymous;
  anonymous.method = "GET";
  anonymous.path = "/status.json";
  EXPECT_EQ(router_.Handle(anonymous).status, 401);
  anonymous.path = "/status";
  http::Response login = router_.Handle(anonymous);
  EXPECT_EQ(login.status, 401);
  EXPECT_THAT(login.body, HasSubstr(R"(<form method="post" action="/status/login">)"));
  EXPECT_THAT(Get("/status").body, HasSubstr("<title>picker status</title>"));
}

TEST_F(StatusReportTest, LoginSetsTheSessionCookie) {
  http::Request login;
  login.method = "POST";
  login.path = "/status/login";
  login.body = "token=wrong";
  EXPECT_EQ(router_.Handle(login).status, 401);
  login.body = "token=t0ken";
  http::Response ok = router_.Handle(login);
  EXPECT_EQ(ok.status, 303);
  EXPECT_THAT(ok.headers, ::testing::Contains(std::pair<std::string, std::string>(
                              "Set-Cookie", guard_.SessionCookie())));
}

}  // namespace
}  // namespace picker
