#include "server/core/strategy/least_request.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::PickWith;
using testing::ScriptedRandom;
using testing::Stateful;
using testing::TestHosts;

uint32_t PickScripted(const Stateful<LeastRequestStrategy>& lb, ScriptedRandom& random) {
  return PickWith(lb, PickInputs{.random = [&] { return random(); }});
}

TEST(LeastRequestTest, EnvoyNormal) {
  TestHosts hosts = TestHosts::Loopback(80, 2);
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, 1.0);
  hosts.SetActive(0, 1);
  hosts.SetActive(1, 2);
  // Envoy scripts 0, 2, 3: the 0 goes to priority selection, which picker
  // does outside the strategy; the samples are 2 % 2 = 0 and 3 % 2 = 1.
  ScriptedRandom r1({2, 3});
  EXPECT_EQ(PickScripted(lb, r1), 0u);
  hosts.SetActive(0, 2);
  hosts.SetActive(1, 1);
  ScriptedRandom r2({2, 3});
  EXPECT_EQ(PickScripted(lb, r2), 1u);
}

TEST(LeastRequestTest, EnvoyPowerOfNChoices) {
  TestHosts hosts = TestHosts::Loopback(80, 4);
  hosts.SetActive(0, 4);
  hosts.SetActive(1, 3);
  hosts.SetActive(2, 2);
  hosts.SetActive(3, 1);

  // P2C and P5C consume exactly choice_count randoms (Envoy: one more, for
  // the priority).
  Stateful<LeastRequestStrategy> p2c(0, hosts.hosts(), 2, 1.0);
  ScriptedRandom zeros2({0, 0, 0, 0, 0, 0});
  EXPECT_EQ(PickScripted(p2c, zeros2), 0u);
  EXPECT_EQ(zeros2.calls(), 2u);

  Stateful<LeastRequestStrategy> p5c(0, hosts.hosts(), 5, 1.0);
  ScriptedRandom zeros5({0, 0, 0, 0, 0, 0});
  EXPECT_EQ(PickScripted(p5c, zeros5), 0u);
  EXPECT_EQ(zeros5.calls(), 5u);

  // Envoy's P5C vector: randoms 0 (priority), 3, 0, 3, 2, 1 -> host 3.
  ScriptedRandom r({3, 0, 3, 2, 1});
  EXPECT_EQ(PickScripted(p5c, r), 3u);
}

// A choice_count stored before the bound existed is clamped: a pick draws
// at most kMaxChoiceCount samples, not billions.
TEST(LeastRequestTest, ChoiceCountIsClampedOnThePick) {
  TestHosts hosts = TestHosts::Loopback(80, 4);
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 4294967295u, 1.0);
  std::vector<uint64_t> zeros(64, 0);
  ScriptedRandom random(zeros);
  EXPECT_EQ(PickScripted(lb, random), 0u);
  EXPECT_EQ(random.calls(), kMaxChoiceCount);
}

TEST(LeastRequestTest, TiesKeepTheFirstSample) {
  TestHosts hosts = TestHosts::Loopback(80, 3);
  hosts.SetActive(1, 2);
  hosts.SetActive(2, 2);
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, 1.0);
  ScriptedRandom r({1, 2});
  EXPECT_EQ(PickScripted(lb, r), 1u);  // 2 is not strictly less loaded.
}

// Envoy's WeightImbalance test: weights 1 and 2, the random seed 0.
TEST(LeastRequestTest, EnvoyWeightImbalance) {
  TestHosts hosts = TestHosts::Loopback(80, 2, {1, 2});
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, 1.0);
  auto next = [&] { return PickWith(lb, PickInputs{}); };
  // 2:1 for hosts[1].
  for (uint32_t want : {1, 0, 1, 1, 0, 1}) EXPECT_EQ(next(), want);
  // hosts[1] with one active request: 1:1.
  hosts.SetActive(1, 1);
  for (uint32_t want : {1, 0, 1, 0, 1}) EXPECT_EQ(next(), want);
  // hosts[0] with one active request, hosts[1] idle: 4:1.
  hosts.SetActive(0, 1);
  hosts.SetActive(1, 0);
  for (uint32_t want : {0, 1, 1, 1, 0, 1, 1, 1, 1, 0}) EXPECT_EQ(next(), want);
}

