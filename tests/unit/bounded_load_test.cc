#include "server/core/strategy/bounded_load.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/strategy/maglev.h"
#include "server/core/strategy/ring_hash.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::PickWith;
using testing::TestHosts;

TEST(BoundedLoadTest, EnvoyProbeOrders) {
  // bounded_load_hlb_test.cc: the walk over 5 hosts for three seeds.
  EXPECT_EQ(BoundedLoadProbeOrder(2, 5), (std::vector<uint32_t>{2, 1, 0, 4, 3}));
  EXPECT_EQ(BoundedLoadProbeOrder(6, 5), (std::vector<uint32_t>{4, 0, 2, 3, 1}));
  EXPECT_EQ(BoundedLoadProbeOrder(7, 5), (std::vector<uint32_t>{0, 1, 4, 3, 2}));
}

TEST(BoundedLoadTest, SeedIsTruncatedTo32Bits) {
  EXPECT_EQ(BoundedLoadProbeOrder((uint64_t{1} << 32) | 2, 5), BoundedLoadProbeOrder(2, 5));
}

TEST(BoundedLoadTest, OverloadFactorFormula) {
  // 4 equal hosts (w = 0.25), factor 200, 7 active upstream-wide:
  // total_slots = (8 * 200 + 99) / 100 = 16, slots = ceil(16 * 0.25) = 4.
  TestHosts hosts = TestHosts::Loopback(80, 4);
  BoundedLoad bl(hosts.hosts(), 200);
  hosts.SetActive(0, 4);
  EXPECT_DOUBLE_EQ(bl.OverloadFactor(0, 7), 1.0);
  hosts.SetActive(0, 5);
  EXPECT_DOUBLE_EQ(bl.OverloadFactor(0, 7), 1.25);
  // Slots never drop below one: idle upstream, factor 100, w = 0.25 gives
  // total_slots 1, ceil(0.25) = 1.
  BoundedLoad tight(hosts.hosts(), 100);
  hosts.SetActive(1, 1);
  EXPECT_DOUBLE_EQ(tight.OverloadFactor(1, 0), 1.0);
}

TEST(BoundedLoadTest, WeightsScaleSlots) {
  // Weights 1 and 3: w = 0.25 and 0.75. Factor 100, 11 active: total 12,
  // slots 3 and 9.
  TestHosts hosts = TestHosts::Loopback(80, 2, {1, 3});
  BoundedLoad bl(hosts.hosts(), 100);
  hosts.SetActive(0, 3);
  hosts.SetActive(1, 9);
  EXPECT_DOUBLE_EQ(bl.OverloadFactor(0, 11), 1.0);
  EXPECT_DOUBLE_EQ(bl.OverloadFactor(1, 11), 1.0);
}

TEST(BoundedLoadTest, ChosenHostWithinBoundStays) {
  TestHosts hosts = TestHosts::Loopback(80, 5);
  BoundedLoad bl(hosts.hosts(), 150);
  EXPECT_EQ(bl.Choose(3, 2, 0), 3u);
}

TEST(BoundedLoadTest, OverloadedHostWalksInProbeOrder) {
  // Hash 2 probes 2, 1, 0, 4, 3. Host 0 was chosen and is overloaded, so is
  // host 2: the walk settles on host 1.
  TestHosts hosts = TestHosts::Loopback(80, 5);
  BoundedLoad bl(hosts.hosts(), 100);
  // 10 active overall: total_slots = 11, slots per host = ceil(2.2) = 3.
  hosts.SetActive(0, 5);
  hosts.SetActive(2, 5);
  EXPECT_EQ(bl.Choose(0, 2, 10), 1u);
  // Same with host 1 overloaded too: host 4 is next.
  hosts.SetActive(1, 4);
  EXPECT_EQ(bl.Choose(0, 2, 10), 4u);
}

TEST(BoundedLoadTest, AllOverloadedGivesTheLeastOverloaded) {
  TestHosts hosts = TestHosts::Loopback(80, 5);
  BoundedLoad bl(hosts.hosts(), 100);
  for (size_t i = 0; i < 5; ++i) hosts.SetActive(i, 9);
  hosts.SetActive(3, 4);  // Overloaded (slots 1 at 0 active) but least.
  EXPECT_EQ(bl.Choose(0, 7, 0), 3u);
  // Ties keep the chosen host.
  hosts.SetActive(3, 9);
  EXPECT_EQ(bl.Choose(0, 7, 0), 0u);
}

TEST(BoundedLoadTest, MaglevSpillsOverAndIsStablePerKey) {
  TestHosts hosts = TestHosts::Loopback(90, 6);
  MaglevStrategy lb(hosts.hosts(), 7, 150);
  // Hash 0 -> slot 0 -> :92 (Envoy's Basic table). Load it well past its
  // bound.
  const uint64_t upstream_active = 12;
  hosts.SetActive(2, 12);
  const uint32_t spilled =
      PickWith(lb, PickInputs{.hash = 0, .upstream_active_requests = upstream_active});
  EXPECT_NE(spilled, 2u);
  // The walk is seeded by the hash: the same key spills the same way, and
  // lands on the first host of its probe order other than the chosen one.
  std::vector<uint32_t> order = BoundedLoadProbeOrder(0, 6);
  uint32_t expected = order[0] == 2 ? order[1] : order[0];
  EXPECT_EQ(spilled, expected);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(PickWith(lb, PickInputs{.hash = 0, .upstream_active_requests = upstream_active}),
              spilled);
  }
  // Unloaded again, the key returns home.
  hosts.SetActive(2, 0);
  EXPECT_EQ(PickWith(lb, PickInputs{.hash = 0, .upstream_active_requests = 0}), 2u);
}

TEST(BoundedLoadTest, RingHashKeepsEveryHostNearItsBound) {
  // Simulate sticky traffic with a few hot keys: with factor 125 no host
  // may take more than its bound while others have room.
  TestHosts hosts = TestHosts::Loopback(100, 8);
  RingHashStrategy lb(hosts.hosts(), 1024, 8388608, HashFunction::kXxHash, 125);
  std::mt19937_64 rng(17);
  std::vector<uint64_t> keys = {rng(), rng(), rng()};  // Three hot keys.
  std::vector<uint64_t> active(8, 0);
  uint64_t total = 0;
  for (int i = 0; i < 800; ++i) {
    const uint32_t h =
        PickWith(lb, PickInputs{.hash = keys[i % 3], .upstream_active_requests = total});
    ++active[h];
    hosts.SetActive(h, active[h]);
    ++total;
  }
  // Bound per host at the end: ceil(((799 + 1) * 125 + 99) / 100 / 8) =
  // ceil(1000 / 8) = 125, and each pick kept its host within the bound of
  // its moment, so no host exceeds 126.
  for (uint64_t a : active) EXPECT_LE(a, 126u);
  // Without bounded load the three keys would use at most three hosts.
  int used = 0;
  for (uint64_t a : active) used += a > 0;
  EXPECT_GE(used, 6);
}

}  // namespace
}  // namespace picker::core
