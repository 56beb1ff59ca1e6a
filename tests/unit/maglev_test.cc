#include "server/core/strategy/maglev.h"

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/hash/hash.h"
#include "tests/unit/strategy_test_util.h"

namespace picker::core {
namespace {

using testing::PickHash;
using testing::PickInputs;
using testing::PickWith;
using testing::TestHosts;

// Envoy maglev_lb_test Basic: hosts 127.0.0.1:90..95, table of 7.
const std::vector<uint32_t> kEnvoyBasicTable = {2, 4, 0, 1, 5, 0, 3};

TEST(MaglevTest, EnvoyBasic) {
  TestHosts hosts = TestHosts::Loopback(90, 6);
  MaglevStrategy lb(hosts.hosts(), 7, 0);
  EXPECT_EQ(lb.Stats().entries, 7u);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 1u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 2u);
  for (uint64_t i = 0; i < 3 * kEnvoyBasicTable.size(); ++i) {
    EXPECT_EQ(PickHash(lb, i), kEnvoyBasicTable[i % 7]) << i;
  }
}

TEST(MaglevTest, EnvoyBasicWithHashKeys) {
  TestHosts hosts({"90", "91", "92", "93", "94", "95"});
  MaglevStrategy lb(hosts.hosts(), 7, 0);
  const std::vector<uint32_t> expected = {2, 5, 0, 3, 4, 1, 0};
  for (uint64_t i = 0; i < 21; ++i) EXPECT_EQ(PickHash(lb, i), expected[i % 7]) << i;
}

TEST(MaglevTest, EnvoyBoundedLoadIdleIsPlainTable) {
  TestHosts hosts({"90", "91", "92", "93", "94", "95"});
  MaglevStrategy lb(hosts.hosts(), 7, 200);
  const std::vector<uint32_t> expected = {2, 5, 0, 3, 4, 1, 0};
  for (uint64_t i = 0; i < 21; ++i) EXPECT_EQ(PickHash(lb, i), expected[i % 7]) << i;
}

// Envoy BasicWithRetryHostPredicate: hash 10 lands on slot 3 (:91).
TEST(MaglevTest, EnvoyRetryAttempts) {
  TestHosts hosts = TestHosts::Loopback(90, 6);
  MaglevStrategy lb(hosts.hosts(), 7, 0);
  EXPECT_EQ(lb.table().ChooseHost(10, 0), 1u);
  EXPECT_EQ(lb.table().ChooseHost(10, 1), 0u);
  EXPECT_EQ(lb.table().ChooseHost(10, 2), 5u);  // Envoy: exhausted 2 retries give :95.

  EXPECT_EQ(PickWith(lb, PickInputs{.hash = 10, .avoid = [](uint32_t h) { return h == 1; }}), 0u);
  // All avoided: the last of min(6, 10) retries, attempt 6, whose slot
  // follows from Envoy's perturbation formula and Envoy's table.
  const uint64_t perturbed = 10ULL ^ (~0ULL - 6 + 1);
  EXPECT_EQ(PickWith(lb, PickInputs{.hash = 10, .avoid = [](uint32_t) { return true; }}),
            kEnvoyBasicTable[perturbed % 7]);
}

TEST(MaglevTest, EnvoyBasicStabilityIndependentOfHostOrder) {
  std::vector<std::string> keys;
  for (int p = 90; p <= 95; ++p) keys.push_back("127.0.0.1:" + std::to_string(p));
  std::vector<std::string> shuffled = keys;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(42));
  TestHosts a(keys), b(shuffled);
  MaglevStrategy lb_a(a.hosts(), 7, 0), lb_b(b.hosts(), 7, 0);
  for (uint64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(a.key(PickHash(lb_a, i)), b.key(PickHash(lb_b, i))) << i;
  }
}

TEST(MaglevTest, EnvoyWeighted) {
  TestHosts hosts = TestHosts::Loopback(90, 2, {1, 2});
  MaglevStrategy lb(hosts.hosts(), 17, 0);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 6u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 11u);
  const std::vector<uint32_t> expected = {1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1};
  for (uint64_t i = 0; i < 3 * expected.size(); ++i) {
    EXPECT_EQ(PickHash(lb, i), expected[i % expected.size()]) << i;
  }
}

TEST(MaglevTest, DocumentedOneToTwoSplitOfDefaultTable) {
  TestHosts hosts = TestHosts::Loopback(90, 2, {1, 2});
  MaglevStrategy lb(hosts.hosts(), 65537, 0);
  EXPECT_EQ(lb.table().entries_per_host(), (std::vector<uint64_t>{21846, 43691}));
  // The stored table agrees with the counts.
  uint64_t host1 = 0;
  for (uint64_t s = 0; s < 65537; ++s) host1 += lb.table().SlotHost(s) == 1;
  EXPECT_EQ(host1, 43691u);
}

TEST(MaglevTest, SingleHost) {
  TestHosts hosts = TestHosts::Loopback(90, 1, {7});
  MaglevStrategy lb(hosts.hosts(), 17, 0);
  // As Envoy's degenerate single-host table.
  EXPECT_EQ(lb.Stats().min_entries_per_host, 1u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 1u);
  for (uint64_t i = 0; i < 17; ++i) EXPECT_EQ(PickHash(lb, i), 0u);
  EXPECT_EQ(PickWith(lb, PickInputs{.hash = 3, .avoid = [](uint32_t) { return true; }}), 0u);
}

