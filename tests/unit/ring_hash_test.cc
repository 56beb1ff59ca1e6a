#include "server/core/strategy/ring_hash.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
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

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

RingHashStrategy MakeRing(const TestHosts& hosts, uint64_t min_ring, uint64_t max_ring = 8388608,
                          HashFunction fn = HashFunction::kXxHash, uint32_t factor = 0) {
  return RingHashStrategy(hosts.hosts(), min_ring, max_ring, fn, factor);
}

// Envoy ring_hash_lb_test Basic: six hosts 127.0.0.1:90..95, ring of 12.
TEST(RingHashTest, EnvoyBasic) {
  TestHosts hosts = TestHosts::Loopback(90, 6);
  RingHashStrategy lb = MakeRing(hosts, 12);
  const StrategyStats stats = lb.Stats();
  EXPECT_EQ(stats.entries, 12u);
  EXPECT_EQ(stats.min_entries_per_host, 2u);
  EXPECT_EQ(stats.max_entries_per_host, 2u);
  EXPECT_GT(stats.memory_bytes, 0u);

  EXPECT_EQ(PickHash(lb, 0), 4u);
  EXPECT_EQ(PickHash(lb, kMax), 4u);
  EXPECT_EQ(PickHash(lb, 3551244743356806947ULL), 5u);
  EXPECT_EQ(PickHash(lb, 3551244743356806948ULL), 3u);
  EXPECT_EQ(PickHash(lb, 16117243373044804880ULL), 0u);
}

// Envoy BasicWithRetryHostPredicate, on the ring's attempt interface.
TEST(RingHashTest, EnvoyRetryAttemptsWalkTheRing) {
  TestHosts hosts = TestHosts::Loopback(90, 6);
  RingHashStrategy lb = MakeRing(hosts, 12);
  const HashRing& ring = lb.ring();
  EXPECT_EQ(ring.ChooseHost(0, 0), 4u);
  EXPECT_EQ(ring.ChooseHost(0, 1), 2u);   // Second attempt: next entry.
  EXPECT_EQ(ring.ChooseHost(0, 2), 0u);   // Envoy: exhausted 2 retries return :90.
  EXPECT_EQ(ring.ChooseHost(0, 13), 2u);  // Retries wrap around the ring.
}

TEST(RingHashTest, AvoidUsesEnvoysAttemptLoop) {
  TestHosts hosts = TestHosts::Loopback(90, 6);
  RingHashStrategy lb = MakeRing(hosts, 12);
  // Avoiding the first choice gives the next host on the ring.
  EXPECT_EQ(PickWith(lb, PickInputs{.hash = 0, .avoid = [](uint32_t h) { return h == 4; }}), 2u);
  EXPECT_EQ(
      PickWith(lb, PickInputs{.hash = 0, .avoid = [](uint32_t h) { return h == 4 || h == 2; }}),
      0u);
  // Everything avoided: the last candidate of min(6 hosts, 10) retries,
  // i.e. attempt 6, entry (0 + 6) % 12 of Envoy's listed ring, which is :91.
  EXPECT_EQ(PickWith(lb, PickInputs{.hash = 0, .avoid = [](uint32_t) { return true; }}), 1u);
}

TEST(RingHashTest, AvoidFindsAnAllowedHostWhenOneExists) {
  TestHosts hosts = TestHosts::Loopback(1000, 8);
  RingHashStrategy lb = MakeRing(hosts, 1024);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t hash = rng();
    // Avoiding the first choice must always be escaped: with 128 entries
    // per host, some of the next 8 entries belong to another host.
    const uint32_t first = PickHash(lb, hash);
    const uint32_t second =
        PickWith(lb, PickInputs{.hash = hash, .avoid = [&](uint32_t h) { return h == first; }});
    EXPECT_NE(second, first);
  }
}

// Envoy BasicWithMurmur2: hosts 127.0.0.1:80..85.
TEST(RingHashTest, EnvoyBasicWithMurmur2) {
  TestHosts hosts = TestHosts::Loopback(80, 6);
  RingHashStrategy lb = MakeRing(hosts, 12, 8388608, HashFunction::kMurmurHash2);
  EXPECT_EQ(lb.Stats().entries, 12u);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 2u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 2u);
  EXPECT_EQ(PickHash(lb, 0), 5u);
  EXPECT_EQ(PickHash(lb, kMax), 5u);
  EXPECT_EQ(PickHash(lb, 1358027074129602068ULL), 5u);
  EXPECT_EQ(PickHash(lb, 1358027074129602069ULL), 3u);
  EXPECT_EQ(PickHash(lb, 10150910876324007730ULL), 2u);
}

