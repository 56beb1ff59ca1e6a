#include "server/core/validate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace picker::core {
namespace {

using ::testing::HasSubstr;

void ExpectInvalid(const UpstreamConfig& config, const std::string& field) {
  absl::Status status = ValidateUpstreamConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
}

UpstreamConfig Named(StrategyKind kind) {
  UpstreamConfig config;
  config.name = "u";
  config.load_balancer.kind = kind;
  return config;
}

TEST(ValidateTest, DefaultsAreValid) {
  for (StrategyKind kind :
       {StrategyKind::kRoundRobin, StrategyKind::kLeastRequest, StrategyKind::kRingHash,
        StrategyKind::kRandom, StrategyKind::kMaglev}) {
    EXPECT_TRUE(ValidateUpstreamConfig(Named(kind)).ok()) << StrategyName(kind);
  }
}

TEST(ValidateTest, Names) {
  EXPECT_TRUE(ValidateUpstreamName("a.b_c-D9", "name").ok());
  EXPECT_FALSE(ValidateUpstreamName("", "name").ok());
  EXPECT_FALSE(ValidateUpstreamName("bad name!", "name").ok());
  EXPECT_FALSE(ValidateUpstreamName(std::string(129, 'a'), "name").ok());
  EXPECT_TRUE(ValidateUpstreamName(std::string(128, 'a'), "name").ok());
}

TEST(ValidateTest, MaglevTableSize) {
  UpstreamConfig config = Named(StrategyKind::kMaglev);
  config.load_balancer.table_size = 65536;
  ExpectInvalid(config, "upstream.load_balancer.maglev.table_size");
  config.load_balancer.table_size = 5000077;  // Prime, above the limit.
  ExpectInvalid(config, "table_size");
  config.load_balancer.table_size = 5000011;
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  config.load_balancer.table_size = 1;
  ExpectInvalid(config, "table_size");
}

TEST(ValidateTest, RingSizes) {
  UpstreamConfig config = Named(StrategyKind::kRingHash);
  config.load_balancer.max_ring_size = kMaxRingSize + 1;
  ExpectInvalid(config, "upstream.load_balancer.ring_hash.max_ring_size");
  config.load_balancer.max_ring_size = 1024;
  config.load_balancer.min_ring_size = 2048;
  ExpectInvalid(config, "min_ring_size");
}

TEST(ValidateTest, ChoiceCountHasAnUpperBoundForNewWritesOnly) {
  UpstreamConfig config = Named(StrategyKind::kLeastRequest);
  config.load_balancer.choice_count = kMaxChoiceCount;
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  config.load_balancer.choice_count = 4294967295u;
  ExpectInvalid(config, "upstream.load_balancer.least_request.choice_count: must be 2..10");
  config.load_balancer.choice_count = kMaxChoiceCount + 1;
  ExpectInvalid(config, "choice_count");
  // A record an earlier version stored still loads.
  EXPECT_TRUE(ValidateUpstreamConfig(config, Rules::kStored).ok());
  config.load_balancer.choice_count = 1;
  EXPECT_FALSE(ValidateUpstreamConfig(config, Rules::kStored).ok());
}

TEST(ValidateTest, HealthyHttpStatusesAreBounded) {
  UpstreamConfig config = Named(StrategyKind::kRoundRobin);
  config.active.healthy_http_statuses.assign(kMaxHealthyHttpStatuses, 200);
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  config.active.healthy_http_statuses.push_back(200);
  ExpectInvalid(config, "upstream.health_checks.active.healthy_http_statuses: at most 100");
  EXPECT_TRUE(ValidateUpstreamConfig(config, Rules::kStored).ok());
}

TEST(ValidateTest, LeastRequestAndThresholds) {
  UpstreamConfig config = Named(StrategyKind::kLeastRequest);
  config.load_balancer.choice_count = 1;
  ExpectInvalid(config, "upstream.load_balancer.least_request.choice_count");
  config = Named(StrategyKind::kLeastRequest);
  config.load_balancer.active_request_bias = -1;
  ExpectInvalid(config, "active_request_bias");
  config = Named(StrategyKind::kRoundRobin);
  config.panic_threshold_percent = 101;
  ExpectInvalid(config, "upstream.panic_threshold_percent");
  config = Named(StrategyKind::kRingHash);
  config.load_balancer.hash_balance_factor = 99;
  ExpectInvalid(config, "hash_balance_factor");
}

TEST(ValidateTest, HashPolicyNamesRequired) {
  UpstreamConfig config = Named(StrategyKind::kMaglev);
  config.load_balancer.hash_policies.push_back(HashPolicy{.kind = HashPolicy::Kind::kHeader});
  ExpectInvalid(config, "upstream.load_balancer.maglev.hash_policies[0].header.name");
}

TEST(ValidateTest, Primes) {
  EXPECT_TRUE(IsPrime(65537));
  EXPECT_TRUE(IsPrime(5000011));
  EXPECT_FALSE(IsPrime(65535));
  EXPECT_FALSE(IsPrime(1));
  EXPECT_TRUE(IsPrime(2));
}

TEST(ValidateTest, TargetWeight) {
  TargetConfig target{.address = "10.0.0.1:80", .weight = 65536};
  absl::Status status = ValidateTarget(target, "target");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("target.weight"));
  target.weight = 0;
  EXPECT_TRUE(ValidateTarget(target, "target").ok());
}

}  // namespace
}  // namespace picker::core