TEST(LeastRequestTest, BiasZeroIsWeightedRoundRobin) {
  TestHosts hosts = TestHosts::Loopback(80, 2, {1, 2});
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, 0.0);
  hosts.SetActive(1, 50);  // Ignored with bias 0.
  std::vector<uint32_t> got;
  for (int i = 0; i < 6; ++i) got.push_back(PickWith(lb, PickInputs{}));
  EXPECT_EQ(got, (std::vector<uint32_t>{1, 0, 1, 1, 0, 1}));
}

TEST(LeastRequestTest, LargerBiasShiftsHarderAwayFromLoad) {
  // Weights 1 and 2, host 1 with 3 active: bias 1 gives host 1 weight
  // 2/4 = 0.5 (1:2 the other way), bias 2 gives 2/16 (8:1).
  TestHosts hosts = TestHosts::Loopback(80, 2, {1, 2});
  hosts.SetActive(1, 3);
  auto share_of_host0 = [&](double bias) {
    Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, bias);
    int host0 = 0;
    for (int i = 0; i < 9000; ++i) host0 += PickWith(lb, PickInputs{}) == 0;
    return host0 / 9000.0;
  };
  EXPECT_NEAR(share_of_host0(1.0), 2.0 / 3.0, 0.01);
  EXPECT_NEAR(share_of_host0(2.0), 8.0 / 9.0, 0.01);
}

TEST(LeastRequestTest, PrefersTheLessLoaded) {
  TestHosts hosts = TestHosts::Loopback(80, 4);
  hosts.SetActive(0, 10);
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, 1.0);
  std::mt19937_64 rng(4);
  int busy = 0;
  constexpr int kPicks = 40000;
  for (int i = 0; i < kPicks; ++i) {
    busy += PickWith(lb, PickInputs{.random = [&] { return rng(); }}) == 0;
  }
  // The busy host wins only when both samples are it: 1/16.
  EXPECT_NEAR(busy / double(kPicks), 1.0 / 16, 0.01);
}

TEST(LeastRequestTest, AvoidSkipsExcludedHosts) {
  TestHosts hosts = TestHosts::Loopback(80, 3);
  hosts.SetActive(1, 0);
  hosts.SetActive(0, 5);
  hosts.SetActive(2, 5);
  Stateful<LeastRequestStrategy> lb(0, hosts.hosts(), 2, 1.0);
  for (int i = 0; i < 50; ++i) {
    EXPECT_NE(PickWith(lb, PickInputs{.avoid = [](uint32_t h) { return h == 1; }}), 1u);
  }
  TestHosts weighted = TestHosts::Loopback(80, 3, {1, 2, 3});
  Stateful<LeastRequestStrategy> wlb(0, weighted.hosts(), 2, 1.0);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(PickWith(wlb, PickInputs{.avoid = [](uint32_t h) { return h != 0; }}), 0u);
  }
  // Everything avoided: the first pick stands.
  ScriptedRandom r({2, 2});
  EXPECT_EQ(PickWith(lb, PickInputs{.avoid = [](uint32_t) { return true; },
                                    .random = [&] { return r(); }}),
            2u);
}

TEST(LeastRequestTest, SingleAndNoHosts) {
  TestHosts one = TestHosts::Loopback(80, 1);
  Stateful<LeastRequestStrategy> lb(0, one.hosts(), 2, 1.0);
  EXPECT_EQ(PickWith(lb, PickInputs{}), 0u);
  TestHosts none(std::vector<std::string>{});
  Stateful<LeastRequestStrategy> empty(0, none.hosts(), 2, 1.0);
  EXPECT_EQ(PickWith(empty, PickInputs{}), kNoHost);
}

}  // namespace
}  // namespace picker::core
