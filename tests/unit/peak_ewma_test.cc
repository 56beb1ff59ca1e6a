// PeakEwma: Finagle's peak EWMA on the latencies releases report, and the
// P2C pick on latency x (active + 1) / weight.
#include "server/core/strategy/peak_ewma.h"

#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::ScriptedRandom;
using testing::TestHosts;

constexpr double kMs = 1e6;                         // ns
constexpr double kTau = 10000 * kMs;                // 10s
constexpr int64_t kT0 = 1'700'000'000'000'000'000;  // Unix ns

TEST(LatencyEwmaTest, FinaglesPeakRule) {
  LatencyEwma ewma;
  EXPECT_FALSE(ewma.Read(kT0, kTau).has_value());
  ewma.Observe(20 * kMs, kT0, kTau);  // The first sample is the average.
  EXPECT_DOUBLE_EQ(*ewma.Read(kT0, kTau), 20 * kMs);
  // A lower sample 1s later: w = exp(-1/10); 20ms x w + 10ms x (1 - w).
  const double w = std::exp(-0.1);
  ewma.Observe(10 * kMs, kT0 + 1000 * kMs, kTau);
  const double expected = 20 * kMs * w + 10 * kMs * (1 - w);
  EXPECT_NEAR(*ewma.Read(kT0 + 1000 * kMs, kTau), expected, 1e-3);
  // A higher sample is a new peak: taken at once, whatever the time.
  ewma.Observe(50 * kMs, kT0 + 1001 * kMs, kTau);
  EXPECT_DOUBLE_EQ(*ewma.Read(kT0 + 1001 * kMs, kTau), 50 * kMs);
}

TEST(LatencyEwmaTest, ReadingDecaysTowardZeroWithoutWriting) {
  LatencyEwma ewma;
  ewma.Observe(40 * kMs, kT0, kTau);
  // tau later the average is 1/e of it; reading changed nothing.
  EXPECT_NEAR(*ewma.Read(kT0 + 10000 * kMs, kTau), 40 * kMs / std::exp(1.0), 1e-3);
  EXPECT_DOUBLE_EQ(*ewma.Read(kT0, kTau), 40 * kMs);
}

TEST(LatencyEwmaTest, ConcurrentObserversLoseNoInterval) {
  // Equal samples from many threads leave the average at that sample
  // however the updates interleave.
  LatencyEwma ewma;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ewma, t] {
      for (int i = 0; i < 1000; ++i) ewma.Observe(7 * kMs, kT0 + (t * 1000 + i) * 1000, kTau);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_NEAR(*ewma.Read(kT0 + 4000 * 1000, kTau), 7 * kMs, 1.0);
}

// Hosts with TargetLoads whose latencies the tests set.
struct LoadedHosts {
  explicit LoadedHosts(std::vector<uint32_t> weights)
      : hosts(TestHosts::Loopback(80, static_cast<int>(weights.size()), weights)),
        loads(std::make_unique<TargetLoad[]>(weights.size())) {}
  std::vector<StrategyHost> Strategy() const {
    std::vector<StrategyHost> out = hosts.hosts();
    for (size_t i = 0; i < out.size(); ++i) out[i].load = &loads[i];
    return out;
  }
  void Latency(size_t i, double ms) { loads[i].latency.Observe(ms * kMs, kT0, kTau); }

  TestHosts hosts;
  std::unique_ptr<TargetLoad[]> loads;
};

uint32_t PickAt(const PeakEwmaStrategy& lb, std::vector<uint64_t> randoms) {
  ScriptedRandom random(std::move(randoms));
  auto no = [](uint32_t) { return false; };
  auto r = [&] { return random(); };
  return lb.Pick(PickParams{.avoid = no, .random = r, .now_ns = kT0}, nullptr);
}

TEST(PeakEwmaStrategyTest, KeepsTheCheaperOfTheChoices) {
  LoadedHosts h({1, 1});
  h.Latency(0, 10);
  h.Latency(1, 100);
  PeakEwmaStrategy lb(h.Strategy(), 2, Millis(10000), kT0);
  EXPECT_EQ(PickAt(lb, {0, 1}), 0u);
  EXPECT_EQ(PickAt(lb, {1, 0}), 0u);
  EXPECT_EQ(PickAt(lb, {1, 1}), 1u);  // Both draws the same host.
  // 10ms x (20 + 1) = 210 > 100ms x 1: the loaded fast host loses.
  h.hosts.SetActive(0, 20);
  EXPECT_EQ(PickAt(lb, {0, 1}), 1u);
  EXPECT_DOUBLE_EQ(lb.Cost(0, kT0), 210 * kMs);
}

TEST(PeakEwmaStrategyTest, WeightDividesTheCost) {
  LoadedHosts h({100, 400});
  h.Latency(0, 10);
  h.Latency(1, 30);  // 30 / 400 < 10 / 100
  PeakEwmaStrategy lb(h.Strategy(), 2, Millis(10000), kT0);
  EXPECT_EQ(PickAt(lb, {0, 1}), 1u);
}

TEST(PeakEwmaStrategyTest, AHostWithoutReportCountsTheMeanOfTheOthers) {
  LoadedHosts h({1, 1, 1});
  h.Latency(0, 10);
  h.Latency(1, 30);
  PeakEwmaStrategy lb(h.Strategy(), 2, Millis(10000), kT0);
  EXPECT_DOUBLE_EQ(lb.unreported_latency_ns(), 20 * kMs);
  EXPECT_DOUBLE_EQ(lb.Cost(2, kT0), 20 * kMs);
  EXPECT_EQ(PickAt(lb, {2, 1}), 2u);  // 20 < 30
  EXPECT_EQ(PickAt(lb, {2, 0}), 0u);  // 10 < 20
}

TEST(PeakEwmaStrategyTest, WithNoReportAtAllActiveRequestsDecide) {
  LoadedHosts h({1, 1});
  h.hosts.SetActive(0, 5);
  PeakEwmaStrategy lb(h.Strategy(), 2, Millis(10000), kT0);
  EXPECT_EQ(PickAt(lb, {0, 1}), 1u);
}

TEST(PeakEwmaStrategyTest, ASlowHostGetsLessThanItsFairShare) {
  // Four hosts, one five times slower: random pairs pick it only when both
  // draws land on it (1/16), far below its fair 1/4.
  LoadedHosts h({1, 1, 1, 1});
  for (size_t i = 0; i < 4; ++i) h.Latency(i, i == 3 ? 50 : 10);
  PeakEwmaStrategy lb(h.Strategy(), 2, Millis(10000), kT0);
  int slow = 0;
  for (int i = 0; i < 4000; ++i) {
    if (testing::PickWith(lb, PickInputs{}) == 3) ++slow;
  }
  EXPECT_LT(slow, 4000 / 10);
}

}  // namespace
}  // namespace picker::core
