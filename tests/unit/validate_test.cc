#include "server/core/validate.h"

#include <cmath>
#include <limits>

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
  for (StrategyKind kind : {StrategyKind::kRoundRobin, StrategyKind::kLeastRequest,
                            StrategyKind::kRingHash, StrategyKind::kRandom, StrategyKind::kMaglev,
                            StrategyKind::kPeakEwma, StrategyKind::kWeightedRoundRobin}) {
    EXPECT_TRUE(ValidateUpstreamConfig(Named(kind)).ok()) << StrategyName(kind);
  }
}

TEST(ValidateTest, ClientConfigsNameTheirEntry) {
  UpstreamConfig config = Named(StrategyKind::kRoundRobin);
  ClientConfig web;
  web.client.service = "web";
  config.client_configs = {web};
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  web.load_balancer.kind = StrategyKind::kMaglev;
  web.load_balancer.table_size = 100;
  config.client_configs = {web};
  ExpectInvalid(config, "upstream.client_configs[0].load_balancer.maglev.table_size");
  web.load_balancer.table_size = kDefaultMaglevTableSize;
  config.client_configs = {web, web};
  ExpectInvalid(config, "upstream.client_configs[1].client: duplicates client_configs[0]'s");
  config.client_configs[1].client = ClientSelector{};
  ExpectInvalid(config, "upstream.client_configs[1].client: needs a service or tags");
  config.client_configs[1].client = ClientSelector{"", {{"b", "1"}, {"a", "2"}}};
  ExpectInvalid(config, "upstream.client_configs[1].client.tags: keys must be sorted");
  config.client_configs[1].client = ClientSelector{"not a name", {}};
  ExpectInvalid(config, "upstream.client_configs[1].client.service");
  config.client_configs.resize(kMaxClientConfigs + 1, web);
  ExpectInvalid(config, "upstream.client_configs: at most 64 entries");
}

TEST(ValidateTest, TagsAreKongs) {
  UpstreamConfig config = Named(StrategyKind::kRoundRobin);
  config.tags = {"team-a", "prod env"};
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  for (const std::string& bad :
       std::vector<std::string>{"", "a,b", "a/b", std::string(129, 'x'), "a\nb"}) {
    config.tags = {"ok", bad};
    ExpectInvalid(config, "upstream.tags[1]: must be 1 to 128 printable characters");
  }
  config.tags.assign(kMaxTags + 1, "t");
  ExpectInvalid(config, "upstream.tags: at most 64 tags");
  TargetConfig target{.address = "10.0.0.1:80", .tags = {"a/b"}};
  EXPECT_THAT(std::string(ValidateTarget(target, "target").message()), HasSubstr("target.tags[0]"));
}

TEST(ValidateTest, SlowStart) {
  for (StrategyKind kind : {StrategyKind::kRoundRobin, StrategyKind::kLeastRequest}) {
    const std::string field =
        std::string("upstream.load_balancer.") + StrategyName(kind) + ".slow_start_config.";
    UpstreamConfig config = Named(kind);
    config.load_balancer.slow_start.window = Millis(30000);
    EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
    config.load_balancer.slow_start.window = Millis(-1);
    ExpectInvalid(config, field + "slow_start_window");
    config = Named(kind);
    config.load_balancer.slow_start.aggression = -1;
    ExpectInvalid(config, field + "aggression");
    config.load_balancer.slow_start.aggression = std::numeric_limits<double>::infinity();
    ExpectInvalid(config, field + "aggression");
    config = Named(kind);
    config.load_balancer.slow_start.min_weight_percent = 101;
    ExpectInvalid(config, field + "min_weight_percent");
    config.load_balancer.slow_start.min_weight_percent = std::nan("");
    ExpectInvalid(config, field + "min_weight_percent");
    config.load_balancer.slow_start.min_weight_percent = 100;
    EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  }
}

TEST(ValidateTest, PeakEwma) {
  UpstreamConfig config = Named(StrategyKind::kPeakEwma);
  config.load_balancer.choice_count = 1;
  ExpectInvalid(config, "upstream.load_balancer.peak_ewma.choice_count");
  config = Named(StrategyKind::kPeakEwma);
  config.load_balancer.decay_time = Millis(0);
  ExpectInvalid(config, "upstream.load_balancer.peak_ewma.decay_time");
  config = Named(StrategyKind::kPeakEwma);
  config.load_balancer.failure_penalty = Millis(-5);
  ExpectInvalid(config, "upstream.load_balancer.peak_ewma.failure_penalty");
}

TEST(ValidateTest, WeightedRoundRobin) {
  const std::string field = "upstream.load_balancer.weighted_round_robin.";
  UpstreamConfig config = Named(StrategyKind::kWeightedRoundRobin);
  config.load_balancer.blackout_period = Millis(0);  // No blackout: fine.
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  config.load_balancer.blackout_period = Millis(-1);
  ExpectInvalid(config, field + "blackout_period");
  config = Named(StrategyKind::kWeightedRoundRobin);
  config.load_balancer.weight_update_period = Millis(99);  // A58's floor is 100ms.
  ExpectInvalid(config, field + "weight_update_period");
  config.load_balancer.weight_update_period = Millis(100);
  EXPECT_TRUE(ValidateUpstreamConfig(config).ok());
  config.load_balancer.weight_expiration_period = Millis(0);
  ExpectInvalid(config, field + "weight_expiration_period");
  config = Named(StrategyKind::kWeightedRoundRobin);
  config.load_balancer.error_utilization_penalty = -0.5;
  ExpectInvalid(config, field + "error_utilization_penalty");
}

TEST(ValidateTest, ZerosMeanTheDefaultsOfTheNewOptions) {
  UpstreamConfig config = Named(StrategyKind::kWeightedRoundRobin);
  LoadBalancerConfig& lb = config.load_balancer;
  lb.slow_start = {Millis(0), 0, 0};
  lb.decay_time = lb.failure_penalty = lb.weight_expiration_period = lb.weight_update_period =
      lb.blackout_period = Millis(0);
  ReplaceZerosWithDefaults(config);
  EXPECT_EQ(lb.slow_start.aggression, 1.0);
  EXPECT_EQ(lb.slow_start.min_weight_percent, 10);
  EXPECT_EQ(lb.decay_time, Millis(10000));
  EXPECT_EQ(lb.failure_penalty, Millis(1000));
  EXPECT_EQ(lb.weight_expiration_period, Millis(180000));
  EXPECT_EQ(lb.weight_update_period, Millis(1000));
  EXPECT_EQ(lb.blackout_period, Millis(0));  // 0 keeps its meaning: none.
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
