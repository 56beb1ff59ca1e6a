// WeightedRoundRobin: gRFC A58's weight from ORCA load reports, its blackout
// and expiry, and the EDF picks over the refreshed weights.
#include "server/core/strategy/weighted_round_robin.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::TestHosts;

constexpr int64_t kT0 = 1'700'000'000'000;  // Unix ms
constexpr EndpointWeight::Periods kPeriods{.blackout_ms = 10000, .expiration_ms = 180000};

LoadReport Report(double qps, double cpu, double eps = 0, double app = 0) {
  return LoadReport{
      .cpu_utilization = cpu, .application_utilization = app, .rps_fractional = qps, .eps = eps};
}

TEST(EndpointWeightTest, A58Formula) {
  EndpointWeight w;
  // 100 / (0.5 + 10 / 100 x 1) = 166.66...
  w.Observe(Report(100, 0.5, 10), 1.0, {0, 180000}, kT0);
  EXPECT_DOUBLE_EQ(w.Usable({0, 180000}, kT0), 100 / 0.6);
  // application_utilization wins over cpu; penalty 2: 100 / (0.25 + 0.2).
  w.Observe(Report(100, 0.9, 10, 0.25), 2.0, {0, 180000}, kT0);
  EXPECT_DOUBLE_EQ(w.Usable({0, 180000}, kT0), 100 / 0.45);
  // No qps or no utilization: ignored, the weight stays.
  w.Observe(Report(0, 0.5), 1.0, {0, 180000}, kT0);
  w.Observe(Report(50, 0), 1.0, {0, 180000}, kT0);
  EXPECT_DOUBLE_EQ(w.Usable({0, 180000}, kT0), 100 / 0.45);
}

TEST(EndpointWeightTest, BlackoutThenExpiryThenBlackoutAgain) {
  EndpointWeight w;
  EXPECT_EQ(w.Usable(kPeriods, kT0), 0);  // Never reported.
  w.Observe(Report(10, 0.5), 1.0, kPeriods, kT0);
  EXPECT_EQ(w.Usable(kPeriods, kT0 + 9999), 0);  // Still in the blackout.
  w.Observe(Report(10, 0.5), 1.0, kPeriods, kT0 + 9999);
  EXPECT_DOUBLE_EQ(w.Usable(kPeriods, kT0 + 10000), 20);
  // The last report 3 minutes old: expired.
  EXPECT_EQ(w.Usable(kPeriods, kT0 + 9999 + 180000), 0);
  // A report after the expiry starts a new blackout.
  w.Observe(Report(10, 0.5), 1.0, kPeriods, kT0 + 200000);
  EXPECT_EQ(w.Usable(kPeriods, kT0 + 200001), 0);
  EXPECT_DOUBLE_EQ(w.Usable(kPeriods, kT0 + 210000), 20);
}

struct LoadedHosts {
  explicit LoadedHosts(std::vector<uint32_t> weights)
      : hosts(TestHosts::Loopback(80, static_cast<int>(weights.size()), weights)),
        loads(std::make_unique<TargetLoad[]>(weights.size())) {}
  std::vector<StrategyHost> Strategy() const {
    std::vector<StrategyHost> out = hosts.hosts();
    for (size_t i = 0; i < out.size(); ++i) out[i].load = &loads[i];
    return out;
  }
  TestHosts hosts;
  std::unique_ptr<TargetLoad[]> loads;
};

LoadBalancerConfig NoBlackout() {
  LoadBalancerConfig config;
  config.kind = StrategyKind::kWeightedRoundRobin;
  config.blackout_period = Millis(0);
  return config;
}

std::vector<int> Counts(const WeightedRoundRobinStrategy& lb, PickState* state, int n) {
  std::vector<int> counts(3, 0);
  for (int i = 0; i < n; ++i) ++counts[testing::PickWith(lb, state, PickInputs{})];
  return counts;
}

TEST(WeightedRoundRobinTest, PicksFollowReportedWeightsAndTheMeanFillsIn) {
  LoadedHosts h({1, 1, 1});
  // qps 100 at 100% and 50% CPU: weights 100 and 200; host 2 never reports
  // and gets the mean, 150.
  h.loads[0].weight.Observe(Report(100, 1.0), 1.0, {0, 180000}, kT0);
  h.loads[1].weight.Observe(Report(100, 0.5), 1.0, {0, 180000}, kT0);
  WeightedRoundRobinStrategy lb(h.Strategy(), NoBlackout(), kT0 * 1000000);
  EXPECT_EQ(lb.Weights(kT0 * 1000000), (std::vector<double>{100, 200, 150}));
  std::unique_ptr<PickState> state = lb.NewPickState(5);
  // EDF spreads exactly by weight over a whole period of 450 picks.
  const std::vector<int> counts = Counts(lb, state.get(), 4500);
  EXPECT_NEAR(counts[0], 1000, 2);
  EXPECT_NEAR(counts[1], 2000, 2);
  EXPECT_NEAR(counts[2], 1500, 2);
}

TEST(WeightedRoundRobinTest, FewerThanTwoUsableWeightsFallBackToTargetWeights) {
  LoadedHosts h({1, 2, 1});
  h.loads[0].weight.Observe(Report(100, 0.1), 1.0, {0, 180000}, kT0);
  WeightedRoundRobinStrategy lb(h.Strategy(), NoBlackout(), kT0 * 1000000);
  EXPECT_EQ(lb.UsableCount(kT0 * 1000000), 1u);
  EXPECT_EQ(lb.Weights(kT0 * 1000000), (std::vector<double>{1, 2, 1}));
}

TEST(WeightedRoundRobinTest, RefreshPublishesNewWeightsToPicks) {
  LoadedHosts h({1, 1, 1});
  WeightedRoundRobinStrategy lb(h.Strategy(), NoBlackout(), kT0 * 1000000);
  std::unique_ptr<PickState> state = lb.NewPickState(5);
  std::vector<int> before = Counts(lb, state.get(), 300);
  EXPECT_EQ(before, (std::vector<int>{100, 100, 100}));
  // Host 2 reports 90% CPU for the same qps as the others at 10%: a ninth
  // of their weight. Picks see it only after the refresh.
  for (int i = 0; i < 3; ++i) {
    h.loads[i].weight.Observe(Report(90, i == 2 ? 0.9 : 0.1), 1.0, {0, 180000}, kT0 + 1);
  }
  EXPECT_EQ(Counts(lb, state.get(), 300), (std::vector<int>{100, 100, 100}));
  lb.Refresh(state.get(), (kT0 + 2) * 1000000, 9);
  const std::vector<int> after = Counts(lb, state.get(), 1900);
  EXPECT_NEAR(after[2], 100, 2);  // 100 / 1900 = 100 / (900 + 900 + 100)
}

}  // namespace
}  // namespace picker::core