// Envoy BasicWithHostname / BasicWithMetadataHashKey: hash keys "90".."95".
TEST(RingHashTest, EnvoyHashKeys) {
  TestHosts hosts({"90", "91", "92", "93", "94", "95"});
  RingHashStrategy lb = MakeRing(hosts, 12);
  EXPECT_EQ(PickHash(lb, 0), 5u);
  EXPECT_EQ(PickHash(lb, kMax), 5u);
  EXPECT_EQ(PickHash(lb, 7225015537174310577ULL), 2u);
  EXPECT_EQ(PickHash(lb, 6803900775736438537ULL), 3u);
}

// Envoy BasicWithDoundedLoad: the bounded-load wrapper must not change picks
// while nothing is loaded.
TEST(RingHashTest, EnvoyBoundedLoadIdleIsPlainRing) {
  TestHosts hosts({"90", "91", "92", "93", "94", "95"});
  RingHashStrategy lb = MakeRing(hosts, 12, 8388608, HashFunction::kXxHash, 200);
  EXPECT_EQ(PickHash(lb, 0), 5u);
  EXPECT_EQ(PickHash(lb, kMax), 5u);
  EXPECT_EQ(PickHash(lb, 7225015537174310577ULL), 2u);
  EXPECT_EQ(PickHash(lb, 6803900775736438537ULL), 3u);
}

// Envoy UnevenHosts: 2 hosts, minimum ring 3 -> 2 entries each, ring of 4.
TEST(RingHashTest, EnvoyUnevenHosts) {
  TestHosts a = TestHosts::Loopback(80, 2);
  RingHashStrategy lb = MakeRing(a, 3);
  EXPECT_EQ(lb.Stats().entries, 4u);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 2u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 2u);
  EXPECT_EQ(PickHash(lb, 0), 0u);

  TestHosts b = TestHosts::Loopback(81, 2);
  RingHashStrategy lb2 = MakeRing(b, 3);
  EXPECT_EQ(PickHash(lb2, 0), 0u);  // :81
}

// Envoy HostWeightedTinyRing: weights 1, 2, 3 in a ring of exactly 6.
TEST(RingHashTest, EnvoyHostWeightedTinyRing) {
  TestHosts hosts = TestHosts::Loopback(90, 3, {1, 2, 3});
  RingHashStrategy lb = MakeRing(hosts, 6, 6);
  EXPECT_EQ(lb.Stats().entries, 6u);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 1u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 3u);
  const std::map<uint64_t, uint32_t> expected = {
      {928266305478181108ULL, 2},  {4443673547860492590ULL, 2},  {5583722120771150861ULL, 1},
      {6311230543546372928ULL, 1}, {13444792449719432967ULL, 2}, {16117243373044804889ULL, 0}};
  for (const auto& [hash, host] : expected) EXPECT_EQ(PickHash(lb, hash), host) << hash;
}

TEST(RingHashTest, FractionalSharesFollowHostOrder) {
  // The reference's example: 4 equal hosts in a ring capped at 2 entries get
  // 0.5 entry each; the running sums give them to the 1st and 3rd hosts.
  TestHosts hosts = TestHosts::Loopback(90, 4);
  RingHashStrategy lb = MakeRing(hosts, 1, 2);
  EXPECT_EQ(lb.Stats().entries, 2u);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 0u);
  EXPECT_EQ(lb.Stats().max_entries_per_host, 1u);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100; ++i) {
    const uint32_t host = PickHash(lb, rng());
    EXPECT_TRUE(host == 0 || host == 2) << host;
  }
}

