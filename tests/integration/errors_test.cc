// Rejected requests: each gets the contract's status code and a message naming
// the field, and leaves everything stored as it was.
#include <string>

#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

class ErrorsTest : public PickerServerTest {
 protected:
  // An upstream with a known, non-default state to compare against.
  std::string MakeReference() {
    const std::string name = MakeUpstream(
        "ring_hash { min_ring_size: 2048 hash_policies { header { name: 'x-user' } } }",
        {MakeTarget("10.0.0.1:80", 10, "za"), MakeTarget("[2001:db8::1]:443"),
         MakeTarget("example.com:8080", 0)},
        "panic_threshold_percent: 25 lease_ttl { seconds: 30 }");
    return name;
  }
};

// Expects `status` to be `code` with a message containing `field`.
#define EXPECT_REJECTED(status, code_value, field)                                  \
  do {                                                                              \
    const grpc::Status s_ = (status);                                               \
    EXPECT_EQ(s_.error_code(), grpc::StatusCode::code_value) << StatusString(s_);   \
    EXPECT_THAT(s_.error_message(), HasSubstr(field)) << "message names the field"; \
  } while (0)

TEST_F(ErrorsTest, BadTargetAddresses) {
  const std::string name = MakeReference();
  const std::string before = StoredState(name);
  for (const char* address :
       {"10.0.0.9", "10.0.0.9:0", "10.0.0.9:65536", "10.0.0.9:-1", "10.0.0.9:http", "[::1:80",
        "::1:80", "[zz::1]:80", "", ":80", "[::1]", "host name:80", "10.0.0.9:80/path"}) {
    SCOPED_TRACE(std::string("address '") + address + "'");
    EXPECT_REJECTED(PutTarget(name, MakeTarget(address)).status, INVALID_ARGUMENT, "address");
    EXPECT_REJECTED(ReplaceTargets(name, {MakeTarget("10.0.0.1:80"), MakeTarget(address)}).status,
                    INVALID_ARGUMENT, "address");
  }
  EXPECT_EQ(StoredState(name), before);
}

TEST_F(ErrorsTest, PortBoundsAccepted) {
  const std::string name = MakeUpstream("round_robin {}", {});
  EXPECT_OK(PutTarget(name, MakeTarget("10.0.0.1:1")).status);
  EXPECT_OK(PutTarget(name, MakeTarget("10.0.0.1:65535")).status);
  EXPECT_OK(PutTarget(name, MakeTarget("[::1]:80")).status);
  EXPECT_OK(PutTarget(name, MakeTarget("svc-a.default.svc.cluster.local:80")).status);
}

TEST_F(ErrorsTest, WeightOutOfRange) {
  const std::string name = MakeReference();
  const std::string before = StoredState(name);
  EXPECT_REJECTED(PutTarget(name, MakeTarget("10.0.0.9:80", 65536)).status, INVALID_ARGUMENT,
                  "weight");
  // Updating an existing target with a bad weight changes nothing either.
  EXPECT_REJECTED(PutTarget(name, MakeTarget("10.0.0.1:80", 100000)).status, INVALID_ARGUMENT,
                  "weight");
  EXPECT_REJECTED(ReplaceTargets(name, {MakeTarget("10.0.0.1:80", 65536)}).status, INVALID_ARGUMENT,
                  "weight");
  EXPECT_EQ(StoredState(name), before);
  EXPECT_OK(PutTarget(name, MakeTarget("10.0.0.9:80", 65535)).status);
}

TEST_F(ErrorsTest, UnknownUpstreamIsNotFound) {
  const std::string missing = NewName("missing");
  EXPECT_REJECTED(PutTarget(missing, MakeTarget("10.0.0.1:80")).status, NOT_FOUND, missing);
  EXPECT_REJECTED(ListTargets(missing).status, NOT_FOUND, missing);
  EXPECT_REJECTED(GetUpstream(missing).status, NOT_FOUND, missing);
  EXPECT_REJECTED(DeleteUpstream(missing), NOT_FOUND, missing);
  EXPECT_REJECTED(DeleteTarget(missing, "10.0.0.1:80"), NOT_FOUND, missing);
  EXPECT_REJECTED(ReplaceTargets(missing, {MakeTarget("10.0.0.1:80")}).status, NOT_FOUND, missing);
  EXPECT_REJECTED(GetUpstreamHealth(missing).status, NOT_FOUND, missing);
  v1::Upstream update;
  update.set_name(missing);
  EXPECT_REJECTED(UpdateUpstream(update).status, NOT_FOUND, missing);
  // None of them created it.
  EXPECT_CODE(GetUpstream(missing).status, NOT_FOUND);
}

