#include "server/kong/kong_entities.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "server/core/address.h"
#include "server/core/hash/hash.h"
#include "server/core/validate.h"

namespace picker::kong {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Kong's healthchecks record with its defaults (kong/db/schema/entities/
// upstreams.lua): both kinds of check are off.
constexpr char kDefaultHealthchecks[] = R"({
  "active": {"type": "http", "timeout": 1, "concurrency": 10, "http_path": "/",
             "https_sni": null, "https_verify_certificate": true, "headers": null,
             "healthy": {"interval": 0, "http_statuses": [200, 302], "successes": 0},
             "unhealthy": {"interval": 0, "http_statuses": [429, 404, 500, 501, 502, 503, 504, 505],
                           "tcp_failures": 0, "timeouts": 0, "http_failures": 0}},
  "passive": {"type": "http",
              "healthy": {"http_statuses": [200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                                            300, 301, 302, 303, 304, 305, 306, 307, 308],
                          "successes": 0},
              "unhealthy": {"http_statuses": [429, 500, 503], "tcp_failures": 0, "timeouts": 0,
                            "http_failures": 0}},
  "threshold": 0})";

constexpr const char* kUpstreamFields[] = {"id",
                                           "name",
                                           "algorithm",
                                           "hash_on",
                                           "hash_fallback",
                                           "hash_on_header",
                                           "hash_fallback_header",
                                           "hash_on_cookie",
                                           "hash_on_cookie_path",
                                           "hash_on_query_arg",
                                           "hash_fallback_query_arg",
                                           "hash_on_uri_capture",
                                           "hash_fallback_uri_capture",
                                           "slots",
                                           "healthchecks",
                                           "tags",
                                           "host_header",
                                           "client_certificate",
                                           "use_srv_name",
                                           "created_at",
                                           "updated_at"};

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

Struct DefaultHealthchecks() {
  Struct s;
  (void)google::protobuf::util::JsonStringToMessage(kDefaultHealthchecks, &s);
  return s;
}

// The value at a dotted path of `s`, or null.
const Value* At(const Struct& s, absl::string_view path) {
  const Struct* current = &s;
  const Value* found = nullptr;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (current == nullptr) return nullptr;
    auto it = current->fields().find(std::string(part));
    if (it == current->fields().end()) return nullptr;
    found = &it->second;
    current = found->has_struct_value() ? &found->struct_value() : nullptr;
  }
  return found;
}

bool IsNull(const Value* v) { return v == nullptr || v->has_null_value(); }

// A string field: absent keeps `out`; null or "" clears it.
absl::Status String(const Struct& body, absl::string_view field, std::string& out) {
  const Value* v = At(body, field);
  if (v == nullptr) return absl::OkStatus();
  if (v->has_null_value()) {
    out.clear();
    return absl::OkStatus();
  }
  if (!v->has_string_value()) return Invalid(field, "expected a string");
  out = v->string_value();
  return absl::OkStatus();
}

// A number given as JSON or as a form's text.
absl::StatusOr<double> Number(const Value& v, absl::string_view field) {
  double d = 0;
  if (v.has_number_value()) return v.number_value();
  if (v.has_string_value() && absl::SimpleAtod(v.string_value(), &d)) return d;
  return Invalid(field, "expected a number");
}

absl::StatusOr<std::optional<int64_t>> Integer(const Struct& body, absl::string_view field,
                                               int64_t min, int64_t max) {
  const Value* v = At(body, field);
  if (IsNull(v)) return std::nullopt;
  absl::StatusOr<double> d = Number(*v, field);
  if (!d.ok()) return d.status();
  if (*d != std::floor(*d)) return Invalid(field, "expected an integer");
  if (*d < static_cast<double>(min) || *d > static_cast<double>(max)) {
    return Invalid(field, absl::StrCat("value should be between ", min, " and ", max));
  }
  return static_cast<int64_t>(*d);
}