// Envoy's ketama search, ported literally, to check the lower_bound lookup
// against it on real rings.
uint32_t KetamaIndex(const std::vector<uint64_t>& ring, uint64_t h) {
  int64_t lowp = 0, highp = static_cast<int64_t>(ring.size()), midp = 0;
  while (true) {
    midp = (lowp + highp) / 2;
    if (midp == static_cast<int64_t>(ring.size())) return 0;
    const uint64_t midval = ring[midp];
    const uint64_t midval1 = midp == 0 ? 0 : ring[midp - 1];
    if (h <= midval && h > midval1) return static_cast<uint32_t>(midp);
    if (midval < h) {
      lowp = midp + 1;
    } else {
      highp = midp - 1;
    }
    if (lowp > highp) return 0;
  }
}

TEST(RingHashTest, LookupAgreesWithKetamaSearch) {
  TestHosts hosts = TestHosts::Loopback(7000, 13, {1, 3, 2, 5, 1, 1, 4, 2, 2, 7, 1, 1, 3});
  RingHashStrategy lb = MakeRing(hosts, 200);
  const std::vector<uint64_t>& ring = lb.ring().hashes();
  ASSERT_EQ(ring.size(), lb.Stats().entries);
  ASSERT_TRUE(std::is_sorted(ring.begin(), ring.end()));
  // Every entry is one of the documented keys of its host.
  for (size_t i = 0; i < ring.size(); ++i) {
    const uint32_t host = lb.ring().hosts()[i];
    bool found = false;
    for (uint64_t k = 0; k <= lb.Stats().max_entries_per_host && !found; ++k) {
      found = XxHash64(hosts.key(host) + "_" + std::to_string(k)) == ring[i];
    }
    ASSERT_TRUE(found) << "entry " << i;
  }

  std::mt19937_64 rng(99);
  for (int i = 0; i < 20000; ++i) {
    uint64_t h = rng();
    if (i % 5 == 0) h = ring[rng() % ring.size()] + (rng() % 3) - 1;  // Near and on entries.
    EXPECT_EQ(PickHash(lb, h), lb.ring().hosts()[KetamaIndex(ring, h)]) << h;
  }
}

// Sorts as a comparison sort would (stable, by hash only) and checks the
// result entry for entry.
void ExpectSortedAsStableSort(std::vector<RingEntry> entries) {
  std::vector<uint64_t> hashes;
  std::vector<uint32_t> hosts;
  SortRingEntries(entries, hashes, hosts);
  std::stable_sort(entries.begin(), entries.end(),
                   [](const RingEntry& a, const RingEntry& b) { return a.hash < b.hash; });
  ASSERT_EQ(hashes.size(), entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    ASSERT_EQ(hashes[i], entries[i].hash) << i;
    ASSERT_EQ(hosts[i], entries[i].host) << i;
  }
}

TEST(RingHashTest, SortRingEntriesSortsSpreadAndClusteredKeys) {
  std::mt19937_64 rng(5);
  for (const size_t n : {0ul, 1ul, 2ul, 7ul, 1000ul, 65600ul}) {
    std::vector<RingEntry> spread(n), clustered(n), repeated(n);
    for (size_t i = 0; i < n; ++i) {
      spread[i] = {rng(), static_cast<uint32_t>(i % 100)};
      // All in one bucket: the fallback sort.
      clustered[i] = {rng() >> 40, static_cast<uint32_t>(i % 100)};
      // Equal hashes keep their input (host) order.
      repeated[i] = {rng() % 3 << 62, static_cast<uint32_t>(i)};
    }
    ExpectSortedAsStableSort(spread);
    ExpectSortedAsStableSort(clustered);
    ExpectSortedAsStableSort(repeated);
  }
}

TEST(RingHashTest, LargeRingHoldsEveryKeyOfEveryHostInOrder) {
  // 100 equal hosts at a minimum of 65536: Envoy's scale gives each host
  // ceil(0.01 * 65536) = 656 entries, "<key>_0" to "<key>_655".
  TestHosts hosts = TestHosts::Loopback(1000, 100);
  RingHashStrategy lb = MakeRing(hosts, 65536);
  std::vector<RingEntry> expected;
  for (uint32_t h = 0; h < 100; ++h) {
    for (int k = 0; k < 656; ++k) {
      expected.push_back({XxHash64(hosts.key(h) + "_" + std::to_string(k)), h});
    }
  }
  std::stable_sort(expected.begin(), expected.end(),
                   [](const RingEntry& a, const RingEntry& b) { return a.hash < b.hash; });
  ASSERT_EQ(lb.ring().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(lb.ring().hashes()[i], expected[i].hash) << i;
    ASSERT_EQ(lb.ring().hosts()[i], expected[i].host) << i;
  }
}