TEST_F(ErrorsTest, UnknownTargetIsNotFound) {
  const std::string name = MakeReference();
  const std::string before = StoredState(name);
  EXPECT_REJECTED(DeleteTarget(name, "10.0.0.77:80"), NOT_FOUND, "10.0.0.77:80");
  EXPECT_EQ(StoredState(name), before);
}

TEST_F(ErrorsTest, DuplicateUpstreamAlreadyExists) {
  const std::string name = MakeReference();
  const std::string before = StoredState(name);
  auto again = CreateUpstreamText("name: '" + name + "' load_balancer { maglev {} }");
  EXPECT_REJECTED(again.status, ALREADY_EXISTS, name);
  EXPECT_EQ(StoredState(name), before);
}

TEST_F(ErrorsTest, InvalidUpstreamNames) {
  auto list_before = ListUpstreams();
  ASSERT_OK(list_before.status);
  for (const std::string& bad : {std::string(""), std::string("bad name!"), std::string(129, 'a'),
                                 std::string("a/b"), std::string("\xc3\xa9t\xc3\xa9")}) {
    SCOPED_TRACE("name '" + bad + "'");
    v1::Upstream upstream;
    upstream.set_name(bad);
    EXPECT_REJECTED(CreateUpstream(upstream).status, INVALID_ARGUMENT, "name");
  }
  auto list_after = ListUpstreams();
  ASSERT_OK(list_after.status);
  for (const auto& u : list_after.value.upstreams()) {
    EXPECT_TRUE(u.name() != "" && u.name() != "bad name!" && u.name().size() <= 128) << u.name();
  }
  // The limits themselves are fine: 128 characters, all allowed punctuation.
  const std::string longest = std::string(128 - 20, 'b') + "._-" + NewName("x").substr(0, 17);
  ASSERT_EQ(longest.size(), 128u);
  v1::Upstream ok;
  ok.set_name(longest);
  EXPECT_OK(CreateUpstream(ok).status);
}

// Creating `text` (name filled in) is rejected naming `field`; so is updating
// an existing upstream to it, which leaves that upstream unchanged.
class ConfigErrorsTest : public ErrorsTest {
 protected:
  void ExpectRejected(const std::string& text, const std::string& field) {
    SCOPED_TRACE("config: " + text);
    v1::Upstream upstream = ParseText<v1::Upstream>(text);
    ExpectRejectedMessage(upstream, field);
  }

  void ExpectRejectedMessage(v1::Upstream upstream, const std::string& field) {
    const std::string fresh = NewName();
    upstream.set_name(fresh);
    auto created = CreateUpstream(upstream);
    EXPECT_REJECTED(created.status, INVALID_ARGUMENT, field);
    EXPECT_CODE(GetUpstream(fresh).status, NOT_FOUND) << "a rejected create stores nothing";

    const std::string reference = MakeReference();
    const std::string before = StoredState(reference);
    upstream.set_name(reference);
    EXPECT_REJECTED(UpdateUpstream(upstream).status, INVALID_ARGUMENT, field);
    EXPECT_EQ(StoredState(reference), before) << "a rejected update changes nothing";
  }
};

TEST_F(ConfigErrorsTest, MaglevTableSize) {
  ExpectRejected("load_balancer { maglev { table_size: 65536 } }", "table_size");  // not prime
  ExpectRejected("load_balancer { maglev { table_size: 5000012 } }", "table_size");
  ExpectRejected("load_balancer { maglev { table_size: 5000077 } }", "table_size");  // prime
  ExpectRejected("load_balancer { maglev { table_size: 1 } }", "table_size");
  ExpectRejected("load_balancer { maglev { table_size: 18446744073709551557 } }", "table_size");
}

