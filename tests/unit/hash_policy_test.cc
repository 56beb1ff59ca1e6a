#include "server/core/hash/hash_policy.h"

#include <map>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "server/core/hash/hash.h"
#include "tests/support/fake_request.h"

namespace picker::core {
namespace {

using testing::FakeRequest;

HashPolicy Header(std::string name, bool terminal = false) {
  HashPolicy p;
  p.kind = HashPolicy::Kind::kHeader;
  p.name = std::move(name);
  p.terminal = terminal;
  return p;
}
HashPolicy Cookie(std::string name, std::optional<Millis> ttl = std::nullopt,
                  std::string path = "") {
  HashPolicy p;
  p.kind = HashPolicy::Kind::kCookie;
  p.name = std::move(name);
  p.cookie_ttl = ttl;
  p.cookie_path = std::move(path);
  return p;
}
HashPolicy SourceIp(bool terminal = false) {
  HashPolicy p;
  p.kind = HashPolicy::Kind::kSourceIp;
  p.terminal = terminal;
  return p;
}
HashPolicy Query(std::string name) {
  HashPolicy p;
  p.kind = HashPolicy::Kind::kQueryParameter;
  p.name = std::move(name);
  return p;
}
HashPolicy Filter(std::string key) {
  HashPolicy p;
  p.kind = HashPolicy::Kind::kFilterState;
  p.name = std::move(key);
  return p;
}

uint64_t Rotl1(uint64_t v) { return (v << 1) | (v >> 63); }

TEST(HashPolicyTest, NoPoliciesNoHash) {
  FakeRequest req;
  EXPECT_FALSE(ComputeRequestHash({}, req, "u", nullptr).has_value());
}

TEST(HashPolicyTest, HeaderIsXxHashOfValue) {
  FakeRequest req;
  req.headers["x-user"] = "42";
  EXPECT_EQ(ComputeRequestHash({Header("x-user")}, req, "u", nullptr), XxHash64("42"));
}

TEST(HashPolicyTest, MissingHeaderGivesNoHash) {
  FakeRequest req;
  req.headers["other"] = "1";
  EXPECT_FALSE(ComputeRequestHash({Header("x-user")}, req, "u", nullptr).has_value());
}

TEST(HashPolicyTest, CombinesWithRotation) {
  FakeRequest req;
  req.headers["a"] = "1";
  req.headers["b"] = "2";
  req.query["q"] = "3";
  const uint64_t expected = Rotl1(Rotl1(XxHash64("1")) ^ XxHash64("2")) ^ XxHash64("3");
  EXPECT_EQ(ComputeRequestHash({Header("a"), Header("b"), Query("q")}, req, "u", nullptr),
            expected);
}

TEST(HashPolicyTest, DuplicatePoliciesDoNotCancel) {
  FakeRequest req;
  req.headers["a"] = "1";
  const auto hash = ComputeRequestHash({Header("a"), Header("a")}, req, "u", nullptr);
  ASSERT_TRUE(hash.has_value());
  EXPECT_NE(*hash, 0u);
  EXPECT_EQ(*hash, Rotl1(XxHash64("1")) ^ XxHash64("1"));
}

TEST(HashPolicyTest, FirstValueIsTakenAsIsEvenAfterMissingPolicies) {
  // A policy that yields nothing leaves no trace: the first value is not
  // rotated.
  FakeRequest req;
  req.headers["b"] = "2";
  EXPECT_EQ(ComputeRequestHash({Header("a"), Header("b")}, req, "u", nullptr), XxHash64("2"));
}

TEST(HashPolicyTest, TerminalStopsOnceAHashExists) {
  FakeRequest req;
  req.headers["a"] = "1";
  req.headers["b"] = "2";
  EXPECT_EQ(ComputeRequestHash({Header("a", /*terminal=*/true), Header("b")}, req, "u", nullptr),
            XxHash64("1"));
}

TEST(HashPolicyTest, TerminalWithoutValueContinues) {
  FakeRequest req;
  req.headers["b"] = "2";
  EXPECT_EQ(ComputeRequestHash({Header("a", /*terminal=*/true), Header("b")}, req, "u", nullptr),
            XxHash64("2"));
}

TEST(HashPolicyTest, TerminalStopsOnAnEarlierPolicysHash) {
  // As Envoy: `terminal && hash` looks at the running hash, so a terminal
  // policy that produced nothing still stops the walk if an earlier policy
  // did.
  FakeRequest req;
  req.headers["a"] = "1";
  req.headers["c"] = "3";
  EXPECT_EQ(ComputeRequestHash({Header("a"), Header("b", /*terminal=*/true), Header("c")}, req, "u",
                               nullptr),
            XxHash64("1"));
}

TEST(HashPolicyTest, CookiePresent) {
  FakeRequest req;
  req.cookies["session"] = "1234567890";
  std::vector<GeneratedCookie> cookies;
  EXPECT_EQ(ComputeRequestHash({Cookie("session", Millis{1000})}, req, "u", &cookies),
            XxHash64("1234567890"));
  EXPECT_TRUE(cookies.empty());
}

TEST(HashPolicyTest, CookieAbsentWithoutTtlGivesNoHash) {
  FakeRequest req;
  req.source_ip = "10.0.0.1";
  std::vector<GeneratedCookie> cookies;
  EXPECT_FALSE(ComputeRequestHash({Cookie("session")}, req, "u", &cookies).has_value());
  EXPECT_TRUE(cookies.empty());
}

// Envoy's rule: a ttl of 0 generates a session cookie (Kong's hash_on
// cookie always does).
TEST(HashPolicyTest, CookieAbsentWithZeroTtlIsASessionCookie) {
  FakeRequest req;
  req.source_ip = "10.0.0.1";
  std::vector<GeneratedCookie> cookies;
  const auto hash = ComputeRequestHash({Cookie("session", Millis{0})}, req, "u", &cookies);
  ASSERT_EQ(cookies.size(), 1u);
  EXPECT_EQ(cookies[0].ttl, Millis{0});
  ASSERT_TRUE(hash.has_value());
  EXPECT_EQ(*hash, XxHash64(cookies[0].value));
}

TEST(HashPolicyTest, CookieAbsentWithTtlIsGenerated) {
  FakeRequest req;
  req.source_ip = "10.0.0.1";
  std::vector<GeneratedCookie> cookies;
  const auto hash = ComputeRequestHash({Cookie("session", Millis{60000}, "/app")}, req,
                                       "example_upstream", &cookies);
  ASSERT_EQ(cookies.size(), 1u);
  const GeneratedCookie& c = cookies[0];
  EXPECT_EQ(c.name, "session");
  EXPECT_EQ(c.ttl, Millis{60000});
  EXPECT_EQ(c.path, "/app");
  // 16 lower-case hex digits, most significant first, of
  // XXH64(source_ip + upstream).
  char expected[17];
  std::snprintf(expected, sizeof(expected), "%016llx",
                static_cast<unsigned long long>(XxHash64("10.0.0.1example_upstream")));
  EXPECT_EQ(c.value, expected);
  EXPECT_EQ(hash, XxHash64(expected));

  // The same client gets the same value and so the same hash.
  std::vector<GeneratedCookie> again;
  EXPECT_EQ(ComputeRequestHash({Cookie("session", Millis{60000}, "/app")}, req, "example_upstream",
                               &again),
            hash);
  EXPECT_EQ(again.at(0).value, c.value);
}

TEST(HashPolicyTest, GeneratedCookieWithoutSourceIpGivesNoHash) {
  FakeRequest req;
  std::vector<GeneratedCookie> cookies;
  EXPECT_FALSE(ComputeRequestHash({Cookie("s", Millis{1000})}, req, "u", &cookies).has_value());
  EXPECT_TRUE(cookies.empty());
}

TEST(HashPolicyTest, GeneratedCookieToleratesNullOutput) {
  FakeRequest req;
  req.source_ip = "10.0.0.1";
  EXPECT_TRUE(ComputeRequestHash({Cookie("s", Millis{1000})}, req, "u", nullptr).has_value());
}

TEST(HashPolicyTest, SourceIpV4AsIs) {
  FakeRequest req;
  req.source_ip = "192.168.1.20";
  EXPECT_EQ(ComputeRequestHash({SourceIp()}, req, "u", nullptr), XxHash64("192.168.1.20"));
}

TEST(HashPolicyTest, SourceIpV6IsCanonicalised) {
  FakeRequest req;
  req.source_ip = "[2001:DB8:0:0:0:0:0:1]";
  EXPECT_EQ(ComputeRequestHash({SourceIp()}, req, "u", nullptr), XxHash64("2001:db8::1"));
  req.source_ip = "2001:db8::1";
  EXPECT_EQ(ComputeRequestHash({SourceIp()}, req, "u", nullptr), XxHash64("2001:db8::1"));
}

TEST(HashPolicyTest, EmptySourceIpGivesNoHash) {
  FakeRequest req;
  EXPECT_FALSE(ComputeRequestHash({SourceIp()}, req, "u", nullptr).has_value());
}

TEST(HashPolicyTest, QueryParameterAndFilterState) {
  FakeRequest req;
  req.query["user"] = "alice";
  req.filter_state["k"] = "v";
  EXPECT_EQ(ComputeRequestHash({Query("user")}, req, "u", nullptr), XxHash64("alice"));
  EXPECT_EQ(ComputeRequestHash({Filter("k")}, req, "u", nullptr), XxHash64("v"));
  EXPECT_FALSE(ComputeRequestHash({Query("other"), Filter("x")}, req, "u", nullptr).has_value());
}

}  // namespace
}  // namespace picker::core
