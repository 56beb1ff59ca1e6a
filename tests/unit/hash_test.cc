#include "server/core/hash/hash.h"

#include <functional>
#include <random>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace picker::core {
namespace {

TEST(XxHash64Test, PublishedVectors) {
  // Reference values of XXH64 from the xxHash test suite.
  EXPECT_EQ(XxHash64(""), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(XxHash64("a"), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(XxHash64("abc"), 0x44BC2CF5AD770999ULL);
}

TEST(XxHash64Test, SeedChangesTheHash) {
  EXPECT_NE(XxHash64("127.0.0.1:90", 0), XxHash64("127.0.0.1:90", 1));
}

TEST(XxHash64Test, ReproducesEnvoyRingPositions) {
  // Envoy's ring_hash_lb_test Basic: host 127.0.0.1:94 sits at these two
  // positions of a 12-entry ring (2 entries per host).
  const std::set<uint64_t> positions = {XxHash64("127.0.0.1:94_0"), XxHash64("127.0.0.1:94_1")};
  EXPECT_EQ(positions, (std::set<uint64_t>{833437586790550860ULL, 15516499411664133160ULL}));
}

TEST(MurmurHash2Test, EnvoyVector) {
  EXPECT_EQ(MurmurHash2("127.0.0.1:85_0"), 1358027074129602068ULL);
  EXPECT_EQ(MurmurHash2("127.0.0.1:85_0", kMurmurHash2Seed), 1358027074129602068ULL);
}

TEST(MurmurHash2Test, MatchesLibstdcxxStdHashForAllTailLengths) {
  // libstdc++'s std::hash<std::string> is _Hash_bytes with seed 0xc70f6907,
  // which MurmurHash2 must equal byte for byte. Lengths 0..40 cover every
  // tail size and several 8-byte blocks.
  std::mt19937 rng(7);
  for (size_t len = 0; len <= 40; ++len) {
    for (int round = 0; round < 20; ++round) {
      std::string s(len, '\0');
      for (char& c : s) c = static_cast<char>(rng() & 0xff);
      ASSERT_EQ(MurmurHash2(s), std::hash<std::string>{}(s)) << "length " << len;
    }
  }
}

TEST(MurmurHash2Test, SeedMatters) { EXPECT_NE(MurmurHash2("abc", 0), MurmurHash2("abc")); }

}  // namespace
}  // namespace picker::core