TEST_F(ConfigErrorsTest, RingSizes) {
  ExpectRejected("load_balancer { ring_hash { max_ring_size: 8388609 } }", "max_ring_size");
  ExpectRejected("load_balancer { ring_hash { min_ring_size: 8388609 } }", "min_ring_size");
  ExpectRejected("load_balancer { ring_hash { min_ring_size: 2048 max_ring_size: 1024 } }",
                 "ring_size");
  // min > max: the message names min or max.
  v1::Upstream upstream = ParseText<v1::Upstream>(
      "load_balancer { ring_hash { min_ring_size: 2048 max_ring_size: 1024 } }");
  upstream.set_name(NewName());
  auto created = CreateUpstream(upstream);
  EXPECT_CODE(created.status, INVALID_ARGUMENT);
  EXPECT_THAT(created.status.error_message(),
              AnyOf(HasSubstr("min_ring_size"), HasSubstr("max_ring_size")));
  // min 2048 with default max: fine; max 8388608 (the limit): fine.
  EXPECT_OK(CreateUpstreamText("name: '" + NewName() +
                               "' load_balancer { ring_hash { min_ring_size: 2048 } }")
                .status);
  EXPECT_OK(CreateUpstreamText("name: '" + NewName() +
                               "' load_balancer { ring_hash { max_ring_size: 8388608 } }")
                .status);
}

TEST_F(ConfigErrorsTest, LeastRequestOptions) {
  ExpectRejected("load_balancer { least_request { choice_count: 1 } }", "choice_count");
  ExpectRejected("load_balancer { least_request { active_request_bias: -0.5 } }",
                 "active_request_bias");
}

TEST_F(ConfigErrorsTest, PanicThreshold) {
  ExpectRejected("panic_threshold_percent: 101", "panic_threshold_percent");
  ExpectRejected("panic_threshold_percent: 4294967295", "panic_threshold_percent");
}

TEST_F(ConfigErrorsTest, UnknownEnumValues) {
  v1::Upstream upstream;
  upstream.mutable_load_balancer()->mutable_ring_hash()->set_hash_function(
      static_cast<v1::HashFunction>(7));
  ExpectRejectedMessage(upstream, "hash_function");

  v1::Upstream active;
  auto* a = active.mutable_health_checks()->mutable_active();
  a->set_type(static_cast<v1::HealthChecks::Active::Type>(9));
  a->mutable_interval()->set_seconds(10);
  ExpectRejectedMessage(active, "type");
}

TEST_F(ConfigErrorsTest, HashBalanceFactorBelow100) {
  ExpectRejected("load_balancer { ring_hash { hash_balance_factor: 50 } }", "hash_balance_factor");
  ExpectRejected("load_balancer { maglev { hash_balance_factor: 99 } }", "hash_balance_factor");
}

TEST_F(ConfigErrorsTest, HashPolicyWithoutName) {
  ExpectRejected("load_balancer { ring_hash { hash_policies { header { name: '' } } } }", "name");
  ExpectRejected("load_balancer { maglev { hash_policies { header {} } } }", "name");
  ExpectRejected("load_balancer { maglev { hash_policies { cookie {} } } }", "name");
  ExpectRejected("load_balancer { ring_hash { hash_policies { query_parameter {} } } }", "name");
  ExpectRejected("load_balancer { ring_hash { hash_policies { filter_state {} } } }", "key");
}

TEST_F(ConfigErrorsTest, DurationsAndPercentages) {
  ExpectRejected("lease_ttl { nanos: 500000 }", "lease_ttl");  // below 1ms
  ExpectRejected("lease_ttl { seconds: -1 }", "lease_ttl");
  ExpectRejected("health_checks { passive { max_ejection_percent: 101 } }", "max_ejection_percent");
}

TEST_F(ErrorsTest, ReplaceTargetsDuplicatesRejectedAtomically) {
  const std::string name = MakeReference();
  const std::string before = StoredState(name);
  auto replaced = ReplaceTargets(
      name, {MakeTarget("10.0.0.5:80"), MakeTarget("[::1]:80"), MakeTarget("[0:0::1]:80")});
  EXPECT_CODE(replaced.status, INVALID_ARGUMENT);
  EXPECT_THAT(replaced.status.error_message(), AnyOf(HasSubstr("address"), HasSubstr("targets")));
  replaced = ReplaceTargets(name, {MakeTarget("Example.com:80"), MakeTarget("example.COM:80")});
  EXPECT_CODE(replaced.status, INVALID_ARGUMENT);
  // A bad target among good ones: nothing is applied.
  replaced = ReplaceTargets(name, {MakeTarget("10.0.0.5:80"), MakeTarget("10.0.0.6:80", 70000)});
  EXPECT_CODE(replaced.status, INVALID_ARGUMENT);
  EXPECT_EQ(StoredState(name), before);
}

