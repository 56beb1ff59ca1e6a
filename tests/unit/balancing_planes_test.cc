// picker's own balancing through both planes: when targets enter slow start
// (added, back from an override, an ejection or an active check), the
// latencies releases report reaching PeakEwma, and load reports reaching
// WeightedRoundRobin's weights on the control plane's refresh timer.
#include <chrono>
#include <map>
#include <thread>

#include "gtest/gtest.h"
#include "server/core/strategy/weighted_round_robin.h"
#include "tests/support/local_picker.h"

namespace picker::core {
namespace {

using ::picker::testing::LocalPicker;
using ::picker::testing::Outcome;
using ::picker::testing::PickInput;
using ::picker::testing::PickOutput;

class BalancingPlanesTest : public ::testing::Test {
 protected:
  void SetUp() override { picker_ = std::make_unique<LocalPicker>(store_); }

  void Create(LoadBalancerConfig lb) {
    UpstreamConfig config;
    config.name = "u";
    config.load_balancer = lb;
    config.passive.consecutive_failures = 0;
    ASSERT_TRUE(picker_->CreateUpstream(config).ok());
  }
  void Put(const std::string& address) {
    ASSERT_TRUE(picker_->PutTarget("u", TargetPatch{.address = address}).ok());
  }
  std::optional<double> Factor(uint32_t target) {
    return picker_->Find("u")->SlowStartFactorOf(target, std::chrono::system_clock::now());
  }
  // Picks `n` times, releasing each with what `release` says; returns the
  // picks per address.
  template <typename Release>
  std::map<std::string, int> Run(int n, Release release) {
    std::map<std::string, int> counts;
    for (int i = 0; i < n; ++i) {
      PickInput input;
      input.upstream = "u";
      absl::StatusOr<PickOutput> pick = picker_->Pick(input);
      EXPECT_TRUE(pick.ok()) << pick.status();
      if (!pick.ok()) break;
      ++counts[pick->target->config.address];
      release(*pick);
    }
    return counts;
  }