TEST(MaglevTest, NoHosts) {
  TestHosts none(std::vector<std::string>{});
  MaglevStrategy lb(none.hosts(), 7, 0);
  EXPECT_EQ(PickHash(lb, 1), kNoHost);
}

TEST(MaglevTest, SlotWidthFollowsHostCount) {
  TestHosts few = TestHosts::Loopback(1000, 100);
  MaglevStrategy small(few.hosts(), 65537, 0);
  EXPECT_EQ(small.table().slot_bytes(), 1u);
  // Envoy's compact table for 100 hosts is about 68 KB; one byte a slot.
  EXPECT_LT(small.Stats().memory_bytes, 70000u);
  EXPECT_GE(small.Stats().memory_bytes, 65537u);

  TestHosts many = TestHosts::Loopback(1000, 300);
  MaglevStrategy large(many.hosts(), 65537, 0);
  EXPECT_EQ(large.table().slot_bytes(), 2u);
  // Every host has a place, and the table covers all slots.
  EXPECT_GE(large.Stats().min_entries_per_host, 1u);
  uint64_t total = 0;
  for (uint64_t c : large.table().entries_per_host()) total += c;
  EXPECT_EQ(total, 65537u);
  for (uint64_t s = 0; s < 65537; s += 97) EXPECT_LT(large.table().SlotHost(s), 300u);
}

// Envoy's MaglevTable fill as Envoy writes it: each host's next slot is
// (offset + skip * next) % M, tried one slot at a time.
std::vector<uint32_t> ReferenceMaglev(const std::vector<StrategyHost>& hosts, uint64_t m) {
  struct Entry {
    std::string_view key;
    uint32_t host;
    double weight;
    uint64_t offset, skip, next = 0;
    double target = 0.0;
  };
  double sum = 0.0;
  for (const StrategyHost& h : hosts) sum += h.weight;
  std::vector<Entry> entries;
  double max_weight = 0.0;
  for (uint32_t i = 0; i < hosts.size(); ++i) {
    const double w = hosts[i].weight / sum;
    max_weight = std::max(max_weight, w);
    entries.push_back({hosts[i].hash_key, i, w, XxHash64(hosts[i].hash_key, 0) % m,
                       XxHash64(hosts[i].hash_key, 1) % (m - 1) + 1});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.key, a.host) < std::tie(b.key, b.host);
  });
  std::vector<uint32_t> table(m, kNoHost);
  for (uint64_t filled = 0, iteration = 1; filled < m; ++iteration) {
    for (Entry& e : entries) {
      if (filled == m) break;
      if (iteration * e.weight < e.target) continue;
      e.target += max_weight;
      uint64_t slot;
      do {
        slot = (e.offset + e.skip * e.next++) % m;
      } while (table[slot] != kNoHost);
      table[slot] = e.host;
      ++filled;
    }
  }
  return table;
}

TEST(MaglevTest, LargeTablesAreEnvoysSlotForSlot) {
  // The build searches several slots of a permutation at once; the table
  // must still be the one Envoy's one-slot search fills, in every width.
  std::mt19937 rng(3);
  for (const uint32_t count : {2u, 100u, 300u}) {
    for (const bool weighted : {false, true}) {
      std::vector<uint32_t> weights(count, 1);
      if (weighted) {
        for (uint32_t& w : weights) w = 1 + rng() % 9;
      }
      TestHosts hosts = TestHosts::Loopback(1000, count, weights);
      for (const uint64_t m : {7ull, 65537ull}) {
        if (count >= m) continue;
        const MaglevTable table(hosts.hosts(), m);
        const std::vector<uint32_t> expected = ReferenceMaglev(hosts.hosts(), m);
        for (uint64_t slot = 0; slot < m; ++slot) {
          ASSERT_EQ(table.SlotHost(slot), expected[slot])
              << count << " hosts, weighted " << weighted << ", M " << m << ", slot " << slot;
        }
      }
    }
  }
}

TEST(MaglevTest, EqualWeightsSpreadEvenly) {
  TestHosts hosts = TestHosts::Loopback(1000, 10);
  MaglevStrategy lb(hosts.hosts(), 65537, 0);
  // Equal weights fill round-robin: counts differ by at most one.
  EXPECT_LE(lb.Stats().max_entries_per_host - lb.Stats().min_entries_per_host, 1u);
}

TEST(MaglevTest, RemovingOneOfNHostsMovesFewKeys) {
  constexpr int kHosts = 10;
  TestHosts before = TestHosts::Loopback(3000, kHosts);
  std::vector<std::string> keys;
  for (int i = 0; i < kHosts; ++i) {
    if (i != 3) keys.push_back(before.key(i));
  }
  TestHosts after(keys);
  MaglevStrategy a(before.hosts(), 65537, 0), b(after.hosts(), 65537, 0);
  std::mt19937_64 rng(8);
  constexpr int kKeys = 50000;
  int moved = 0, removed_keys = 0;
  for (int i = 0; i < kKeys; ++i) {
    const uint64_t key = rng();
    const std::string& was = before.key(PickHash(a, key));
    const std::string& now = after.key(PickHash(b, key));
    removed_keys += was == before.key(3);
    moved += was != now;
  }
  // Every key of the removed host moves; in total fewer than 2/N do.
  EXPECT_GE(moved, removed_keys);
  EXPECT_NEAR(removed_keys / double(kKeys), 1.0 / kHosts, 0.02);
  EXPECT_LT(moved / double(kKeys), 2.0 / kHosts);
}

}  // namespace
}  // namespace picker::core