TEST_F(ErrorsTest, RejectedReleaseChangesNothing) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  auto release = Release(name, pick.value.lease_id(), static_cast<v1::ReleaseRequest::Outcome>(9));
  EXPECT_REJECTED(release.status, INVALID_ARGUMENT, "outcome");
  EXPECT_EQ(TotalActive(name), 1);
  auto ok = Release(name, pick.value.lease_id());
  ASSERT_OK(ok.status);
  EXPECT_EQ(ok.value.state(), v1::ReleaseResponse::RELEASED);
}

TEST_F(ErrorsTest, PickWithoutUpstreamIsInvalid) {
  auto pick = Pick(v1::PickRequest());
  EXPECT_THAT(pick.status.error_code(),
              AnyOf(grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND))
      << StatusString(pick.status);
  EXPECT_THAT(pick.status.error_message(), HasSubstr("upstream"));
}

// --- Canonical addresses ---

TEST_F(ErrorsTest, CanonicalAddresses) {
  const std::string name = MakeUpstream("round_robin {}", {});
  auto put = PutTarget(name, MakeTarget("[2001:DB8:0:0::1]:8080", 5, "z6"));
  ASSERT_OK(put.status);
  EXPECT_EQ(put.value.address(), "[2001:db8::1]:8080");
  put = PutTarget(name, MakeTarget("Example.COM:80"));
  ASSERT_OK(put.status);
  EXPECT_EQ(put.value.address(), "example.com:80");
  put = PutTarget(name, MakeTarget("[::FFFF:10.1.2.3]:90"));
  ASSERT_OK(put.status);
  const std::string mapped = put.value.address();

  // Another spelling of the same address updates the same target.
  put = PutTarget(name, MakeTarget("[2001:db8:0000::0:1]:8080", 9));
  ASSERT_OK(put.status);
  EXPECT_EQ(put.value.address(), "[2001:db8::1]:8080");
  EXPECT_EQ(put.value.weight(), 9u);
  EXPECT_EQ(put.value.zone(), "z6");

  auto list = ListTargets(name);
  ASSERT_OK(list.status);
  ASSERT_EQ(list.value.targets_size(), 3);
  EXPECT_EQ(list.value.targets(0).address(), "[2001:db8::1]:8080");
  EXPECT_EQ(list.value.targets(1).address(), "example.com:80");
  EXPECT_EQ(list.value.targets(2).address(), mapped);

  // Pick answers canonical addresses; exclude matches any spelling.
  for (int i = 0; i < 6; ++i) {
    v1::PickRequest request;
    request.set_upstream(name);
    request.add_exclude("[2001:0DB8::0:0:1]:8080");
    request.add_exclude("EXAMPLE.com:80");
    auto pick = Pick(request);
    ASSERT_OK(pick.status);
    EXPECT_EQ(pick.value.target(), mapped);
    ASSERT_OK(Release(name, pick.value.lease_id()).status);
  }
  // SetTargetHealth matches any spelling too.
  auto set = SetTargetHealth(name, "[2001:db8::0:1]:8080", v1::SetTargetHealthRequest::HEALTHY);
  ASSERT_OK(set.status);
  EXPECT_EQ(set.value.target().address(), "[2001:db8::1]:8080");
  ASSERT_OK(
      SetTargetHealth(name, "[2001:db8::0:1]:8080", v1::SetTargetHealthRequest::CLEAR).status);

  // DeleteTarget with another spelling removes it.
  ASSERT_OK(DeleteTarget(name, "[2001:0db8:0:0:0:0:0:1]:8080"));
  ASSERT_OK(DeleteTarget(name, "example.Com:80"));
  list = ListTargets(name);
  ASSERT_OK(list.status);
  ASSERT_EQ(list.value.targets_size(), 1);
  EXPECT_EQ(list.value.targets(0).address(), mapped);
}

TEST_F(ErrorsTest, CanonicalAddressesInReplaceTargets) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("[2001:db8::1]:80", 5)});
  auto replaced =
      ReplaceTargets(name, {MakeTarget("10.0.0.1:80"), MakeTarget("[2001:DB8::0:1]:80", 6)});
  ASSERT_OK(replaced.status);
  ASSERT_EQ(replaced.value.targets_size(), 2);
  EXPECT_EQ(replaced.value.targets(0).address(), "[2001:db8::1]:80")
      << "same canonical address: kept in its place";
  EXPECT_EQ(replaced.value.targets(0).weight(), 6u);
  EXPECT_EQ(replaced.value.targets(1).address(), "10.0.0.1:80");
}

}  // namespace
}  // namespace picker::testing
