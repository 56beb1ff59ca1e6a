#include "server/kong/kong_entities.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace picker::kong {
namespace {

using ::testing::HasSubstr;

KongFields Json(const std::string& text) {
  KongFields body;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &body).ok()) << text;
  return body;
}

KongFields Form(const std::string& text) {
  http::Request request;
  request.body = text;
  request.headers["content-type"] = "application/x-www-form-urlencoded";
  absl::StatusOr<KongFields> body = ParseKongBody(request);
  EXPECT_TRUE(body.ok());
  return *body;
}

std::string Refusal(const KongFields& body) {
  core::UpstreamConfig config = KongDefaultUpstream();
  absl::Status s = ApplyKongUpstream(body, config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(KongEntitiesTest, AlgorithmsMapToStrategies) {
  core::UpstreamConfig config = KongDefaultUpstream();
  EXPECT_EQ(config.load_balancer.kind, core::StrategyKind::kRoundRobin);
  EXPECT_EQ(config.passive.consecutive_failures, 0u);  // Kong's default: off.
  ASSERT_TRUE(ApplyKongUpstream(Json(R"({"algorithm": "least-connections"})"), config).ok());
  EXPECT_EQ(config.load_balancer.kind, core::StrategyKind::kLeastRequest);
  ASSERT_TRUE(
      ApplyKongUpstream(Json(R"({"algorithm": "consistent-hashing", "slots": 100})"), config).ok());
  EXPECT_EQ(config.load_balancer.kind, core::StrategyKind::kRingHash);
  EXPECT_EQ(config.load_balancer.min_ring_size, 100u);
  EXPECT_EQ(config.load_balancer.max_ring_size, 100u);
}

// Kong's fallback is a second policy after a terminal first one; hashing on
// something makes the upstream consistent-hashing.
TEST(KongEntitiesTest, HashOnAndFallbackArePolicies) {
  core::UpstreamConfig config = KongDefaultUpstream();
  ASSERT_TRUE(ApplyKongUpstream(Form("hash_on=header&hash_on_header=X-User&hash_fallback="
                                     "query_arg&hash_fallback_query_arg=user"),
                                config)
                  .ok());
  const auto& policies = config.load_balancer.hash_policies;
  ASSERT_EQ(policies.size(), 2u);
  EXPECT_EQ(config.load_balancer.kind, core::StrategyKind::kRingHash);
  EXPECT_EQ(policies[0].kind, core::HashPolicy::Kind::kHeader);
  EXPECT_EQ(policies[0].name, "x-user");
  EXPECT_TRUE(policies[0].terminal);
  EXPECT_EQ(policies[1].kind, core::HashPolicy::Kind::kQueryParameter);
  EXPECT_EQ(policies[1].name, "user");
  // Written back as Kong shows it.
  http::JsonWriter json;
  WriteKongUpstream(config, {}, json);
  const std::string text = std::move(json).Take();
  EXPECT_THAT(text, HasSubstr(R"("algorithm":"consistent-hashing")"));
  EXPECT_THAT(text, HasSubstr(R"("hash_fallback":"query_arg")"));
  EXPECT_THAT(text, HasSubstr(R"("hash_fallback_query_arg":"user")"));

  // hash_on cookie: Kong sets a session cookie when the request has none.
  config = KongDefaultUpstream();
  ASSERT_TRUE(ApplyKongUpstream(Form("algorithm=consistent-hashing&hash_on=cookie&hash_on_cookie="
                                     "session&hash_on_cookie_path=/app"),
                                config)
                  .ok());
  ASSERT_EQ(config.load_balancer.hash_policies.size(), 1u);
  const core::HashPolicy& cookie = config.load_balancer.hash_policies[0];
  EXPECT_EQ(cookie.kind, core::HashPolicy::Kind::kCookie);
  EXPECT_EQ(cookie.name, "session");
  EXPECT_EQ(cookie.cookie_ttl, std::optional<core::Millis>(core::Millis(0)));
  EXPECT_EQ(cookie.cookie_path, "/app");
}

TEST(KongEntitiesTest, WhatPickerCannotHonourNamesTheField) {
  EXPECT_THAT(Refusal(Json(R"({"algorithm": "latency"})")), HasSubstr("algorithm: 'latency'"));
  EXPECT_THAT(Refusal(Json(R"({"hash_on": "consumer"})")), HasSubstr("hash_on: 'consumer'"));
  EXPECT_THAT(Refusal(Json(R"({"hash_on": "uri_capture"})")), HasSubstr("hash_on: 'uri_capture'"));
  EXPECT_THAT(Refusal(Json(R"({"hash_on": "header"})")),
              HasSubstr("hash_on_header: required field missing"));
  EXPECT_THAT(Refusal(Json(R"({"slots": 9})")), HasSubstr("slots: value should be between 10"));
  EXPECT_THAT(Refusal(Json(R"({"healthchecks": {"threshold": 25}})")),
              HasSubstr("healthchecks.threshold: picker has no such setting"));
  EXPECT_THAT(Refusal(Json(R"({"healthchecks": {"active": {"type": "https"}}})")),
              HasSubstr("healthchecks.active.type: 'https' is not supported"));
  EXPECT_THAT(Refusal(Form("healthchecks.active.healthy.interval=5")),
              HasSubstr("healthchecks.active.healthy.successes: 0 never marks"));
  EXPECT_THAT(Refusal(Json(R"({"tags": ["a/b"]})")), HasSubstr("tags[0]: must be 1 to 128"));
  EXPECT_THAT(Refusal(Json(R"({"tags": 7})")), HasSubstr("tags: expected a set"));
  EXPECT_THAT(Refusal(Json(R"({"colour": "red"})")), HasSubstr("colour: unknown field"));
}

// Kong's defaults are accepted everywhere: a record holding them all, as a
// GET answers it, goes back in unchanged.
TEST(KongEntitiesTest, KongsDefaultsAreAccepted) {
  core::UpstreamConfig config = KongDefaultUpstream();
  config.name = "u";
  http::JsonWriter json;
  WriteKongUpstream(config, {}, json);
  const std::string text = std::move(json).Take();
  KongFields body = Json(text);
  body.mutable_fields()->erase("picker_strategy");
  core::UpstreamConfig again = KongDefaultUpstream();
  ASSERT_TRUE(ApplyKongUpstream(body, again).ok()) << text;
  EXPECT_EQ(again, config);
}

TEST(KongEntitiesTest, HealthchecksMapToPickersChecks) {
  core::UpstreamConfig config = KongDefaultUpstream();
  ASSERT_TRUE(ApplyKongUpstream(Form("healthchecks.active.type=tcp&healthchecks.active.healthy."
                                     "interval=2.5&healthchecks.active.healthy.successes=3&"
                                     "healthchecks.active.unhealthy.http_failures=4&"
                                     "healthchecks.passive.unhealthy.http_failures=6"),
                                config)
                  .ok());
  EXPECT_EQ(config.active.type, core::ActiveHealthConfig::Type::kTcp);
  EXPECT_EQ(config.active.interval, core::Millis(2500));
  EXPECT_EQ(config.active.healthy_successes, 3u);
  EXPECT_EQ(config.active.unhealthy_failures, 4u);
  EXPECT_EQ(config.passive.consecutive_failures, 6u);
}

TEST(KongEntitiesTest, TargetsTakeKongsDefaultPort) {
  auto target = ReadKongTarget(Form("target=Example.COM"), true);
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->address, "example.com:8000");
  target = ReadKongTarget(Form("target=::1&weight=5"), true);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->address, "[::1]:8000");
  EXPECT_EQ(target->weight, 5u);
  EXPECT_THAT(std::string(ReadKongTarget(Form("weight=5"), true).status().message()),
              HasSubstr("target: required field missing"));
}

TEST(KongEntitiesTest, IdsAreStableUuids) {
  EXPECT_EQ(UpstreamId("users"), UpstreamId("users"));
  EXPECT_NE(UpstreamId("users"), UpstreamId("user"));
  EXPECT_NE(TargetId("users", "10.0.0.1:80"), TargetId("users", "10.0.0.2:80"));
  EXPECT_TRUE(LooksLikeUuid(UpstreamId("users")));
  EXPECT_EQ(UpstreamId("users")[14], '8');  // RFC 9562 version 8.
  EXPECT_FALSE(LooksLikeUuid("users"));
}

}  // namespace
}  // namespace picker::kong
