#include "server/core/strategy/random.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::PickWith;
using testing::ScriptedRandom;
using testing::TestHosts;

uint32_t PickR(RandomStrategy& lb, uint64_t r) {
  return PickWith(lb, PickInputs{.random = [r] { return r; }});
}

TEST(RandomTest, EqualWeightsAreEnvoysModulo) {
  TestHosts hosts = TestHosts::Loopback(80, 3, {100, 100, 100});
  RandomStrategy lb(hosts.hosts());
  EXPECT_EQ(PickR(lb, 0), 0u);
  EXPECT_EQ(PickR(lb, 4), 1u);
  EXPECT_EQ(PickR(lb, 8), 2u);
  EXPECT_EQ(PickR(lb, 0xFFFFFFFFFFFFFFFFULL), 0xFFFFFFFFFFFFFFFFULL % 3);
}

TEST(RandomTest, WeightedMapsOntoCumulativeWeights) {
  // Deliberately unlike Envoy (which ignores weights): weights 1, 2, 7 own
  // [0,1), [1,3) and [3,10) of random % 10.
  TestHosts hosts = TestHosts::Loopback(80, 3, {1, 2, 7});
  RandomStrategy lb(hosts.hosts());
  EXPECT_EQ(PickR(lb, 0), 0u);
  EXPECT_EQ(PickR(lb, 1), 1u);
  EXPECT_EQ(PickR(lb, 2), 1u);
  EXPECT_EQ(PickR(lb, 3), 2u);
  EXPECT_EQ(PickR(lb, 9), 2u);
  EXPECT_EQ(PickR(lb, 10), 0u);
  EXPECT_EQ(PickR(lb, 13), 2u);
}

TEST(RandomTest, OneRandomNumberPerPick) {
  TestHosts hosts = TestHosts::Loopback(80, 3, {1, 2, 7});
  RandomStrategy lb(hosts.hosts());
  ScriptedRandom r({5});
  PickWith(lb, PickInputs{.random = [&] { return r(); }});
  EXPECT_EQ(r.calls(), 1u);
}

TEST(RandomTest, WeightedSharesFollowWeights) {
  TestHosts hosts = TestHosts::Loopback(80, 4, {1, 2, 3, 4});
  RandomStrategy lb(hosts.hosts());
  std::mt19937_64 rng(21);
  std::vector<int> counts(4, 0);
  constexpr int kPicks = 100000;
  for (int i = 0; i < kPicks; ++i)
    ++counts[PickWith(lb, PickInputs{.random = [&] { return rng(); }})];
  for (int h = 0; h < 4; ++h) EXPECT_NEAR(counts[h] / double(kPicks), (h + 1) / 10.0, 0.01) << h;
}

TEST(RandomTest, AvoidSkipsExcludedHosts) {
  TestHosts hosts = TestHosts::Loopback(80, 5, {1, 1, 50, 1, 1});
  RandomStrategy lb(hosts.hosts());
  std::mt19937_64 rng(2);
  for (int i = 0; i < 200; ++i) {
    EXPECT_NE(PickWith(lb, PickInputs{.avoid = [](uint32_t h) { return h == 2; },
                                      .random = [&] { return rng(); }}),
              2u);
  }
  // Only host 4 allowed and nearly never drawn: the scan finds it.
  EXPECT_EQ(PickWith(lb, PickInputs{.avoid = [](uint32_t h) { return h != 4; },
                                    .random = [] { return uint64_t{10}; }}),
            4u);
  // All avoided: the first pick.
  EXPECT_EQ(PickWith(lb, PickInputs{.avoid = [](uint32_t) { return true; },
                                    .random = [] { return uint64_t{0}; }}),
            0u);
}

TEST(RandomTest, NoHosts) {
  TestHosts none(std::vector<std::string>{});
  RandomStrategy lb(none.hosts());
  EXPECT_EQ(PickR(lb, 3), kNoHost);
}

}  // namespace
}  // namespace picker::core