// A value in one canonical spelling, so that a form's "10" equals JSON's 10.
std::string Canonical(const Value& v) {
  if (v.has_string_value()) {
    double d = 0;
    if (absl::SimpleAtod(v.string_value(), &d)) return absl::StrCat(d);
    return absl::StrCat("\"", v.string_value(), "\"");
  }
  if (v.has_number_value()) return absl::StrCat(v.number_value());
  if (v.has_list_value()) {
    std::vector<std::string> items;
    for (const Value& item : v.list_value().values()) items.push_back(Canonical(item));
    return absl::StrCat("[", absl::StrJoin(items, ","), "]");
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(v, &json);
  return json;
}

// Every leaf of `given` that `mapped` does not name must hold Kong's default:
// picker has no such knob, and a value would otherwise be dropped.
absl::Status OnlyDefaults(const Struct& given, const Struct& defaults, const std::string& prefix,
                          const std::vector<std::string>& mapped) {
  for (const auto& [key, value] : given.fields()) {
    const std::string field = prefix.empty() ? key : absl::StrCat(prefix, ".", key);
    auto it = defaults.fields().find(key);
    if (it == defaults.fields().end()) return Invalid(field, "unknown field");
    if (value.has_struct_value() && it->second.has_struct_value()) {
      if (absl::Status s =
              OnlyDefaults(value.struct_value(), it->second.struct_value(), field, mapped);
          !s.ok()) {
        return s;
      }
      continue;
    }
    if (std::find(mapped.begin(), mapped.end(), field) != mapped.end()) continue;
    if (Canonical(value) != Canonical(it->second)) {
      return Invalid(field, absl::StrCat("picker has no such setting and takes only Kong's "
                                         "default here (",
                                         Canonical(it->second), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string UpstreamId(absl::string_view upstream) { return TargetId(upstream, ""); }

std::string TargetId(absl::string_view upstream, absl::string_view address) {
  const std::string key = absl::StrCat(upstream, "\n", address);
  const uint64_t hi = core::XxHash64(key, 0x6b6f6e67);  // Two seeds: 128 bits.
  const uint64_t lo = core::XxHash64(key, 0x7069636b);
  // RFC 9562's version 8 (custom) and variant bits.
  const uint64_t a = (hi & ~0xf000ull) | 0x8000ull;
  const uint64_t b = (lo & ~(3ull << 62)) | (2ull << 62);
  char text[37];
  std::snprintf(text, sizeof(text), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffull));
  return text;
}

bool LooksLikeUuid(absl::string_view text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !absl::ascii_isxdigit(static_cast<unsigned char>(text[i]))) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<KongFields> ParseKongBody(const http::Request& request) {
  KongFields body;
  if (absl::StrContains(absl::AsciiStrToLower(request.Header("content-type")), "json")) {
    if (request.body.empty()) return body;
    if (!google::protobuf::util::JsonStringToMessage(request.body, &body).ok()) {
      return absl::InvalidArgumentError("body: not a JSON object");
    }
    return body;
  }
  for (const auto& [name, value] : http::ParseFormPairs(request.body)) {
    absl::string_view key = name;
    // Kong's form arrays: `tags[]=a&tags[]=b`, each a value of the list.
    const bool item = absl::ConsumeSuffix(&key, "[]");
    std::vector<std::string> parts = absl::StrSplit(key, '.');
    Struct* at = &body;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      at = (*at->mutable_fields())[parts[i]].mutable_struct_value();
    }
    Value& field = (*at->mutable_fields())[parts.back()];
    if (item) {
      field.mutable_list_value()->add_values()->set_string_value(value);
    } else {
      field.set_string_value(value);
    }
  }
  return body;
}

absl::StatusOr<std::optional<std::vector<std::string>>> ReadKongTags(const KongFields& body) {
  const Value* v = At(body, "tags");
  if (v == nullptr) return std::nullopt;
  std::vector<std::string> tags;
  if (IsNull(v)) return tags;
  if (v->has_string_value()) {  // A form's "a,b" (a tag holds no ',').
    for (absl::string_view tag : absl::StrSplit(v->string_value(), ',', absl::SkipEmpty())) {
      tags.emplace_back(tag);
    }
  } else if (v->has_list_value()) {
    for (const Value& item : v->list_value().values()) {
      if (!item.has_string_value()) return Invalid("tags", "expected a string");
      tags.push_back(item.string_value());
    }
  } else {
    return Invalid("tags", "expected a set");
  }
  if (absl::Status s = core::ValidateTags(tags, "tags"); !s.ok()) {
    const absl::string_view message = s.message();
    const size_t colon = message.find(": ");
    return Invalid(message.substr(0, colon), message.substr(colon + 2));
  }
  return tags;
}

void WriteKongTags(const std::vector<std::string>& tags, http::JsonWriter& json) {
  json.Key("tags");
  if (tags.empty()) {
    json.Null();  // Kong answers null for an entity without tags.
    return;
  }
  json.BeginArray();
  for (const std::string& tag : tags) json.String(tag);
  json.EndArray();
}

void KeepPickersOwnFields(const core::UpstreamConfig& from, core::UpstreamConfig& to) {
  to.client_configs = from.client_configs;
  to.locality_aware = from.locality_aware;
  to.panic_threshold_percent = from.panic_threshold_percent;
  to.lease_ttl = from.lease_ttl;
  to.max_active_requests = from.max_active_requests;
  to.max_active_requests_per_target = from.max_active_requests_per_target;
}

core::UpstreamConfig KongDefaultUpstream() {
  core::UpstreamConfig config;
  config.passive.consecutive_failures = 0;  // Kong's passive counters: 0, off.
  config.active.interval = core::Millis(0);
  return config;
}

namespace {

// The hashing part of a Kong upstream, read from a configuration and
// written back into one.
struct KongHash {
  std::string algorithm;  // "" for a picker strategy Kong has no name for.
  std::string hash_on = "none", hash_fallback = "none";
  std::string on_header, fallback_header, on_cookie, cookie_path = "/";
  std::string on_query_arg, fallback_query_arg;
  int64_t slots = 10000;
};

// Kong's hash_on value of a policy, and the name field it fills.
void ReadPolicy(const core::HashPolicy& p, std::string& on, std::string* header,
                std::string* cookie, std::string* query) {
  using Kind = core::HashPolicy::Kind;
  switch (p.kind) {
    case Kind::kHeader:
      on = "header";
      *header = p.name;
      break;
    case Kind::kCookie:
      on = "cookie";
      if (cookie != nullptr) *cookie = p.name;
      break;
    case Kind::kSourceIp:
      on = "ip";
      break;
    case Kind::kQueryParameter:
      on = "query_arg";
      *query = p.name;
      break;
    case Kind::kFilterState:
      on = "none";  // Not Kong's; shown as none.
      break;
  }
}

KongHash HashOf(const core::LoadBalancerConfig& lb) {
  KongHash h;
  using core::StrategyKind;
  if (lb.kind == StrategyKind::kRoundRobin) h.algorithm = "round-robin";
  if (lb.kind == StrategyKind::kLeastRequest) h.algorithm = "least-connections";
  if (lb.kind == StrategyKind::kRingHash) {
    h.algorithm = "consistent-hashing";
    h.slots = static_cast<int64_t>(lb.min_ring_size);
  }
  if (!lb.hash_policies.empty()) {
    const core::HashPolicy& first = lb.hash_policies[0];
    ReadPolicy(first, h.hash_on, &h.on_header, &h.on_cookie, &h.on_query_arg);
    if (first.kind == core::HashPolicy::Kind::kCookie && !first.cookie_path.empty()) {
      h.cookie_path = first.cookie_path;
    }
  }
  if (lb.hash_policies.size() > 1) {
    ReadPolicy(lb.hash_policies[1], h.hash_fallback, &h.fallback_header, nullptr,
               &h.fallback_query_arg);
  }
  return h;
}

absl::Status OneOf(const std::string& field, const std::string& value,
                   std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (value == a) return absl::OkStatus();
  }
  return Invalid(field, absl::StrCat("expected one of: ", absl::StrJoin(allowed, ", ")));
}

// Kong's values that picker cannot honour: an error saying why.
absl::Status Supported(const std::string& field, const std::string& value) {
  if (value == "consumer" || value == "path" || value == "uri_capture") {
    return Invalid(field, absl::StrCat("'", value,
                                       "' is not supported by picker: a pick carries "
                                       "headers, cookies, query parameters and the client's "
                                       "address, not Kong's ",
                                       value));
  }
  return absl::OkStatus();
}

// Kong's entity checks on the hashing fields (upstreams.lua).
absl::Status CheckHash(const KongHash& h) {
  if (h.algorithm == "latency") {
    return Invalid("algorithm",
                   "'latency' is not supported by picker (its PeakEwma strategy, "
                   "through the gRPC Admin API, balances on latency)");
  }
  for (const auto& [field, value] :
       {std::pair{"hash_on", h.hash_on}, {"hash_fallback", h.hash_fallback}}) {
    if (absl::Status s = OneOf(
            field, value,
            {"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"});
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Supported(field, value); !s.ok()) return s;
  }
  if (h.hash_on == "none" && h.hash_fallback != "none") {
    return Invalid("hash_fallback", "must be 'none' when hash_on is 'none'");
  }
  if (h.hash_on != "none" && h.hash_on == h.hash_fallback && h.hash_on != "header" &&
      h.hash_on != "query_arg") {
    return Invalid("hash_fallback", "must be different from hash_on");
  }
  if (h.hash_on == "cookie" && h.hash_fallback != "none") {
    return Invalid("hash_fallback", "must be 'none' when hash_on is 'cookie'");
  }
  if (h.hash_on != "none" && h.algorithm != "consistent-hashing") {
    return Invalid("hash_on", "needs algorithm 'consistent-hashing'");
  }
  const std::pair<bool, const char*> required[] = {
      {h.hash_on == "header" && h.on_header.empty(), "hash_on_header"},
      {h.hash_fallback == "header" && h.fallback_header.empty(), "hash_fallback_header"},
      {h.hash_on == "cookie" && h.on_cookie.empty(), "hash_on_cookie"},
      {h.hash_on == "query_arg" && h.on_query_arg.empty(), "hash_on_query_arg"},
      {h.hash_fallback == "query_arg" && h.fallback_query_arg.empty(), "hash_fallback_query_arg"}};
  for (const auto& [missing, field] : required) {
    if (missing) return Invalid(field, "required field missing");
  }
  return absl::OkStatus();
}

core::HashPolicy PolicyFor(const std::string& on, const std::string& header,
                           const std::string& cookie, const std::string& query) {
  core::HashPolicy p;
  using Kind = core::HashPolicy::Kind;
  if (on == "header") p = {.kind = Kind::kHeader, .name = absl::AsciiStrToLower(header)};
  if (on == "cookie") p = {.kind = Kind::kCookie, .name = cookie};
  if (on == "ip") p = {.kind = Kind::kSourceIp};
  if (on == "query_arg") p = {.kind = Kind::kQueryParameter, .name = query};
  return p;
}

void WriteHash(const KongHash& h, core::LoadBalancerConfig& lb) {
  using core::StrategyKind;
  // Settings Kong has no field for (the hash function, slow start) stay.
  lb.kind = StrategyKind::kRoundRobin;
  lb.hash_policies.clear();
  if (h.algorithm == "least-connections") lb.kind = StrategyKind::kLeastRequest;
  if (h.algorithm != "consistent-hashing") return;
  lb.kind = StrategyKind::kRingHash;
  lb.min_ring_size = lb.max_ring_size = static_cast<uint64_t>(h.slots);
  if (h.hash_on == "none") return;
  lb.hash_policies.push_back(PolicyFor(h.hash_on, h.on_header, h.on_cookie, h.on_query_arg));
  if (h.hash_on == "cookie") {
    // Kong sets a session cookie on a request that lacks it.
    lb.hash_policies.back().cookie_ttl = core::Millis(0);
    lb.hash_policies.back().cookie_path = h.cookie_path;
  }
  if (h.hash_fallback == "none") return;
  lb.hash_policies.front().terminal = true;
  lb.hash_policies.push_back(
      PolicyFor(h.hash_fallback, h.fallback_header, "", h.fallback_query_arg));
}

bool TouchesHash(const Struct& body) {
  for (const char* f : {"algorithm", "hash_on", "hash_fallback", "hash_on_header",
                        "hash_fallback_header", "hash_on_cookie", "hash_on_cookie_path",
                        "hash_on_query_arg", "hash_fallback_query_arg", "slots"}) {
    if (body.fields().contains(f)) return true;
  }
  return false;
}

absl::Status ApplyHash(const Struct& body, core::LoadBalancerConfig& lb) {
  if (!TouchesHash(body)) return absl::OkStatus();
  KongHash h = HashOf(lb);
  const bool algorithm_given = !IsNull(At(body, "algorithm"));
  const std::pair<const char*, std::string*> strings[] = {
      {"algorithm", &h.algorithm},
      {"hash_on", &h.hash_on},
      {"hash_fallback", &h.hash_fallback},
      {"hash_on_header", &h.on_header},
      {"hash_fallback_header", &h.fallback_header},
      {"hash_on_cookie", &h.on_cookie},
      {"hash_on_cookie_path", &h.cookie_path},
      {"hash_on_query_arg", &h.on_query_arg},
      {"hash_fallback_query_arg", &h.fallback_query_arg}};
  for (const auto& [field, out] : strings) {
    if (absl::Status s = String(body, field, *out); !s.ok()) return s;
  }
  if (h.hash_on.empty()) h.hash_on = "none";
  if (h.hash_fallback.empty()) h.hash_fallback = "none";
  if (h.cookie_path.empty()) h.cookie_path = "/";
  // Kong's shorthand: hashing on something makes the upstream
  // consistent-hashing, hashing on nothing round-robin.
  if (!algorithm_given && body.fields().contains("hash_on")) {
    h.algorithm = h.hash_on == "none" ? "round-robin" : "consistent-hashing";
  }
  // ... and choosing another algorithm drops the hashing it had.
  if (algorithm_given && h.algorithm != "consistent-hashing" &&
      !body.fields().contains("hash_on")) {
    h.hash_on = h.hash_fallback = "none";
  }
  if (h.algorithm.empty()) h.algorithm = "round-robin";
  if (absl::Status s = OneOf("algorithm", h.algorithm,
                             {"consistent-hashing", "least-connections", "round-robin", "latency"});
      !s.ok()) {
    return s;
  }
  auto slots = Integer(body, "slots", 10, 65536);
  if (!slots.ok()) return slots.status();
  if (slots->has_value()) h.slots = **slots;
  if (absl::Status s = CheckHash(h); !s.ok()) return s;
  WriteHash(h, lb);
  return absl::OkStatus();
}

}  // namespace

namespace {

// Seconds as Kong writes them (a number), as picker's milliseconds.
absl::Status Seconds(const Struct& body, absl::string_view field, core::Millis& out) {
  const Value* v = At(body, field);
  if (IsNull(v)) return absl::OkStatus();
  absl::StatusOr<double> d = Number(*v, field);
  if (!d.ok()) return d.status();
  if (*d < 0 || *d > 65535) return Invalid(field, "value should be between 0 and 65535");
  out = core::Millis(static_cast<int64_t>(std::llround(*d * 1000)));
  return absl::OkStatus();
}

absl::Status Counter(const Struct& body, absl::string_view field, uint32_t& out) {
  auto n = Integer(body, field, 0, 255);
  if (!n.ok()) return n.status();
  if (n->has_value()) out = static_cast<uint32_t>(**n);
  return absl::OkStatus();
}

absl::Status Statuses(const Struct& body, absl::string_view field, std::vector<uint32_t>& out) {
  const Value* v = At(body, field);
  if (IsNull(v)) return absl::OkStatus();
  std::vector<uint32_t> statuses;
  auto add = [&](const Value& item) -> absl::Status {
    absl::StatusOr<double> d = Number(item, field);
    if (!d.ok()) return d.status();
    if (*d < 100 || *d > 999) return Invalid(field, "value should be between 100 and 999");
    statuses.push_back(static_cast<uint32_t>(*d));
    return absl::OkStatus();
  };
  if (v->has_list_value()) {
    for (const Value& item : v->list_value().values()) {
      if (absl::Status s = add(item); !s.ok()) return s;
    }
  } else if (v->has_string_value()) {  // A form's "200,302".
    for (absl::string_view part : absl::StrSplit(v->string_value(), ',', absl::SkipEmpty())) {
      Value item;
      item.set_string_value(std::string(part));
      if (absl::Status s = add(item); !s.ok()) return s;
    }
  } else {
    return Invalid(field, "expected an array");
  }
  out = std::move(statuses);
  return absl::OkStatus();
}

// healthchecks.active: one interval for healthy and unhealthy targets.
absl::Status ApplyActive(const Struct& body, core::ActiveHealthConfig& a) {
  std::string type;
  if (absl::Status s = String(body, "healthchecks.active.type", type); !s.ok()) return s;
  if (!type.empty()) {
    if (absl::Status s =
            OneOf("healthchecks.active.type", type, {"tcp", "http", "https", "grpc", "grpcs"});
        !s.ok()) {
      return s;
    }
    if (type == "https" || type == "grpcs") {
      return Invalid("healthchecks.active.type",
                     absl::StrCat("'", type, "' is not supported: picker probes without TLS"));
    }
    a.type = type == "tcp"    ? core::ActiveHealthConfig::Type::kTcp
             : type == "grpc" ? core::ActiveHealthConfig::Type::kGrpc
                              : core::ActiveHealthConfig::Type::kHttp;
  }
  if (absl::Status s = String(body, "healthchecks.active.http_path", a.http_path); !s.ok())
    return s;
  if (absl::Status s = Seconds(body, "healthchecks.active.timeout", a.timeout); !s.ok()) return s;
  core::Millis healthy = a.interval, unhealthy = a.interval;
  if (absl::Status s = Seconds(body, "healthchecks.active.healthy.interval", healthy); !s.ok()) {
    return s;
  }
  if (absl::Status s = Seconds(body, "healthchecks.active.unhealthy.interval", unhealthy);
      !s.ok()) {
    return s;
  }
  if (healthy != unhealthy && healthy.count() > 0 && unhealthy.count() > 0) {
    return Invalid("healthchecks.active.unhealthy.interval",
                   "picker probes healthy and unhealthy targets at one interval: give both the "
                   "same, or one of them");
  }
  a.interval = std::max(healthy, unhealthy);
  if (absl::Status s =
          Statuses(body, "healthchecks.active.healthy.http_statuses", a.healthy_http_statuses);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Counter(body, "healthchecks.active.healthy.successes", a.healthy_successes);
      !s.ok()) {
    return s;
  }
  return Counter(body, "healthchecks.active.unhealthy.http_failures", a.unhealthy_failures);
}

// The Kong fields that map onto picker's checks; every other field of the
// record must hold Kong's default.
const std::vector<std::string>& MappedHealthFields() {
  static const std::vector<std::string> fields = {"healthchecks.active.type",
                                                  "healthchecks.active.http_path",
                                                  "healthchecks.active.timeout",
                                                  "healthchecks.active.healthy.interval",
                                                  "healthchecks.active.unhealthy.interval",
                                                  "healthchecks.active.healthy.http_statuses",
                                                  "healthchecks.active.healthy.successes",
                                                  "healthchecks.active.unhealthy.http_failures",
                                                  "healthchecks.passive.unhealthy.http_failures"};
  return fields;
}

absl::Status ApplyHealthchecks(const Struct& body, core::UpstreamConfig& c) {
  const Value* record = At(body, "healthchecks");
  if (IsNull(record)) return absl::OkStatus();
  if (!record->has_struct_value()) return Invalid("healthchecks", "expected a record");
  if (absl::Status s = OnlyDefaults(record->struct_value(), DefaultHealthchecks(), "healthchecks",
                                    MappedHealthFields());
      !s.ok()) {
    return s;
  }
  // Kong shows the counters of checks that are off as 0 (its defaults);
  // picker keeps its own defaults there.
  const core::ActiveHealthConfig defaults;
  if (c.active.interval.count() == 0) {
    c.active.healthy_successes = c.active.unhealthy_failures = 0;
  }
  if (absl::Status s = ApplyActive(body, c.active); !s.ok()) return s;
  if (c.active.interval.count() == 0) {
    c.active.healthy_successes = defaults.healthy_successes;
    c.active.unhealthy_failures = defaults.unhealthy_failures;
  } else {
    // Kong's 0 in a counter disables it; picker's checks always count both
    // ways, so an enabled check needs both counters.
    if (c.active.healthy_successes == 0) {
      return Invalid("healthchecks.active.healthy.successes",
                     "0 never marks a target healthy again, which picker's active checks do not "
                     "offer: give 1..255");
    }
    if (c.active.unhealthy_failures == 0) {
      return Invalid("healthchecks.active.unhealthy.http_failures",
                     "0 never marks a target unhealthy, which picker's active checks do not "
                     "offer: give 1..255, or interval 0 to turn them off");
    }
  }
  return Counter(body, "healthchecks.passive.unhealthy.http_failures",
                 c.passive.consecutive_failures);
}

}  // namespace

absl::Status ApplyKongUpstream(const KongFields& body, core::UpstreamConfig& config) {
  for (const auto& [key, value] : body.fields()) {
    if (std::find_if(std::begin(kUpstreamFields), std::end(kUpstreamFields),
                     [&](const char* f) { return key == f; }) == std::end(kUpstreamFields)) {
      return Invalid(key, "unknown field");
    }
  }
  if (absl::Status s = String(body, "name", config.name); !s.ok()) return s;
  auto tags = ReadKongTags(body);
  if (!tags.ok()) return tags.status();
  if (*tags) config.tags = **tags;
  for (const char* field :
       {"host_header", "client_certificate", "hash_on_uri_capture", "hash_fallback_uri_capture"}) {
    if (!IsNull(At(body, field))) {
      return Invalid(field, "picker has no such setting (only null is accepted)");
    }
  }
  const Value* srv = At(body, "use_srv_name");
  if (!IsNull(srv) && Canonical(*srv) != "false" && Canonical(*srv) != "\"false\"") {
    return Invalid("use_srv_name", "picker does not resolve SRV records (only false)");
  }
  if (absl::Status s = ApplyHash(body, config.load_balancer); !s.ok()) return s;
  return ApplyHealthchecks(body, config);
}

namespace {

void Set(Struct& s, absl::string_view path, Value value) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  Struct* at = &s;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    at = (*at->mutable_fields())[parts[i]].mutable_struct_value();
  }
  (*at->mutable_fields())[parts.back()] = std::move(value);
}

Value NumberValue(double d) {
  Value v;
  v.set_number_value(d);
  return v;
}

Value StringValue(absl::string_view text) {
  Value v;
  v.set_string_value(std::string(text));
  return v;
}

std::string HealthchecksJson(const core::UpstreamConfig& c) {
  Struct h = DefaultHealthchecks();
  const core::ActiveHealthConfig& a = c.active;
  using Type = core::ActiveHealthConfig::Type;
  Set(h, "active.type",
      StringValue(a.type == Type::kTcp    ? "tcp"
                  : a.type == Type::kGrpc ? "grpc"
                                          : "http"));
  Set(h, "active.http_path", StringValue(a.http_path));
  Set(h, "active.timeout", NumberValue(a.timeout.count() / 1000.0));
  Set(h, "active.healthy.interval", NumberValue(a.interval.count() / 1000.0));
  Set(h, "active.unhealthy.interval", NumberValue(a.interval.count() / 1000.0));
  Value statuses;
  for (uint32_t code : a.healthy_http_statuses) {
    statuses.mutable_list_value()->add_values()->set_number_value(code);
  }
  Set(h, "active.healthy.http_statuses", statuses);
  Set(h, "active.healthy.successes", NumberValue(a.interval.count() > 0 ? a.healthy_successes : 0));
  Set(h, "active.unhealthy.http_failures",
      NumberValue(a.interval.count() > 0 ? a.unhealthy_failures : 0));
  Set(h, "passive.unhealthy.http_failures", NumberValue(c.passive.consecutive_failures));
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(h, &json);
  return json;
}

void StringOrNull(http::JsonWriter& json, const char* key, const std::string& value) {
  json.Key(key);
  if (value.empty()) {
    json.Null();
  } else {
    json.String(value);
  }
}

}  // namespace

void WriteKongTimes(const core::Timestamps& times, http::JsonWriter& json) {
  // Records written before picker kept times have none: null.
  for (auto [key, value] :
       {std::pair{"created_at", times.created_at}, std::pair{"updated_at", times.updated_at}}) {
    json.Key(key);
    if (value > 0) {
      json.Number(value);
    } else {
      json.Null();
    }
  }
}

void WriteKongUpstream(const core::UpstreamConfig& config, const core::Timestamps& times,
                       http::JsonWriter& json) {
  const KongHash h = HashOf(config.load_balancer);
  json.BeginObject();
  json.Key("id").String(UpstreamId(config.name));
  json.Key("name").String(config.name);
  StringOrNull(json, "algorithm", h.algorithm);
  if (h.algorithm.empty()) {
    json.Key("picker_strategy").String(core::StrategyName(config.load_balancer.kind));
  }
  json.Key("hash_on").String(h.hash_on);
  json.Key("hash_fallback").String(h.hash_fallback);
  StringOrNull(json, "hash_on_header", h.on_header);
  StringOrNull(json, "hash_fallback_header", h.fallback_header);
  StringOrNull(json, "hash_on_cookie", h.on_cookie);
  json.Key("hash_on_cookie_path").String(h.cookie_path);
  StringOrNull(json, "hash_on_query_arg", h.on_query_arg);
  StringOrNull(json, "hash_fallback_query_arg", h.fallback_query_arg);
  json.Key("hash_on_uri_capture").Null();
  json.Key("hash_fallback_uri_capture").Null();
  json.Key("slots").Number(h.slots);
  json.Key("healthchecks").Raw(HealthchecksJson(config));
  WriteKongTags(config.tags, json);
  json.Key("host_header").Null();
  json.Key("client_certificate").Null();
  json.Key("use_srv_name").Bool(false);
  WriteKongTimes(times, json);
  json.EndObject();
}

absl::StatusOr<KongTarget> ReadKongTarget(const KongFields& body, bool target_required) {
  for (const auto& [key, value] : body.fields()) {
    if (key != "target" && key != "weight" && key != "tags" && key != "upstream" && key != "id" &&
        key != "created_at" && key != "updated_at") {
      return Invalid(key, "unknown field");
    }
  }
  KongTarget out;
  auto tags = ReadKongTags(body);
  if (!tags.ok()) return tags.status();
  out.tags = *std::move(tags);
  std::string target;
  if (absl::Status s = String(body, "target", target); !s.ok()) return s;
  if (target.empty() && target_required) return Invalid("target", "required field missing");
  if (!target.empty()) {
    // Kong's default port, unless the target names one ("[::1]" and a bare
    // IPv6 address name none).
    const bool bracketed = absl::StartsWith(target, "[");
    const size_t colons = std::count(target.begin(), target.end(), ':');
    const bool has_port = bracketed ? absl::StrContains(target, "]:") : colons == 1;
    if (!has_port) {
      target = colons > 1 && !bracketed ? absl::StrCat("[", target, "]:", kKongDefaultPort)
                                        : absl::StrCat(target, ":", kKongDefaultPort);
    }
    absl::StatusOr<std::string> canonical = core::CanonicalAddress(target, "target");
    if (!canonical.ok()) return canonical.status();
    out.address = *canonical;
  }
  auto weight = Integer(body, "weight", 0, 65535);
  if (!weight.ok()) return weight.status();
  if (weight->has_value()) out.weight = static_cast<uint32_t>(**weight);
  return out;
}

void WriteKongTarget(absl::string_view upstream, const core::TargetConfig& target,
                     const core::Timestamps& times, http::JsonWriter& json) {
  json.BeginObject();
  json.Key("id").String(TargetId(upstream, target.address));
  json.Key("target").String(target.address);
  json.Key("weight").Number(target.weight);
  json.Key("upstream").BeginObject().Key("id").String(UpstreamId(upstream)).EndObject();
  WriteKongTags(target.tags, json);
  WriteKongTimes(times, json);
  json.EndObject();
}

}  // namespace picker::kong