TEST(RingHashTest, WeightsShareTheRing) {
  TestHosts hosts = TestHosts::Loopback(90, 3, {1, 2, 3});
  RingHashStrategy lb = MakeRing(hosts, 1024 * 64);
  std::vector<int> counts(3, 0);
  std::mt19937_64 rng(5);
  constexpr int kPicks = 60000;
  for (int i = 0; i < kPicks; ++i) ++counts[PickHash(lb, rng())];
  EXPECT_NEAR(counts[0] / double(kPicks), 1 / 6.0, 0.02);
  EXPECT_NEAR(counts[1] / double(kPicks), 2 / 6.0, 0.02);
  EXPECT_NEAR(counts[2] / double(kPicks), 3 / 6.0, 0.02);
}

double MovedFraction(const TestHosts& before, const TestHosts& after, uint64_t min_before,
                     uint64_t min_after, uint32_t removed, uint64_t* moved_from_survivors) {
  RingHashStrategy a = MakeRing(before, min_before);
  RingHashStrategy b = MakeRing(after, min_after);
  std::mt19937_64 rng(11);
  constexpr int kKeys = 50000;
  int moved = 0;
  *moved_from_survivors = 0;
  for (int i = 0; i < kKeys; ++i) {
    const uint64_t key = rng();
    const uint32_t was = PickHash(a, key);
    uint32_t now = PickHash(b, key);
    if (now >= removed) ++now;  // Map back to the indices of `before`.
    if (was != now) {
      ++moved;
      if (was != removed) ++*moved_from_survivors;
    }
  }
  return moved / double(kKeys);
}

TEST(RingHashTest, RemovingAHostMovesAboutItsShareWhenEntriesPerHostStay) {
  // With 100 entries per host before and after (min ring 100 * N), only the
  // removed host's keys move: about 1/N.
  TestHosts before = TestHosts::Loopback(2000, 10);
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) {
    if (i != 4) keys.push_back(before.key(i));
  }
  TestHosts after(keys);
  uint64_t from_survivors = 0;
  const double moved = MovedFraction(before, after, 1000, 900, 4, &from_survivors);
  EXPECT_NEAR(moved, 0.1, 0.03);
  EXPECT_EQ(from_survivors, 0u);
}

TEST(RingHashTest, RemovingAHostWithFixedMinimumRingAlsoRegrowsSurvivors) {
  // Envoy's known behaviour (envoy#22558): with a fixed minimum ring size
  // the survivors get more entries each, which also moves some of their
  // keys. Still bounded: about 2/N at most.
  TestHosts before = TestHosts::Loopback(2000, 10);
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) {
    if (i != 4) keys.push_back(before.key(i));
  }
  TestHosts after(keys);
  uint64_t from_survivors = 0;
  const double moved = MovedFraction(before, after, 1024, 1024, 4, &from_survivors);
  EXPECT_GT(moved, 0.07);
  EXPECT_LT(moved, 0.25);
}

TEST(RingHashTest, NoHostsPicksNothing) {
  TestHosts none(std::vector<std::string>{});
  RingHashStrategy lb = MakeRing(none, 1024);
  EXPECT_EQ(PickHash(lb, 1), kNoHost);
  EXPECT_EQ(lb.Stats().entries, 0u);
}

TEST(RingHashTest, DefaultRingSizes) {
  TestHosts hosts = TestHosts::Loopback(90, 3);
  RingHashStrategy lb = MakeRing(hosts, 1024);
  // ceil(1024 / 3) = 342 entries each.
  EXPECT_EQ(lb.Stats().entries, 3u * 342u);
  EXPECT_EQ(lb.Stats().min_entries_per_host, 342u);
  // 8 bytes of hash + 4 bytes of host index per entry, no pointers.
  EXPECT_GE(lb.Stats().memory_bytes, 3u * 342u * 12u);
  EXPECT_LT(lb.Stats().memory_bytes, 3u * 342u * 16u);
}

}  // namespace
}  // namespace picker::core
