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
  // [0,1), [1,3) and [3,10) of the point floor(random * 10 / 2^64), that is
  // the first tenth of the random numbers, the next two tenths, the rest.
  TestHosts hosts = TestHosts::Loopback(80, 3, {1, 2, 7});
  RandomStrategy lb(hosts.hosts());
  constexpr uint64_t kOneTenth = 1844674407370955162;     // ceil(2^64 / 10)
  constexpr uint64_t kThreeTenths = 5534023222112865485;  // ceil(3 * 2^64 / 10)
  EXPECT_EQ(PickR(lb, 0), 0u);
  EXPECT_EQ(PickR(lb, kOneTenth - 1), 0u);
  EXPECT_EQ(PickR(lb, kOneTenth), 1u);
  EXPECT_EQ(PickR(lb, kThreeTenths - 1), 1u);
  EXPECT_EQ(PickR(lb, kThreeTenths), 2u);
  EXPECT_EQ(PickR(lb, 0xFFFFFFFFFFFFFFFFULL), 2u);
}

TEST(RandomTest, WeightedSearchFindsEveryHost) {
  // Every host, for host counts that are and are not powers of two, and a
  // host of weight 0 owns nothing.
  for (const int n : {2, 3, 5, 8, 13, 100, 1000}) {
    std::vector<uint32_t> weights(n);
    for (int i = 0; i < n; ++i) weights[i] = i == n / 2 ? 0 : 1 + i % 3;
    TestHosts hosts = TestHosts::Loopback(1000, n, weights);
    RandomStrategy lb(hosts.hosts());
    uint64_t total = 0;
    for (uint32_t w : weights) total += w;
    uint64_t before = 0;
    for (int i = 0; i < n; ++i) {
      if (weights[i] == 0) continue;
      // The first and last random numbers whose point falls in host i's range
      // (for the last host, 2^64 wraps to 0, and 0 - 1 is the last number).
      const auto first_r = [&](uint64_t point) {
        return static_cast<uint64_t>(((static_cast<unsigned __int128>(point) << 64) + total - 1) /
                                     total);
      };
      EXPECT_EQ(PickR(lb, first_r(before)), static_cast<uint32_t>(i)) << n << " hosts";
      EXPECT_EQ(PickR(lb, first_r(before + weights[i]) - 1), static_cast<uint32_t>(i))
          << n << " hosts";
      before += weights[i];
    }
  }
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
