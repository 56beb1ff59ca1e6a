// picker's own strategies and slow start through the real server: the
// options as GetUpstream answers them (defaults filled in), their errors,
// a target's slow-start factor in GetUpstreamHealth, and load reports and
// latencies given to Release.
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::testing::HasSubstr;

class BalancingTest : public PickerServerTest {};

TEST_F(BalancingTest, PeakEwmaDefaultsFilledAndOptionsKept) {
  const std::string name = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + name + "' load_balancer { peak_ewma {} }").status);
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  const v1::PeakEwma& p = got.value.load_balancer().peak_ewma();
  EXPECT_EQ(p.choice_count(), 2u) << got.value.DebugString();
  EXPECT_EQ(Millis(p.decay_time()), 10000);
  EXPECT_EQ(Millis(p.failure_penalty()), 1000);

  const std::string kept = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + kept +
                               "' load_balancer { peak_ewma { choice_count: 3 "
                               "decay_time { nanos: 250000000 } failure_penalty { seconds: 2 } } }")
                .status);
  got = GetUpstream(kept);
  ASSERT_OK(got.status);
  EXPECT_EQ(got.value.load_balancer().peak_ewma().choice_count(), 3u);
  EXPECT_EQ(Millis(got.value.load_balancer().peak_ewma().decay_time()), 250);
  EXPECT_EQ(Millis(got.value.load_balancer().peak_ewma().failure_penalty()), 2000);
}

TEST_F(BalancingTest, WeightedRoundRobinDefaultsFilledAndZeroBlackoutKept) {
  const std::string name = NewName();
  ASSERT_OK(
      CreateUpstreamText("name: '" + name + "' load_balancer { weighted_round_robin {} }").status);
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  const v1::WeightedRoundRobin& w = got.value.load_balancer().weighted_round_robin();
  EXPECT_EQ(Millis(w.blackout_period()), 10000) << got.value.DebugString();
  EXPECT_EQ(Millis(w.weight_expiration_period()), 180000);
  EXPECT_EQ(Millis(w.weight_update_period()), 1000);
  ASSERT_TRUE(w.has_error_utilization_penalty());
  EXPECT_EQ(w.error_utilization_penalty(), 1.0);

  const std::string zero = NewName();
  ASSERT_OK(CreateUpstreamText("name: '" + zero +
                               "' load_balancer { weighted_round_robin { blackout_period {} "
                               "error_utilization_penalty: 0 } }")
                .status);
  got = GetUpstream(zero);
  ASSERT_OK(got.status);
  EXPECT_EQ(Millis(got.value.load_balancer().weighted_round_robin().blackout_period()), 0);
  EXPECT_EQ(got.value.load_balancer().weighted_round_robin().error_utilization_penalty(), 0);
}

TEST_F(BalancingTest, BadOptionsNameTheirField) {
  auto bad = CreateUpstreamText("name: '" + NewName() +
                                "' load_balancer { weighted_round_robin { weight_update_period "
                                "{ nanos: 50000000 } } }");
  EXPECT_CODE(bad.status, INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(),
              HasSubstr("upstream.load_balancer.weighted_round_robin.weight_update_period"));
  bad = CreateUpstreamText("name: '" + NewName() +
                           "' load_balancer { round_robin { slow_start_config { "
                           "slow_start_window { seconds: 1 } min_weight_percent: 150 } } }");
  EXPECT_CODE(bad.status, INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(),
              HasSubstr("upstream.load_balancer.round_robin.slow_start_config.min_weight_percent"));
  bad = CreateUpstreamText("name: '" + NewName() +
                           "' load_balancer { peak_ewma { choice_count: 1 } }");
  EXPECT_CODE(bad.status, INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(),
              HasSubstr("upstream.load_balancer.peak_ewma.choice_count"));
}

TEST_F(BalancingTest, SlowStartIsAnsweredAndShownPerTarget) {
  const std::string name = MakeUpstream(
      "round_robin { slow_start_config { slow_start_window { seconds: 600 } aggression: 2 } }", {});
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  const v1::SlowStartConfig& ss = got.value.load_balancer().round_robin().slow_start_config();
  EXPECT_EQ(Millis(ss.slow_start_window()), 600000);
  EXPECT_EQ(ss.aggression(), 2.0);
  EXPECT_EQ(ss.min_weight_percent(), 10.0);  // The default, filled in.
  v1::Target target;
  target.set_address("10.0.0.1:80");
  ASSERT_OK(PutTarget(name, target).status);
  auto health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  ASSERT_EQ(health.value.targets_size(), 1);
  ASSERT_TRUE(health.value.targets(0).has_slow_start_factor()) << health.value.DebugString();
  // Just added into a 10-minute window: the 10% floor.
  EXPECT_NEAR(health.value.targets(0).slow_start_factor(), 0.1, 1e-6);
  // Without slow start: no factor, and no slow_start_config in answers.
  const std::string plain = MakeUpstream("round_robin {}", {target});
  health = GetUpstreamHealth(plain);
  ASSERT_OK(health.status);
  EXPECT_FALSE(health.value.targets(0).has_slow_start_factor());
  EXPECT_FALSE(GetUpstream(plain).value.load_balancer().round_robin().has_slow_start_config());
}

TEST_F(BalancingTest, ReleaseTakesALoadReportAndRefusesABadOne) {
  v1::Target target;
  target.set_address("10.0.0.1:80");
  const std::string name = MakeUpstream("weighted_round_robin {}", {target});
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  v1::ReleaseRequest release;
  release.set_upstream(name);
  release.set_lease_id(pick.value.lease_id());
  release.mutable_load_report()->set_cpu_utilization(-0.5);
  v1::ReleaseResponse response;
  grpc::Status status = picker_->Release(Ctx().get(), release, &response);
  EXPECT_CODE(status, INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("load_report.cpu_utilization"));
  EXPECT_EQ(TotalActive(name), 1) << "a refused release changes nothing";
  // The bytes of an endpoint-load-metrics-bin trailer parse as the field.
  v1::OrcaLoadReport report;
  report.set_cpu_utilization(0.5);
  report.set_rps_fractional(100);
  report.mutable_named_metrics()->insert({"queue", 3});
  ASSERT_TRUE(release.mutable_load_report()->ParseFromString(report.SerializeAsString()));
  status = picker_->Release(Ctx().get(), release, &response);
  ASSERT_OK(status);
  EXPECT_EQ(response.state(), v1::ReleaseResponse::RELEASED);
}

}  // namespace
}  // namespace picker::testing
