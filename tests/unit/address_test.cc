#include "server/core/address.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace picker::core {
namespace {

using ::testing::HasSubstr;

TEST(CanonicalAddressTest, AcceptsAndCanonicalises) {
  EXPECT_EQ(*CanonicalAddress("10.0.0.1:8080", "a"), "10.0.0.1:8080");
  EXPECT_EQ(*CanonicalAddress("[2001:DB8:0:0::1]:8080", "a"), "[2001:db8::1]:8080");
  EXPECT_EQ(*CanonicalAddress("[0:0:0:0:0:0:0:1]:80", "a"), "[::1]:80");
  EXPECT_EQ(*CanonicalAddress("Example.COM:80", "a"), "example.com:80");
  EXPECT_EQ(*CanonicalAddress("svc-1.ns_2.local:65535", "a"), "svc-1.ns_2.local:65535");
  EXPECT_EQ(*CanonicalAddress("10.0.0.1:0080", "a"), "10.0.0.1:80");
}

TEST(CanonicalAddressTest, RejectsWithFieldName) {
  for (const char* bad : {"",
                          "10.0.0.1",
                          "10.0.0.1:",
                          "10.0.0.1:0",
                          "10.0.0.1:65536",
                          "10.0.0.1:-1",
                          "10.0.0.1:+80",
                          "10.0.0.1:8a",
                          "::1:80",
                          "[::1:80",
                          "[zz::1]:80",
                          "[::1]",
                          "[::1]80",
                          "1.2.3:80",
                          "256.1.1.1:80",
                          ":80",
                          "-bad.com:80",
                          "bad-.com:80",
                          "a..b:80",
                          "sp ace:80"}) {
    absl::StatusOr<std::string> result = CanonicalAddress(bad, "target.address");
    ASSERT_FALSE(result.ok()) << bad;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr("target.address")) << bad;
  }
}

TEST(CanonicalIpTest, CompressesIpv6AndKeepsIpv4) {
  EXPECT_EQ(CanonicalIp("10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(CanonicalIp("2001:DB8::0:1"), "2001:db8::1");
  EXPECT_EQ(CanonicalIp("[2001:db8::1]"), "2001:db8::1");
  EXPECT_EQ(CanonicalIp("not-an-ip"), "not-an-ip");
}

}  // namespace
}  // namespace picker::core
