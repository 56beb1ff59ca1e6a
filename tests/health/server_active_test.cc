// Active health checks through the real picker-server binary: an upstream
// configured over the Admin API probes targets the test serves on loopback,
// a target that stops answering leaves rotation and comes back when it
// answers again, and the checks show in GetUpstreamHealth and /metrics.
#include <chrono>
#include <map>
#include <set>
#include <string>

#include "tests/health/test_servers.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using health::testing::HttpServer;
using health::testing::TcpListener;
using health::testing::WaitFor;

class ServerActiveHealthTest : public PickerServerTest {
 protected:
  // The target's entry in GetUpstreamHealth, or an empty one.
  v1::TargetHealth Health(const std::string& upstream, const std::string& address) {
    auto health = GetUpstreamHealth(upstream);
    if (health.ok()) {
      for (const v1::TargetHealth& t : health.value.targets()) {
        if (t.address() == address) return t;
      }
    }
    return v1::TargetHealth();
  }

  bool HasReason(const v1::TargetHealth& t, v1::TargetHealth::Reason reason) {
    for (int r : t.reasons()) {
      if (r == reason) return true;
    }
    return false;
  }

  std::set<std::string> PickedTargets(const std::string& upstream, int n) {
    std::set<std::string> seen;
    for (const auto& [target, count] : PickAndReleaseCounts(PickRequestFor(upstream), n)) {
      seen.insert(target);
    }
    return seen;
  }

  static v1::PickRequest PickRequestFor(const std::string& upstream) {
    v1::PickRequest request;
    request.set_upstream(upstream);
    return request;
  }

  // The value of one series in the server's /metrics text, or -1.
  double MetricValue(const std::string& series) {
    std::string error;
    auto text = server()->GetMetrics(&error);
    if (!text) return -1;
    size_t at = text->find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text->substr(at + series.size() + 2));
  }
};

TEST_F(ServerActiveHealthTest, TcpCheckRemovesAClosedTargetAndReturnsIt) {
  TcpListener steady;
  TcpListener flapping;
  const std::string name = MakeUpstream(
      "", {MakeTarget(steady.address()), MakeTarget(flapping.address())},
      "panic_threshold_percent: 0 health_checks { active { type: TCP interval { nanos: 50000000 } "
      "timeout { nanos: 500000000 } healthy_successes: 2 unhealthy_failures: 2 } }");
  ASSERT_TRUE(WaitFor([&] { return steady.accepts() >= 2 && flapping.accepts() >= 2; }))
      << "the server never probed the targets";
  EXPECT_EQ(PickedTargets(name, 20), (std::set<std::string>{steady.address(), flapping.address()}));

  flapping.Close();
  ASSERT_TRUE(WaitFor([&] { return !Health(name, flapping.address()).healthy(); }))
      << "a target that refuses connections stayed healthy";
  EXPECT_TRUE(HasReason(Health(name, flapping.address()), v1::TargetHealth::ACTIVE));
  EXPECT_TRUE(Health(name, steady.address()).healthy());
  EXPECT_EQ(PickedTargets(name, 20), (std::set<std::string>{steady.address()}));

  flapping.Open();
  ASSERT_TRUE(WaitFor([&] { return Health(name, flapping.address()).healthy(); }))
      << "the target did not come back after it listened again";
  EXPECT_FALSE(HasReason(Health(name, flapping.address()), v1::TargetHealth::ACTIVE));
  EXPECT_EQ(PickedTargets(name, 20), (std::set<std::string>{steady.address(), flapping.address()}));

  const std::string labels = "{upstream=\"" + name + "\"";
  EXPECT_GT(MetricValue("picker_health_checks_total" + labels + ",result=\"success\"}"), 0);
  EXPECT_GT(MetricValue("picker_health_checks_total" + labels + ",result=\"failure\"}"), 0);
  EXPECT_EQ(MetricValue("picker_health_check_transitions_total" + labels + ",to=\"unhealthy\"}"),
            1);
  EXPECT_EQ(MetricValue("picker_health_check_transitions_total" + labels + ",to=\"healthy\"}"), 1);
  EXPECT_EQ(MetricValue("picker_health_check_unhealthy_targets" + labels + "}"), 0);
}

TEST_F(ServerActiveHealthTest, HttpCheckFollowsTheStatusAndAManualOverrideWins) {
  HttpServer good;
  HttpServer bad;
  ASSERT_TRUE(good.ok() && bad.ok());
  const std::string name =
      MakeUpstream("", {MakeTarget(good.address()), MakeTarget(bad.address())},
                   "panic_threshold_percent: 0 health_checks { active { type: HTTP http_path: "
                   "\"/healthz\" interval { nanos: 50000000 } "
                   "timeout { nanos: 500000000 } healthy_successes: 1 unhealthy_failures: 1 } }");
  bad.set_status(503);
  ASSERT_TRUE(WaitFor([&] { return !Health(name, bad.address()).healthy(); }));
  EXPECT_EQ(good.last_path(), "/healthz");
  EXPECT_TRUE(Health(name, good.address()).healthy());

  // An operator's HEALTHY override wins over the failing check...
  ASSERT_TRUE(SetTargetHealth(name, bad.address(), v1::SetTargetHealthRequest::HEALTHY).ok());
  EXPECT_TRUE(Health(name, bad.address()).healthy());
  EXPECT_EQ(PickedTargets(name, 20).count(bad.address()), 1u);
  // ...until it is cleared: the check's verdict, kept current, applies again.
  ASSERT_TRUE(SetTargetHealth(name, bad.address(), v1::SetTargetHealthRequest::CLEAR).ok());
  EXPECT_FALSE(Health(name, bad.address()).healthy());
  EXPECT_EQ(PickedTargets(name, 20), (std::set<std::string>{good.address()}));

  // Turning the checks off returns the target to rotation.
  v1::Upstream upstream = GetUpstream(name).value;
  upstream.mutable_health_checks()->clear_active();
  ASSERT_TRUE(UpdateUpstream(upstream).ok());
  ASSERT_TRUE(WaitFor([&] { return Health(name, bad.address()).healthy(); }));
}

}  // namespace
}  // namespace picker::testing
