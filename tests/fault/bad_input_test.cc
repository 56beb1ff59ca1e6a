// Bad input (issue #8 point 7): a table of malformed requests, each with the
// gRPC status it must get. After every row the stored state is unchanged
// and the server still answers. Also: every admin change leaves an audit
// line in the server's log.
#include <cmath>
#include <future>
#include <limits>
#include <set>

#include <grpcpp/generic/generic_stub.h>

#include "tests/fault/fault_util.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::grpc::StatusCode;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

constexpr int kMaxMessageBytes = 1 << 20;
constexpr int kMaxTargets = 50;

// --- Raw protobuf wire format, for what generated stubs refuse to send ---

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
// A length-delimited field (string, bytes or message).
std::string Field(int number, const std::string& payload) {
  return Varint(static_cast<uint64_t>(number) << 3 | 2) + Varint(payload.size()) + payload;
}

// A unary call with raw request bytes.
grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  return done.get_future().get();
}

const char kInvalidUtf8[] = "\xff\xfe\xc3\x28";

class BadInputTest : public PickerServerTest {
 public:
  static void SetUpTestSuite() {
    ServerOptions options;
    options.extra_args = {"--drain-timeout-ms=1000",
                          "--max-message-bytes=" + std::to_string(kMaxMessageBytes),
                          "--max-targets-per-upstream=" + std::to_string(kMaxTargets)};
    StartServer(options);
  }

 protected:
  // Every upstream name the server has.
  std::set<std::string> UpstreamNames() {
    std::set<std::string> names;
    auto list = ListUpstreams();
    EXPECT_OK(list.status);
    for (const auto& u : list.value.upstreams()) names.insert(u.name());
    return names;
  }

  // The server answers on both listeners.
  ::testing::AssertionResult Alive() {
    for (const auto& channel : {server()->data_channel(), server()->admin_channel()}) {
      auto health = Health::NewStub(channel);
      HealthCheckResponse response;
      const grpc::Status status = health->Check(Ctx().get(), HealthCheckRequest(), &response);
      if (!status.ok() || response.status() != HealthCheckResponse::SERVING) {
        return ::testing::AssertionFailure()
               << "health: " << StatusString(status) << " " << response.status();
      }
    }
    return ::testing::AssertionSuccess();
  }

  v1::Upstream UpstreamText(const std::string& text) {
    v1::Upstream u = ParseText<v1::Upstream>(text);
    u.set_name(NewName("new"));
    return u;
  }
  grpc::Status Create(const std::string& text) { return CreateUpstream(UpstreamText(text)).status; }
  grpc::Status CreateNamed(const std::string& name) {
    v1::Upstream u;
    u.set_name(name);
    return CreateUpstream(u).status;
  }
  grpc::Status Update(const std::string& name, const std::string& text) {
    v1::Upstream u = ParseText<v1::Upstream>(text);
    u.set_name(name);
    return UpdateUpstream(u).status;
  }
  grpc::Status Put(const std::string& upstream, const v1::Target& target) {
    return PutTarget(upstream, target).status;
  }
  grpc::Status Replace(const std::string& upstream, const std::vector<v1::Target>& targets) {
    return ReplaceTargets(upstream, targets).status;
  }
  grpc::Status SetHealth(const std::string& upstream, const std::string& address, int value) {
    return SetTargetHealth(upstream, address,
                           static_cast<v1::SetTargetHealthRequest::Override>(value))
        .status;
  }
  grpc::Status PickWith(const std::function<void(v1::PickRequest&)>& fill) {
    v1::PickRequest request;
    fill(request);
    return Pick(request).status;
  }
  grpc::Status ReleaseWith(const std::function<void(v1::ReleaseRequest&)>& fill) {
    v1::ReleaseRequest request;
    fill(request);
    v1::ReleaseResponse response;
    return picker_->Release(Ctx().get(), request, &response);
  }
  // One PickStream message; the per-message code, as a status.
  grpc::Status StreamPick(const v1::PickRequest& pick) {
    auto ctx = Ctx();
    auto stream = picker_->PickStream(ctx.get());
    v1::PickStreamRequest request;
    request.set_request_id(7);
    *request.mutable_pick() = pick;
    v1::PickStreamResponse response;
    if (!stream->Write(request) || !stream->Read(&response)) {
      stream->WritesDone();
      return stream->Finish();
    }
    // The stream survives a bad message: a good pick still works on it.
    v1::PickStreamRequest good;
    good.set_request_id(8);
    good.mutable_pick()->set_upstream(base_);
    v1::PickStreamResponse good_response;
    if (!stream->Write(good) || !stream->Read(&good_response) || good_response.code() != 0) {
      ADD_FAILURE() << "the stream did not survive a bad pick: " << good_response.message();
    }
    stream->WritesDone();
    const grpc::Status finished = stream->Finish();
    if (!finished.ok()) ADD_FAILURE() << "stream finish: " << StatusString(finished);
    return grpc::Status(static_cast<StatusCode>(response.code()), response.message());
  }

