// Slow start (Envoy's slow_start_config) on RoundRobin and LeastRequest: the
// factor against values computed by hand from Envoy's formula, and the EDF
// picks it makes.
#include "server/core/strategy/slow_start.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/strategy/least_request.h"
#include "server/core/strategy/round_robin.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::Stateful;
using testing::TestHosts;

constexpr int64_t kStart = 1'700'000'000'000;  // Unix ms when the target became healthy.

SlowStartConfig Config(int64_t window_ms, double aggression = 1.0, double min_percent = 10) {
  return SlowStartConfig{Millis(window_ms), aggression, min_percent};
}

// Envoy: f = max(1ms, elapsed) / window; factor = max(f^(1/aggression),
// min_weight_percent / 100) while elapsed < window.
TEST(SlowStartFactorTest, MatchesEnvoysFormula) {
  // Linear (aggression 1), window 10s, floor 10%.
  const SlowStartConfig linear = Config(10000);
  EXPECT_DOUBLE_EQ(SlowStartFactor(linear, kStart, kStart), 0.1);          // 1ms/10s < 10%
  EXPECT_DOUBLE_EQ(SlowStartFactor(linear, kStart, kStart + 999), 0.1);    // 0.0999 < 10%
  EXPECT_DOUBLE_EQ(SlowStartFactor(linear, kStart, kStart + 2500), 0.25);  // 2.5s / 10s
  EXPECT_DOUBLE_EQ(SlowStartFactor(linear, kStart, kStart + 9999), 0.9999);
  EXPECT_DOUBLE_EQ(SlowStartFactor(linear, kStart, kStart + 10000), 1.0);  // the window is over
  // Aggression 2: sqrt(f), so faster at first. 2.5s of 10s: sqrt(0.25) = 0.5.
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(10000, 2.0), kStart, kStart + 2500), 0.5);
  // Aggression 0.5: f^2, slower at first. 5s: 0.25; 2s: 0.04, held at 10%.
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(10000, 0.5), kStart, kStart + 5000), 0.25);
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(10000, 0.5), kStart, kStart + 2000), 0.1);
  // Aggression 1.5 at 6s of 60s: 0.1^(2/3) = 0.215443469003188...
  EXPECT_NEAR(SlowStartFactor(Config(60000, 1.5), kStart, kStart + 6000), 0.2154434690031884,
              1e-15);
  // A floor of 30%: 1s of 10s is 0.1, raised to 0.3.
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(10000, 1.0, 30), kStart, kStart + 1000), 0.3);
  // A clock stepped back counts as 1ms, as Envoy's max(1ms, ...).
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(10, 1.0, 1), kStart, kStart - 5), 0.1);
}

TEST(SlowStartFactorTest, OffOrNeverStartedIsOne) {
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(0), kStart, kStart + 1), 1.0);  // window 0: off
  EXPECT_DOUBLE_EQ(SlowStartFactor(Config(10000), 0, kStart), 1.0);       // no start known
  EXPECT_FALSE(InSlowStart(Config(10000), kStart, kStart + 10000));
  EXPECT_TRUE(InSlowStart(Config(10000), kStart, kStart + 9999));
}

std::vector<StrategyHost> WithSince(const TestHosts& hosts, std::vector<int64_t> since) {
  std::vector<StrategyHost> out = hosts.hosts();
  for (size_t i = 0; i < out.size(); ++i) out[i].healthy_since_ms = since[i];
  return out;
}

// Picks at a fixed time: each host's share over `n` picks.
template <typename S>
std::vector<double> Shares(const Stateful<S>& lb, int64_t now_ms, int n, size_t hosts) {
  std::vector<double> counts(hosts, 0);
  std::mt19937_64 random(7);
  for (int i = 0; i < n; ++i) {
    auto no = [](uint32_t) { return false; };
    auto r = [&] { return random(); };
    const uint32_t h = lb.strategy.Pick(
        PickParams{.avoid = no, .random = r, .now_ns = now_ms * 1000000}, lb.state.get());
    counts[h] += 1;
  }
  for (double& c : counts) c /= n;
  return counts;
}

TEST(SlowStartRoundRobinTest, AHostInSlowStartGetsItsFactorOfTheShare) {
  // Two equal hosts; host 1 became healthy 5s into a 10s window: factor
  // 0.5, so it gets 0.5 / 1.5 of the picks.
  TestHosts hosts = TestHosts::Loopback(80, 2);
  const int64_t now = kStart + 5000;
  Stateful<RoundRobinStrategy> lb(3, WithSince(hosts, {0, kStart}), Config(10000), now);
  const std::vector<double> shares = Shares(lb, now, 3000, 2);
  EXPECT_NEAR(shares[1], 1.0 / 3, 0.002);
}

TEST(SlowStartRoundRobinTest, TheShareRampsUpWithTime) {
  TestHosts hosts = TestHosts::Loopback(80, 3);
  Stateful<RoundRobinStrategy> lb(3, WithSince(hosts, {0, 0, kStart}), Config(10000), kStart);
  // 10% at the start (0.1 / 2.1), then 60% at 6s (0.6 / 2.6): the weight is
  // re-read at every pick, as Envoy's EDF does.
  EXPECT_NEAR(Shares(lb, kStart + 1, 2100, 3)[2], 0.1 / 2.1, 0.01);
  EXPECT_NEAR(Shares(lb, kStart + 6000, 2600, 3)[2], 0.6 / 2.6, 0.01);
  EXPECT_NEAR(Shares(lb, kStart + 20000, 3000, 3)[2], 1.0 / 3, 0.01);
}

TEST(SlowStartRoundRobinTest, NoHostInItsWindowKeepsPlainRotation) {
  // Envoy's seed-1 rotation 1, 2, 0, 1: slow start configured, nobody in it.
  TestHosts hosts = TestHosts::Loopback(80, 3);
  Stateful<RoundRobinStrategy> lb(1, WithSince(hosts, {kStart - 20000, 0, 0}), Config(10000),
                                  kStart);
  std::vector<uint32_t> picks;
  for (int i = 0; i < 4; ++i) picks.push_back(testing::PickWith(lb, PickInputs{}));
  EXPECT_EQ(picks, (std::vector<uint32_t>{1, 2, 0, 1}));
}

TEST(SlowStartLeastRequestTest, EqualWeightsPickByEdfWithTheFactor) {
  // With equal weights and nothing active, LeastRequest in slow start is
  // EDF on weight / (0 + 1) x factor: host 1 at 25% of the window gets
  // 0.25 / 1.25 of the picks (active counts stay 0).
  TestHosts hosts = TestHosts::Loopback(80, 2);
  const int64_t now = kStart + 2500;
  Stateful<LeastRequestStrategy> lb(3, WithSince(hosts, {0, kStart}), 2, 1.0, Config(10000), now);
  EXPECT_NEAR(Shares(lb, now, 2500, 2)[1], 0.2, 0.002);
}

TEST(SlowStartLeastRequestTest, SlowStartAppliesAfterTheActiveRequestBias) {
  // Host 0: weight 1 / (3 + 1) = 0.25. Host 1: weight 1 / (0 + 1) x 0.25.
  // Equal effective weights: equal shares while the counts do not move.
  TestHosts hosts = TestHosts::Loopback(80, 2);
  hosts.SetActive(0, 3);
  const int64_t now = kStart + 2500;
  Stateful<LeastRequestStrategy> lb(3, WithSince(hosts, {0, kStart}), 2, 1.0, Config(10000), now);
  EXPECT_NEAR(Shares(lb, now, 2000, 2)[1], 0.5, 0.002);
}

}  // namespace
}  // namespace picker::core