  MemoryStore store_;
  std::unique_ptr<LocalPicker> picker_;
};

LoadBalancerConfig RoundRobinWithSlowStart(Millis window) {
  LoadBalancerConfig lb;
  lb.kind = StrategyKind::kRoundRobin;
  lb.slow_start.window = window;
  return lb;
}

TEST_F(BalancingPlanesTest, AnAddedTargetEntersSlowStartAndLeavesIt) {
  Create(RoundRobinWithSlowStart(Millis(600000)));
  Put("10.0.0.1:80");
  // A target added alone is in slow start too, as in Envoy.
  ASSERT_TRUE(Factor(0).has_value());
  EXPECT_NEAR(*Factor(0), 0.1, 1e-9);
  // A window that ends soon: the start stays when the configuration changes.
  UpstreamConfig config = picker_->Find("u")->config();
  config.load_balancer.slow_start.window = Millis(300);
  ASSERT_TRUE(picker_->UpdateUpstream(config).ok());
  // The control plane rebuilds when the window ends.
  for (int i = 0; i < 300 && picker_->Find("u")->slow_start_ends(); ++i) {
    std::this_thread::sleep_for(Millis(10));
  }
  EXPECT_FALSE(picker_->Find("u")->slow_start_ends().has_value());
  EXPECT_FALSE(Factor(0).has_value());
}

TEST_F(BalancingPlanesTest, AJoiningTargetsShareRampsUp) {
  Create(RoundRobinWithSlowStart(Millis(600)));
  Put("10.0.0.1:80");
  Put("10.0.0.2:80");
  std::this_thread::sleep_for(Millis(650));  // Both past their windows.
  Put("10.0.0.3:80");
  auto release = [&](const PickOutput& p) {
    ASSERT_TRUE(picker_->Release("u", p.lease_id, Outcome::kSuccess, std::nullopt).ok());
  };
  const int early = Run(300, release)["10.0.0.3:80"];
  std::this_thread::sleep_for(Millis(650));
  const int late = Run(300, release)["10.0.0.3:80"];
  // Fair is 100 of 300: far below it at first, there once the window ends.
  EXPECT_LT(early, 70);
  EXPECT_GT(late, early);
  EXPECT_NEAR(late, 100, 2);
}

TEST_F(BalancingPlanesTest, ClearingAnUnhealthyOverrideStartsSlowStartAgain) {
  Create(RoundRobinWithSlowStart(Millis(400)));
  Put("10.0.0.1:80");
  Put("10.0.0.2:80");
  for (int i = 0; i < 100 && Factor(0); ++i) std::this_thread::sleep_for(Millis(10));
  ASSERT_FALSE(Factor(0).has_value());
  ASSERT_TRUE(picker_->SetTargetHealth("u", "10.0.0.1:80", HealthOverride::kUnhealthy).ok());
  EXPECT_FALSE(Factor(0).has_value());  // Unhealthy: not in slow start.
  ASSERT_TRUE(picker_->SetTargetHealth("u", "10.0.0.1:80", HealthOverride::kNone).ok());
  EXPECT_TRUE(Factor(0).has_value());
  EXPECT_FALSE(Factor(1).has_value());
}

TEST_F(BalancingPlanesTest, PassingActiveChecksAgainStartsSlowStart) {
  Create(RoundRobinWithSlowStart(Millis(400)));
  Put("10.0.0.1:80");
  Put("10.0.0.2:80");
  for (int i = 0; i < 100 && Factor(1); ++i) std::this_thread::sleep_for(Millis(10));
  ASSERT_FALSE(Factor(1).has_value());
  // What the prober does: flip the flag, tell the control plane.
  TargetLive& live = *picker_->Find("u")->targets()[1].live;
  live.active_unhealthy.store(true);
  picker_->MarkHealthChanged("u");
  for (int i = 0; i < 200 && picker_->Find("u")->healthy_count() != 1; ++i) {
    std::this_thread::sleep_for(Millis(5));
  }
  live.active_unhealthy.store(false);
  picker_->MarkHealthChanged("u");
  for (int i = 0; i < 200 && !Factor(1); ++i) std::this_thread::sleep_for(Millis(5));
  EXPECT_TRUE(Factor(1).has_value());
}

TEST_F(BalancingPlanesTest, PeakEwmaSendsLessToTheSlowTarget) {
  LoadBalancerConfig lb;
  lb.kind = StrategyKind::kPeakEwma;
  Create(lb);
  for (int i = 1; i <= 4; ++i) Put("10.0.0." + std::to_string(i) + ":80");
  // Target 4 answers in 50ms, the others in 10ms.
  auto release = [&](const PickOutput& p) {
    const bool slow = p.target->config.address == "10.0.0.4:80";
    ASSERT_TRUE(
        picker_->Release("u", p.lease_id, Outcome::kSuccess, slow ? Millis(50) : Millis(10)).ok());
  };
  Run(100, release);  // Every target reports.
  const int slow = Run(2000, release)["10.0.0.4:80"];
  EXPECT_LT(slow, 2000 / 4 / 2);  // Well below its fair share.
}

TEST_F(BalancingPlanesTest, PeakEwmaCountsFailuresAsThePenalty) {
  LoadBalancerConfig lb;
  lb.kind = StrategyKind::kPeakEwma;
  lb.failure_penalty = Millis(500);
  Create(lb);
  for (int i = 1; i <= 4; ++i) Put("10.0.0." + std::to_string(i) + ":80");
  // Target 2 fails fast (1ms): as the penalty, it looks slow.
  auto release = [&](const PickOutput& p) {
    const bool bad = p.target->config.address == "10.0.0.2:80";
    ASSERT_TRUE(picker_
                    ->Release("u", p.lease_id, bad ? Outcome::kFailure : Outcome::kSuccess,
                              bad ? Millis(1) : Millis(20))
                    .ok());
  };
  Run(50, release);
  EXPECT_LT(Run(1000, release)["10.0.0.2:80"], 1000 / 4 / 2);
}

TEST_F(BalancingPlanesTest, WeightedRoundRobinFollowsLoadReportsAfterARefresh) {
  LoadBalancerConfig lb;
  lb.kind = StrategyKind::kWeightedRoundRobin;
  lb.blackout_period = Millis(0);
  lb.weight_update_period = Millis(100);
  Create(lb);
  Put("10.0.0.1:80");
  Put("10.0.0.2:80");
  Put("10.0.0.3:80");
  // Target 3 reports 90% CPU, the others 10%, all at the same qps: its
  // weight is a ninth of theirs.
  auto release = [&](const PickOutput& p) {
    const bool busy = p.target->config.address == "10.0.0.3:80";
    const LoadReport report{.cpu_utilization = busy ? 0.9 : 0.1, .rps_fractional = 90};
    ASSERT_TRUE(picker_->Release("u", p.lease_id, Outcome::kSuccess, Millis(5), &report).ok());
  };
  EXPECT_NEAR(Run(300, release)["10.0.0.3:80"], 100, 2);  // No weights yet: round robin.
  // The refresh timer (every 100ms) publishes the weights without a rebuild.
  const auto built = picker_->Find("u");
  std::this_thread::sleep_for(Millis(400));
  EXPECT_EQ(picker_->Find("u"), built);
  EXPECT_NEAR(Run(1900, release)["10.0.0.3:80"], 100, 5);
}

}  // namespace
}  // namespace picker::core