  std::string base_;
};

struct Row {
  std::string what;
  std::vector<StatusCode> want;  // one code, except where the contract allows two
  std::function<grpc::Status()> call;
};

TEST_F(BadInputTest, EveryRowGetsItsCodeAndChangesNothing) {
  // The reference upstream every row may try to damage: two targets, one
  // with a manual override.
  base_ =
      MakeUpstream("ring_hash { min_ring_size: 64 hash_policies { header { name: 'x-user' } } }",
                   {MakeTarget("10.0.0.1:80", 10, "z1"), MakeTarget("[2001:db8::1]:443", 20)});
  ASSERT_OK(
      SetTargetHealth(base_, "[2001:db8::1]:443", v1::SetTargetHealthRequest::UNHEALTHY).status);
  const std::string& b = base_;
  const std::string missing = NewName("missing");
  const std::string u64max = "18446744073709551615";
  const std::string i64max = "9223372036854775807";
  const StatusCode kInvalid = StatusCode::INVALID_ARGUMENT;
  const StatusCode kNotFound = StatusCode::NOT_FOUND;
  const StatusCode kExhausted = StatusCode::RESOURCE_EXHAUSTED;
  // protobuf rejects a proto3 string that is not UTF-8 while parsing; picker
  // parses requests itself and answers INVALID_ARGUMENT, as for bytes that
  // are no message (RequestsThatDoNotParse below has the messages).
  const StatusCode kUnparsable = StatusCode::INVALID_ARGUMENT;
  std::vector<v1::Target> too_many;
  for (int i = 0; i <= kMaxTargets; ++i) {
    too_many.push_back(MakeTarget("10.9.0." + std::to_string(i + 1) + ":80"));
  }
  std::string policies17;
  for (int i = 0; i < 17; ++i) policies17 += "hash_policies { header { name: 'h' } } ";

  const std::vector<Row> rows = {
      // --- CreateUpstream: names ---
      {"create: empty name", {kInvalid}, [&] { return CreateNamed(""); }},
      {"create: name of 129 chars", {kInvalid}, [&] { return CreateNamed(std::string(129, 'a')); }},
      {"create: name of 512 KiB",
       {kInvalid},
       [&] { return CreateNamed(std::string(512 << 10, 'a')); }},
      {"create: request over --max-message-bytes",
       {kExhausted},
       [&] { return CreateNamed(std::string(2 * kMaxMessageBytes, 'a')); }},
      {"create: name with quote and newline", {kInvalid}, [&] { return CreateNamed("a\"\nb"); }},
      {"create: name with NUL", {kInvalid}, [&] { return CreateNamed(std::string("a\0b", 3)); }},
      {"create: non-ASCII name", {kInvalid}, [&] { return CreateNamed("caf\xc3\xa9"); }},
      {"raw: valid GetUpstream (checks the raw path itself)",
       {StatusCode::OK},
       [&] {
         return RawUnary(server()->admin_channel(), "/picker.v1.Admin/GetUpstream", Field(1, b));
       }},
      {"create: name not UTF-8",
       {kUnparsable},
       [&] {
         return RawUnary(server()->admin_channel(), "/picker.v1.Admin/CreateUpstream",
                         Field(1, Field(1, kInvalidUtf8)));
       }},
      {"create: garbage bytes",
       {kUnparsable},
       [&] {
         return RawUnary(server()->admin_channel(), "/picker.v1.Admin/CreateUpstream",
                         "\xff\xff\xff\xff");
       }},
      // --- CreateUpstream: numbers ---
      {"create: panic threshold 101",
       {kInvalid},
       [&] { return Create("panic_threshold_percent: 101"); }},
      {"create: panic threshold 2^32-1",
       {kInvalid},
       [&] { return Create("panic_threshold_percent: 4294967295"); }},
      {"create: negative lease_ttl",
       {kInvalid},
       [&] { return Create("lease_ttl { seconds: -1 }"); }},
      {"create: lease_ttl negative nanos",
       {kInvalid},
       [&] { return Create("lease_ttl { nanos: -1 }"); }},
      {"create: lease_ttl of int64 max seconds",
       {kInvalid},
       [&] { return Create("lease_ttl { seconds: " + i64max + " }"); }},
      {"create: lease_ttl of int64 min seconds",
       {kInvalid},
       [&] { return Create("lease_ttl { seconds: -9223372036854775808 }"); }},
      {"create: lease_ttl nanos out of range (2e9)",
       {kInvalid},
       [&] { return Create("lease_ttl { nanos: 2000000000 }"); }},
      {"create: lease_ttl below 1 ms",
       {kInvalid},
       [&] { return Create("lease_ttl { nanos: 1000 }"); }},
      {"create: choice_count 1",
       {kInvalid},
       [&] { return Create("load_balancer { least_request { choice_count: 1 } }"); }},
      {"create: negative active_request_bias",
       {kInvalid},
       [&] { return Create("load_balancer { least_request { active_request_bias: -1 } }"); }},
      {"create: NaN active_request_bias",
       {kInvalid},
       [&] { return Create("load_balancer { least_request { active_request_bias: nan } }"); }},
      {"create: infinite active_request_bias",
       {kInvalid},
       [&] { return Create("load_balancer { least_request { active_request_bias: inf } }"); }},
      {"create: min_ring_size > max_ring_size",
       {kInvalid},
       [&] {
         return Create("load_balancer { ring_hash { min_ring_size: 2000 max_ring_size: 1000 } }");
       }},
      {"create: max_ring_size 2^64-1",
       {kInvalid},
       [&] { return Create("load_balancer { ring_hash { max_ring_size: " + u64max + " } }"); }},
      {"create: maglev table_size not prime",
       {kInvalid},
       [&] { return Create("load_balancer { maglev { table_size: 65536 } }"); }},
      {"create: maglev table_size 2^64-1",
       {kInvalid},
       [&] { return Create("load_balancer { maglev { table_size: " + u64max + " } }"); }},
      {"create: hash_balance_factor 99",
       {kInvalid},
       [&] { return Create("load_balancer { maglev { hash_balance_factor: 99 } }"); }},
      {"create: passive max_ejection_percent 101",
       {kInvalid},
       [&] { return Create("health_checks { passive { max_ejection_percent: 101 } }"); }},
      {"create: passive max_ejection_time < base",
       {kInvalid},
       [&] {
         return Create(
             "health_checks { passive { base_ejection_time { seconds: 10 } max_ejection_time { "
             "seconds: 1 } } }");
       }},
      {"create: active interval negative",
       {kInvalid},
       [&] { return Create("health_checks { active { interval { seconds: -5 } } }"); }},
      {"create: active timeout over a year",
       {kInvalid},
       [&] { return Create("health_checks { active { timeout { seconds: " + i64max + " } } }"); }},
      {"create: active http_path without '/'",
       {kInvalid},
       [&] { return Create("health_checks { active { http_path: 'health' } }"); }},
      {"create: active healthy_http_statuses 600",
       {kInvalid},
       [&] { return Create("health_checks { active { healthy_http_statuses: 600 } }"); }},
      {"create: active healthy_successes 256",
       {kInvalid},
       [&] { return Create("health_checks { active { healthy_successes: 256 } }"); }},
      {"create: 17 hash policies (limit 16)",
       {kExhausted},
       [&] { return Create("load_balancer { ring_hash { " + policies17 + "} }"); }},
      // --- CreateUpstream: enums and oneofs ---
      {"create: unknown hash_function 99",
       {kInvalid},
       [&] { return Create("load_balancer { ring_hash { hash_function: 99 } }"); }},
      {"create: negative hash_function",
       {kInvalid},
       [&] { return Create("load_balancer { ring_hash { hash_function: -1 } }"); }},
      {"create: unknown active type 42",
       {kInvalid},
       [&] { return Create("health_checks { active { type: 42 } }"); }},
      {"create: hash policy with no type",
       {kInvalid},
       [&] { return Create("load_balancer { maglev { hash_policies { terminal: true } } }"); }},
      {"create: header policy without name",
       {kInvalid},
       [&] { return Create("load_balancer { maglev { hash_policies { header { } } } }"); }},
      {"create: connection policy source_ip false",
       {kInvalid},
       [&] { return Create("load_balancer { maglev { hash_policies { connection { } } } }"); }},
      {"create: cookie ttl negative",
       {kInvalid},
       [&] {
         return Create(
             "load_balancer { maglev { hash_policies { cookie { name: 'c' ttl { seconds: -1 } } } "
             "} }");
       }},
      // --- CreateUpstream: the reference one again ---
      {"create: duplicate of an existing upstream",
       {StatusCode::ALREADY_EXISTS},
       [&] { return CreateNamed(b); }},
      // --- UpdateUpstream ---
      {"update: bad table size on the reference",
       {kInvalid},
       [&] { return Update(b, "load_balancer { maglev { table_size: 4 } }"); }},
      {"update: nanos out of range on the reference",
       {kInvalid},
       [&] { return Update(b, "lease_ttl { seconds: 1 nanos: 1000000000 }"); }},
      {"update: unknown upstream", {kNotFound}, [&] { return Update(missing, ""); }},
      {"update: empty name", {kInvalid}, [&] { return Update("", ""); }},
      // --- DeleteUpstream ---
      {"delete upstream: empty name", {kInvalid}, [&] { return DeleteUpstream(""); }},
      {"delete upstream: bad characters", {kInvalid}, [&] { return DeleteUpstream("../" + b); }},
      {"delete upstream: unknown", {kNotFound}, [&] { return DeleteUpstream(missing); }},
      // --- PutTarget: addresses ---
      {"put: empty address", {kInvalid}, [&] { return Put(b, MakeTarget("")); }},
      {"put: no port", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5")); }},
      {"put: no host", {kInvalid}, [&] { return Put(b, MakeTarget(":80")); }},
      {"put: port 0", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5:0")); }},
      {"put: port 65536", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5:65536")); }},
      {"put: port 2^64",
       {kInvalid},
       [&] { return Put(b, MakeTarget("10.0.0.5:18446744073709551616")); }},
      {"put: negative port", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5:-1")); }},
      {"put: port with sign", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5:+80")); }},
      {"put: port with letters", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5:80x")); }},
      {"put: port with trailing space",
       {kInvalid},
       [&] { return Put(b, MakeTarget("10.0.0.1:80 ")); }},
      {"put: port with trailing newline",
       {kInvalid},
       [&] { return Put(b, MakeTarget("10.0.0.1:80\n")); }},
      {"put: IPv4 octet 256", {kInvalid}, [&] { return Put(b, MakeTarget("256.0.0.1:80")); }},
      {"put: IPv4 with 3 parts", {kInvalid}, [&] { return Put(b, MakeTarget("1.2.3:80")); }},
      {"put: IPv6 without brackets", {kInvalid}, [&] { return Put(b, MakeTarget("::1:80")); }},
      {"put: IPv6 without port", {kInvalid}, [&] { return Put(b, MakeTarget("[::1]")); }},
      {"put: IPv6 without ':' before port",
       {kInvalid},
       [&] { return Put(b, MakeTarget("[::1]80")); }},
      {"put: IPv6 unclosed bracket", {kInvalid}, [&] { return Put(b, MakeTarget("[::1:80")); }},
      {"put: IPv6 bad hex", {kInvalid}, [&] { return Put(b, MakeTarget("[::g]:80")); }},
      {"put: IPv6 too many groups",
       {kInvalid},
       [&] { return Put(b, MakeTarget("[1:2:3:4:5:6:7:8:9]:80")); }},
      {"put: IPv6 with zone id",
       {kInvalid},
       [&] { return Put(b, MakeTarget("[fe80::1%eth0]:80")); }},
      {"put: IPv4 in brackets", {kInvalid}, [&] { return Put(b, MakeTarget("[10.0.0.1]:80")); }},
      {"put: empty brackets", {kInvalid}, [&] { return Put(b, MakeTarget("[]:80")); }},
      {"put: host with space", {kInvalid}, [&] { return Put(b, MakeTarget("my host:80")); }},
      {"put: host label starting with '-'",
       {kInvalid},
       [&] { return Put(b, MakeTarget("-a.example:80")); }},
      {"put: empty label", {kInvalid}, [&] { return Put(b, MakeTarget("a..example:80")); }},
      {"put: label of 64 chars",
       {kInvalid},
       [&] { return Put(b, MakeTarget(std::string(64, 'a') + ".example:80")); }},
      {"put: host of 254 chars",
       {kInvalid},
       [&] {
         std::string host;
         while (host.size() < 254) host += "abcdefghi.";
         return Put(b, MakeTarget(host.substr(0, 254) + ":80"));
       }},
      {"put: address of 512 KiB",
       {kInvalid},
       [&] { return Put(b, MakeTarget(std::string(512 << 10, '1') + ":80")); }},
      {"put: address not UTF-8",
       {kUnparsable},
       [&] {
         return RawUnary(server()->admin_channel(), "/picker.v1.Admin/PutTarget",
                         Field(1, b) + Field(2, Field(1, std::string(kInvalidUtf8) + ":80")));
       }},
      // --- PutTarget: other fields ---
      {"put: weight 65536", {kInvalid}, [&] { return Put(b, MakeTarget("10.0.0.5:80", 65536)); }},
      {"put: weight 2^32-1 on an existing target",
       {kInvalid},
       [&] { return Put(b, MakeTarget("10.0.0.1:80", 4294967295u)); }},
      {"put: zone of 257 chars",
       {kInvalid},
       [&] { return Put(b, MakeTarget("10.0.0.1:80", std::nullopt, std::string(257, 'z'))); }},
      {"put: hash_key of 1025 chars",
       {kInvalid},
       [&] {
         v1::Target t = MakeTarget("10.0.0.1:80");
         t.set_hash_key(std::string(1025, 'k'));
         return Put(b, t);
       }},
      {"put: unknown upstream",
       {kNotFound},
       [&] { return Put(missing, MakeTarget("10.0.0.5:80")); }},
      {"put: empty upstream name",
       {kInvalid, kNotFound},
       [&] { return Put("", MakeTarget("10.0.0.5:80")); }},
      // --- DeleteTarget ---
      {"delete target: malformed address", {kInvalid}, [&] { return DeleteTarget(b, "nope"); }},
      {"delete target: unknown target",
       {kNotFound},
       [&] { return DeleteTarget(b, "10.0.0.99:80"); }},
      {"delete target: unknown upstream",
       {kNotFound},
       [&] { return DeleteTarget(missing, "10.0.0.1:80"); }},
      // --- ReplaceTargets ---
      {"replace: duplicate address",
       {kInvalid},
       [&] {
         return Replace(b, {MakeTarget("10.0.0.7:80"), MakeTarget("10.0.0.7:80")});
       }},
      {"replace: duplicate after IPv6 canonicalisation",
       {kInvalid},
       [&] {
         return Replace(b, {MakeTarget("[2001:db8::7]:80"), MakeTarget("[2001:DB8:0:0::7]:80")});
       }},
      {"replace: duplicate after host name lower-casing",
       {kInvalid},
       [&] {
         return Replace(b, {MakeTarget("svc.example:80"), MakeTarget("SVC.Example:80")});
       }},
      {"replace: one malformed address among good ones",
       {kInvalid},
       [&] {
         return Replace(b, {MakeTarget("10.0.0.7:80"), MakeTarget("10.0.0.8")});
       }},
      {"replace: one weight out of range",
       {kInvalid},
       [&] {
         return Replace(b, {MakeTarget("10.0.0.7:80"), MakeTarget("10.0.0.8:80", 70000)});
       }},
      {"replace: over --max-targets-per-upstream",
       {kExhausted},
       [&] { return Replace(b, too_many); }},
      {"replace: unknown upstream",
       {kNotFound},
       [&] { return Replace(missing, {MakeTarget("10.0.0.7:80")}); }},
      // --- SetTargetHealth ---
      {"set health: OVERRIDE_UNSPECIFIED",
       {kInvalid},
       [&] { return SetHealth(b, "10.0.0.1:80", 0); }},
      {"set health: unknown override 99",
       {kInvalid},
       [&] { return SetHealth(b, "10.0.0.1:80", 99); }},
      {"set health: negative override",
       {kInvalid},
       [&] { return SetHealth(b, "10.0.0.1:80", -1); }},
      {"set health: malformed address", {kInvalid}, [&] { return SetHealth(b, "10.0.0.1", 3); }},
      {"set health: unknown target", {kNotFound}, [&] { return SetHealth(b, "10.0.0.99:80", 3); }},
      // --- Reads with bad names ---
      {"get: empty name", {kInvalid}, [&] { return GetUpstream("").status; }},
      {"get: name of 129 chars",
       {kInvalid},
       [&] { return GetUpstream(std::string(129, 'a')).status; }},
      {"list targets: bad name", {kInvalid}, [&] { return ListTargets("a b").status; }},
      {"health: unknown upstream", {kNotFound}, [&] { return GetUpstreamHealth(missing).status; }},
      // --- Pick ---
      {"pick: empty upstream",
       {kInvalid, kNotFound},
       [&] { return PickWith([](v1::PickRequest&) {}); }},
      {"pick: unknown upstream",
       {kNotFound},
       [&] { return PickWith([&](v1::PickRequest& r) { r.set_upstream(missing); }); }},
      {"pick: malformed exclude",
       {kInvalid},
       [&] {
         return PickWith([&](v1::PickRequest& r) {
           r.set_upstream(b);
           r.add_exclude("10.0.0.1");
         });
       }},
      {"pick: upstream not UTF-8",
       {kUnparsable},
       [&] {
         return RawUnary(server()->data_channel(), "/picker.v1.Picker/Pick",
                         Field(1, kInvalidUtf8));
       }},
      {"pick: header value not UTF-8",
       {kUnparsable},
       [&] {
         // attributes.headers is map<string,string>: entry {key=1, value=2}.
         return RawUnary(
             server()->data_channel(), "/picker.v1.Picker/Pick",
             Field(1, b) + Field(2, Field(1, Field(1, "x-user") + Field(2, kInvalidUtf8))));
       }},
      {"pick: request over --max-message-bytes",
       {kExhausted},
       [&] {
         return PickWith([&](v1::PickRequest& r) {
           r.set_upstream(b);
           r.set_client_zone(std::string(2 * kMaxMessageBytes, 'z'));
         });
       }},
      {"pick stream: malformed exclude (per-message code)",
       {kInvalid},
       [&] {
         v1::PickRequest pick;
         pick.set_upstream(b);
         pick.add_exclude("[::1");
         return StreamPick(pick);
       }},
      {"pick stream: unknown upstream (per-message code)",
       {kNotFound},
       [&] {
         v1::PickRequest pick;
         pick.set_upstream(missing);
         return StreamPick(pick);
       }},
      // --- Release ---
      {"release: lease_id 0",
       {kInvalid},
       [&] { return ReleaseWith([&](v1::ReleaseRequest& r) { r.set_upstream(b); }); }},
      {"release: lease never issued (2^64-1)",
       {kNotFound},
       [&] {
         return ReleaseWith([&](v1::ReleaseRequest& r) {
           r.set_upstream(b);
           r.set_lease_id(std::numeric_limits<uint64_t>::max());
         });
       }},
      {"release: unknown outcome 99",
       {kInvalid},
       [&] {
         return ReleaseWith([&](v1::ReleaseRequest& r) {
           r.set_upstream(b);
           r.set_lease_id(1);
           r.set_outcome(static_cast<v1::ReleaseRequest::Outcome>(99));
         });
       }},
      {"release: negative latency",
       {kInvalid},
       [&] {
         return ReleaseWith([&](v1::ReleaseRequest& r) {
           r.set_upstream(b);
           r.set_lease_id(1);
           r.mutable_latency()->set_seconds(-1);
         });
       }},
      {"release: latency of int64 max seconds",
       {kInvalid},
       [&] {
         return ReleaseWith([&](v1::ReleaseRequest& r) {
           r.set_upstream(b);
           r.set_lease_id(1);
           r.mutable_latency()->set_seconds(std::numeric_limits<int64_t>::max());
         });
       }},
      {"release: latency nanos out of range",
       {kInvalid},
       [&] {
         return ReleaseWith([&](v1::ReleaseRequest& r) {
           r.set_upstream(b);
           r.set_lease_id(1);
           r.mutable_latency()->set_nanos(std::numeric_limits<int32_t>::max());
         });
       }},
  };

  const std::string before = StoredState(b);
  const std::set<std::string> names_before = UpstreamNames();
  ASSERT_TRUE(Alive());
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    const grpc::Status status = row.call();
    bool expected = false;
    for (StatusCode code : row.want) expected = expected || status.error_code() == code;
    std::string want;
    for (StatusCode code : row.want) want += StatusString(grpc::Status(code, "")) + " ";
    EXPECT_TRUE(expected) << row.what << ": got " << StatusString(status) << ", want " << want;
    // A rejected request names what was wrong (the field or the value),
    // except where gRPC itself answered (a request over the size limit).
    if (!status.ok() && row.want[0] != kExhausted) {
      EXPECT_FALSE(status.error_message().empty()) << row.what;
    }
    ASSERT_TRUE(Alive()) << "after " << row.what;
    EXPECT_EQ(StoredState(b), before) << "after " << row.what;
    EXPECT_EQ(UpstreamNames(), names_before) << "after " << row.what;
  }
  // The reference upstream still picks, and never the target held down.
  auto pick = Pick(b);
  ASSERT_OK(pick.status);
  EXPECT_EQ(pick.value.target(), "10.0.0.1:80");
  ASSERT_OK(Release(b, pick.value.lease_id()).status);
}

// Every admin change, accepted or rejected, leaves one audit line naming
// the method, the upstream, the result and the peer; reads leave none.
// A request that does not parse gets INVALID_ARGUMENT saying why (gRPC's own
// handlers would answer UNIMPLEMENTED, or end a stream with OK). A C++
// client sends a proto3 string that is not UTF-8 if it is given one
// (protobuf only logs it), as when it passes on a Latin-1 header value.
TEST_F(BadInputTest, RequestsThatDoNotParse) {
  const size_t log_before = server()->Log().size();
  const std::string upstream =
      MakeUpstream("ring_hash { min_ring_size: 64 hash_policies { header { name: 'x-user' } } }",
                   {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  v1::PickRequest latin1;
  latin1.set_upstream(upstream);
  (*latin1.mutable_attributes()->mutable_headers())["x-user"] = "jos\xe9";

  const Result<v1::PickResponse> pick = Pick(latin1);
  EXPECT_CODE(pick.status, INVALID_ARGUMENT);
  EXPECT_EQ(pick.status.error_message(),
            "request: not a valid picker.v1.PickRequest: String field "
            "'picker.v1.RequestAttributes.HeadersEntry.value' contains invalid UTF-8 data");
  const grpc::Status garbage =
      RawUnary(server()->data_channel(), "/picker.v1.Picker/Release", "\xff\xff\xff\xff");
  EXPECT_CODE(garbage, INVALID_ARGUMENT);
  EXPECT_EQ(garbage.error_message(),
            "request: not a valid picker.v1.ReleaseRequest (malformed protobuf encoding)");

  // On a stream: the picks before it are answered, then the stream ends
  // with the message's number, and the lease it held is abandoned.
  auto ctx = Ctx();
  auto stream = picker_->PickStream(ctx.get());
  v1::PickStreamRequest request;
  request.set_request_id(1);
  request.mutable_pick()->set_upstream(upstream);
  v1::PickStreamResponse response;
  ASSERT_TRUE(stream->Write(request) && stream->Read(&response));
  ASSERT_EQ(response.code(), 0) << response.message();
  const uint64_t lease = response.pick().lease_id();
  request.set_request_id(2);
  *request.mutable_pick() = latin1;
  stream->Write(request);
  EXPECT_FALSE(stream->Read(&response)) << "answered a message that does not parse";
  const grpc::Status ended = stream->Finish();
  EXPECT_CODE(ended, INVALID_ARGUMENT);
  EXPECT_EQ(ended.error_message(),
            "message 2: not a valid picker.v1.PickStreamRequest: String field "
            "'picker.v1.RequestAttributes.HeadersEntry.value' contains invalid UTF-8 data");
  v1::ReleaseRequest release;
  release.set_upstream(upstream);
  release.set_lease_id(lease);
  v1::ReleaseResponse released;
  EXPECT_OK(picker_->Release(Ctx().get(), release, &released));
  EXPECT_EQ(released.state(), v1::ReleaseResponse::ALREADY_RELEASED)
      << "the stream's lease was not abandoned when it ended";

  // Admin: the same answer, and a write that does not parse is audited
  // like any refused one.
  v1::CreateUpstreamRequest create;
  create.mutable_upstream()->set_name("caf\xe9");
  v1::Upstream created;
  const grpc::Status refused = admin_->CreateUpstream(Ctx().get(), create, &created);
  EXPECT_CODE(refused, INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(),
            "request: not a valid picker.v1.CreateUpstreamRequest: String field "
            "'picker.v1.Upstream.name' contains invalid UTF-8 data");
  const grpc::Status list_garbage =
      RawUnary(server()->admin_channel(), "/picker.v1.Admin/ListTargets", "\x0a\x05ab");
  EXPECT_CODE(list_garbage, INVALID_ARGUMENT);
  EXPECT_EQ(list_garbage.error_message(),
            "request: not a valid picker.v1.ListTargetsRequest (malformed protobuf encoding)");
  ASSERT_TRUE(WaitUntil(
      [&] {
        return server()->Log().find(
                   "audit method=CreateUpstream upstream=\"\" "
                   "result=INVALID_ARGUMENT",
                   log_before) != std::string::npos;
      },
      std::chrono::seconds(5)))
      << server()->Log().substr(log_before);

  // protobuf's complaint went to the client, not to the server's log.
  const std::string log = server()->Log().substr(log_before);
  EXPECT_EQ(log.find("libprotobuf"), std::string::npos) << log;
  EXPECT_TRUE(Alive());
}

TEST_F(BadInputTest, EveryAdminChangeIsAudited) {
  const std::string name = NewName("audited");
  const std::string before = server()->Log();
  const size_t offset = before.size();
  struct Call {
    const char* method;
    const char* result;
    std::function<grpc::Status()> call;
  };
  const std::vector<Call> calls = {
      {"CreateUpstream", "OK", [&] { return CreateNamed(name); }},
      {"CreateUpstream", "ALREADY_EXISTS", [&] { return CreateNamed(name); }},
      {"UpdateUpstream", "OK", [&] { return Update(name, "load_balancer { random {} }"); }},
      {"UpdateUpstream", "INVALID_ARGUMENT",
       [&] { return Update(name, "panic_threshold_percent: 101"); }},
      {"PutTarget", "OK", [&] { return Put(name, MakeTarget("10.0.0.1:80")); }},
      {"PutTarget", "INVALID_ARGUMENT", [&] { return Put(name, MakeTarget("10.0.0.1")); }},
      {"ReplaceTargets", "OK",
       [&] {
         return Replace(name, {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
       }},
      {"ReplaceTargets", "INVALID_ARGUMENT",
       [&] {
         return Replace(name, {MakeTarget("10.0.0.3:80"), MakeTarget("10.0.0.3:80")});
       }},
      {"SetTargetHealth", "OK", [&] { return SetHealth(name, "10.0.0.2:80", 3); }},
      {"SetTargetHealth", "NOT_FOUND", [&] { return SetHealth(name, "10.0.0.9:80", 3); }},
      {"DeleteTarget", "OK", [&] { return DeleteTarget(name, "10.0.0.2:80"); }},
      {"DeleteTarget", "NOT_FOUND", [&] { return DeleteTarget(name, "10.0.0.2:80"); }},
      {"DeleteUpstream", "OK", [&] { return DeleteUpstream(name); }},
      {"DeleteUpstream", "NOT_FOUND", [&] { return DeleteUpstream(name); }},
  };
  for (const Call& c : calls) {
    const grpc::Status status = c.call();
    EXPECT_EQ(status.ok(), std::string(c.result) == "OK")
        << c.method << ": " << StatusString(status);
  }
  // Reads: not audited.
  EXPECT_CODE(GetUpstream(name).status, NOT_FOUND);
  EXPECT_OK(ListUpstreams().status);

  // The log is written by another process: wait for the last line.
  const std::string last = "audit method=DeleteUpstream upstream=\"" + name + "\" result=NOT_FOUND";
  ASSERT_TRUE(WaitUntil([&] { return server()->Log().find(last, offset) != std::string::npos; },
                        std::chrono::seconds(5)))
      << server()->Log().substr(offset);
  const std::string log = server()->Log().substr(offset);
  const auto audit = LinesWith(log, {"audit method=", "upstream=\"" + name + "\""});
  ASSERT_EQ(audit.size(), calls.size()) << log;
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string want = std::string("audit method=") + calls[i].method + " upstream=\"" +
                             name + "\" result=" + calls[i].result + " peer=ipv4:127.0.0.1:";
    EXPECT_NE(audit[i].find(want), std::string::npos)
        << "line " << i << ": " << audit[i] << "\nwant: " << want;
  }
  EXPECT_TRUE(LinesWith(log, {"method=GetUpstream"}).empty()) << log;
  EXPECT_TRUE(LinesWith(log, {"method=ListUpstreams"}).empty()) << log;
}

// The audit line prints the request's upstream name before validation; it is
// escaped, so a rejected name with a newline cannot write a second, forged
// audit line (here: a DeleteUpstream of another upstream with result=OK).
TEST_F(BadInputTest, AuditLineCannotBeForgedThroughAName) {
  const std::string victim = NewName("victim");
  const size_t offset = server()->Log().size();
  const std::string forged = "audit method=DeleteUpstream upstream=\"" + victim + "\" result=OK";
  const grpc::Status status = CreateNamed("x\"\n" + forged + " peer=ipv4:10.0.0.1:1");
  EXPECT_CODE(status, INVALID_ARGUMENT);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return !LinesWith(server()->Log().substr(offset), {"INVALID_ARGUMENT", "may contain only"})
                    .empty();
      },
      std::chrono::seconds(5)));
  const std::string log = server()->Log().substr(offset);
  // One audit line, of the CreateUpstream; the forged text stays inside its
  // quoted, escaped upstream value.
  const std::vector<std::string> lines = LinesWith(log, {"audit method="});
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_EQ(lines[0].find("audit method="), lines[0].find("audit method=CreateUpstream"))
      << "forged audit line: " << lines[0];
  EXPECT_NE(lines[0].find("upstream=\"x\\\"\\naudit method=DeleteUpstream"), std::string::npos)
      << lines[0];
}

}  // namespace
}  // namespace picker::testing
