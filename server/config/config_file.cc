#include "server/config/config_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/config/mesh_policy.h"
#include "server/core/address.h"
#include "server/core/validate.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace picker::config {
namespace {

// Where a field of the core configuration was set in the file: its node
// and its path as the file spells it (`upstreams[0].leaseTtl`).
struct Origin {
  YAML::Node node;
  std::string path;
};
// Keyed by the field's path in the core types (`lease_ttl`), as core's
// validation names it.
using Origins = std::map<std::string, Origin, std::less<>>;

// "ring_hash" -> "ringHash", per dotted segment.
std::string CamelCase(absl::string_view snake) {
  std::string out;
  bool upper = false;
  for (char c : snake) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? absl::ascii_toupper(c) : c;
    upper = false;
  }
  return out;
}

// The file's `type:` of a strategy: "peak_ewma" -> "PeakEwma". The parser
// and the writer both use it, so every strategy reads back as it was written.
std::string TypeName(core::StrategyKind kind) {
  std::string block = CamelCase(core::StrategyName(kind));
  block[0] = absl::ascii_toupper(block[0]);
  return block;
}

// Carries the file name and the position of a node into error messages.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  absl::Status At(const YAML::Node& node, absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(Where(source_, node), ": ", message));
  }
  absl::Status Error(const YAML::Node& node, absl::string_view field, absl::string_view why) const {
    return At(node, absl::StrCat(field, ": ", why));
  }

  // Fails on keys the schema does not know, so that typos do not pass.
  absl::Status OnlyKeys(const YAML::Node& map, const std::string& field,
                        std::initializer_list<const char*> keys) const {
    if (!map.IsMap()) return Error(map, field, "must be a mapping");
    for (const auto& entry : map) {
      const std::string key = entry.first.as<std::string>();
      bool known = false;
      for (const char* k : keys) known = known || key == k;
      if (!known) return Error(entry.first, absl::StrCat(field, ".", key), "unknown field");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) return Error(node, field, "must be a string");
    return node.as<std::string>();
  }

  absl::StatusOr<uint64_t> Unsigned(const YAML::Node& node, const std::string& field,
                                    uint64_t max) const {
    uint64_t value = 0;
    if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &value)) {
      return Error(node, field, "must be a non-negative integer");
    }
    if (value > max) return Error(node, field, absl::StrCat("must be at most ", max));
    return value;
  }

  absl::StatusOr<double> Number(const YAML::Node& node, const std::string& field) const {
    double value = 0;
    if (!node.IsScalar() || !absl::SimpleAtod(node.Scalar(), &value)) {
      return Error(node, field, "must be a number");
    }
    return value;
  }

  absl::StatusOr<bool> Bool(const YAML::Node& node, const std::string& field) const {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      return Error(node, field, "must be true or false");
    }
    return value;
  }

  // Durations as Go, Kubernetes and Kong Mesh write them: 500ms, 1.5s,
  // 1m30s, 1h; whole milliseconds, at most a year.
  absl::StatusOr<core::Millis> Duration(const YAML::Node& node, const std::string& field) const {
    absl::Duration d;
    if (!node.IsScalar() || !absl::ParseDuration(node.Scalar(), &d) || d < absl::ZeroDuration() ||
        d > absl::Hours(24 * 365) || d % absl::Milliseconds(1) != absl::ZeroDuration()) {
      return Error(node, field,
                   "must be a duration such as 500ms, 1.5s, 1m30s or 1h (whole milliseconds, at "
                   "most a year)");
    }
    return core::Millis(absl::ToInt64Milliseconds(d));
  }

  // A core error, "<prefix><core path>: <why>", reported at the place in
  // the file of the deepest field it is about (or of `fallback`).
  absl::Status AtField(const absl::Status& error, absl::string_view prefix, const Origins& origins,
                       const Origin& fallback) const {
    absl::string_view message = error.message();
    const size_t colon = message.find(": ");
    absl::string_view path = colon == absl::string_view::npos ? "" : message.substr(0, colon);
    if (!absl::ConsumePrefix(&path, prefix)) return At(fallback.node, message);
    const Origin* origin = &fallback;
    absl::string_view rest = path;
    for (absl::string_view key = path; !key.empty();
         key = key.substr(0, std::min(key.rfind('.'), key.size() - 1))) {
      if (auto it = origins.find(key); it != origins.end()) {
        origin = &it->second;
        rest = path.substr(key.size());
        break;
      }
      if (key.find('.') == absl::string_view::npos) break;
    }
    return At(origin->node, absl::StrCat(origin->path, CamelCase(rest), message.substr(colon)));
  }

 private:
  std::string source_;
};

// One mapping of the file beside the core struct it fills: reads its keys
// into fields and notes where each came from.
class Scope {
 public:
  Scope(const Reader& r, YAML::Node map, std::string path, std::string core, Origins& origins)
      : r_(r),
        map_(std::move(map)),
        path_(std::move(path)),
        core_(std::move(core)),
        origins_(origins) {}

  const Reader& r() const { return r_; }
  const YAML::Node& node() const { return map_; }
  const std::string& path() const { return path_; }
  YAML::Node operator[](const char* key) const { return map_[key]; }
  std::string PathOf(absl::string_view key) const { return absl::StrCat(path_, ".", key); }
  std::string CoreOf(absl::string_view key) const {
    return core_.empty() ? std::string(key) : absl::StrCat(core_, ".", key);
  }

  absl::Status Keys(std::initializer_list<const char*> keys) const {
    return r_.OnlyKeys(map_, path_, keys);
  }
  Scope Child(const char* key, absl::string_view core_key) const {
    Note(map_[key], key, core_key);
    return Scope(r_, map_[key], PathOf(key), CoreOf(core_key), origins_);
  }
  // Item `i` of the list at `key`.
  Scope Item(const char* key, size_t i, absl::string_view core_key) const {
    const std::string index = absl::StrCat("[", i, "]");
    Note(map_[key][i], absl::StrCat(key, index), absl::StrCat(core_key, index));
    return Scope(r_, map_[key][i], PathOf(absl::StrCat(key, index)),
                 CoreOf(absl::StrCat(core_key, index)), origins_);
  }
  void Note(const YAML::Node& node, absl::string_view key, absl::string_view core_key) const {
    origins_[CoreOf(core_key)] = Origin{node, PathOf(key)};
  }

  // Reads `key`, when present, with `parse(node, path)` into `out`.
  template <typename T, typename Parse>
  absl::Status Read(const char* key, absl::string_view core_key, T& out, Parse parse) const {
    const YAML::Node n = map_[key];
    if (!n) return absl::OkStatus();
    auto value = parse(n, PathOf(key));
    if (!value.ok()) return value.status();
    out = static_cast<T>(*value);
    Note(n, key, core_key);
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Unsigned(const char* key, absl::string_view core_key, T& out, uint64_t max) const {
    return Read(key, core_key, out,
                [&](const YAML::Node& n, const std::string& p) { return r_.Unsigned(n, p, max); });
  }
  absl::Status Duration(const char* key, absl::string_view core_key, core::Millis& out) const {
    return Read(key, core_key, out,
                [&](const YAML::Node& n, const std::string& p) { return r_.Duration(n, p); });
  }
  absl::Status Bool(const char* key, absl::string_view core_key, bool& out) const {
    return Read(key, core_key, out,
                [&](const YAML::Node& n, const std::string& p) { return r_.Bool(n, p); });
  }
  absl::Status String(const char* key, absl::string_view core_key, std::string& out) const {
    return Read(key, core_key, out,
                [&](const YAML::Node& n, const std::string& p) { return r_.String(n, p); });
  }

 private:
  const Reader& r_;
  const YAML::Node map_;
  const std::string path_;
  const std::string core_;
  Origins& origins_;
};

#define PICKER_RETURN_IF_ERROR(expr)          \
  do {                                        \
    if (absl::Status _s = (expr); !_s.ok()) { \
      return _s;                              \
    }                                         \
  } while (0)

// The policy's own block, e.g. `header: {name: x-user}`, under `type`.
absl::Status HashPolicyOfType(const Scope& s, const std::string& type, core::HashPolicy& p) {
  using Kind = core::HashPolicy::Kind;
  struct Shape {
    const char* type;
    const char* block;
    const char* core_block;
    const char* key;
    Kind kind;
  };
  static constexpr Shape kShapes[] = {
      {"Header", "header", "header", "name", Kind::kHeader},
      {"Cookie", "cookie", "cookie", "name", Kind::kCookie},
      {"QueryParameter", "queryParameter", "query_parameter", "name", Kind::kQueryParameter},
      {"FilterState", "filterState", "filter_state", "key", Kind::kFilterState}};
  for (const Shape& shape : kShapes) {
    if (type != shape.type) continue;
    p.kind = shape.kind;
    if (!s[shape.block] || !s[shape.block][shape.key]) {
      return s.r().Error(s.node(), absl::StrCat(s.PathOf(shape.block), ".", shape.key),
                         "is required");
    }
    const Scope block = s.Child(shape.block, shape.core_block);
    PICKER_RETURN_IF_ERROR(block.Keys(
        p.kind == Kind::kCookie ? std::initializer_list<const char*>{"name", "ttl", "path"}
                                : std::initializer_list<const char*>{shape.key}));
    PICKER_RETURN_IF_ERROR(block.String(shape.key, shape.key, p.name));
    if (p.kind == Kind::kHeader) p.name = absl::AsciiStrToLower(p.name);
    if (block["ttl"]) {
      core::Millis ttl{0};
      PICKER_RETURN_IF_ERROR(block.Duration("ttl", "ttl", ttl));
      p.cookie_ttl = ttl;
    }
    return block.String("path", "path", p.cookie_path);
  }
  if (type == "Connection") {
    p.kind = Kind::kSourceIp;
    const YAML::Node c = s["connection"];
    const char* key = c && c["sourceIp"] ? "sourceIp" : "sourceIP";
    if (!c || !c[key]) return s.r().Error(s.node(), s.PathOf("connection.sourceIP"), "is required");
    bool source_ip = false;
    PICKER_RETURN_IF_ERROR(s.Child("connection", "connection").Bool(key, "source_ip", source_ip));
    if (!source_ip) return s.r().Error(c[key], s.PathOf("connection.sourceIP"), "must be true");
    return absl::OkStatus();
  }
  return s.r().Error(s["type"], s.PathOf("type"),
                     "must be Header, Cookie, Connection, QueryParameter or FilterState");
}

absl::Status HashPolicies(const Scope& parent, std::vector<core::HashPolicy>& out) {
  const YAML::Node list = parent["hashPolicies"];
  if (!list) return absl::OkStatus();
  if (!list.IsSequence()) {
    return parent.r().Error(list, parent.PathOf("hashPolicies"), "must be a list");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const Scope s = parent.Item("hashPolicies", i, "hash_policies");
    PICKER_RETURN_IF_ERROR(s.Keys(
        {"type", "terminal", "header", "cookie", "connection", "queryParameter", "filterState"}));
    core::HashPolicy& policy = out.emplace_back();
    PICKER_RETURN_IF_ERROR(s.Bool("terminal", "terminal", policy.terminal));
    if (!s["type"]) return s.r().Error(s.node(), s.PathOf("type"), "is required");
    std::string type;
    PICKER_RETURN_IF_ERROR(s.String("type", "type", type));
    PICKER_RETURN_IF_ERROR(HashPolicyOfType(s, type, policy));
  }
  return absl::OkStatus();
}

absl::Status HashFunction(const Scope& s, core::HashFunction& out) {
  std::string name;
  PICKER_RETURN_IF_ERROR(s.String("hashFunction", "hash_function", name));
  if (name.empty() || name == "XXHash" || name == "XX_HASH") {
    out = core::HashFunction::kXxHash;
  } else if (name == "MurmurHash2" || name == "MURMUR_HASH_2") {
    out = core::HashFunction::kMurmurHash2;
  } else {
    return s.r().Error(s["hashFunction"], s.PathOf("hashFunction"),
                       "must be XXHash, XX_HASH, MurmurHash2 or MURMUR_HASH_2");
  }
  return absl::OkStatus();
}

absl::Status BalanceFactor(const Scope& s, core::LoadBalancerConfig& lb) {
  if (!s["hashBalanceFactor"]) return absl::OkStatus();
  uint32_t factor = 0;
  PICKER_RETURN_IF_ERROR(s.Unsigned("hashBalanceFactor", "hash_balance_factor", factor, 1u << 20));
  lb.hash_balance_factor = factor;
  return absl::OkStatus();
}

absl::Status Number(const Scope& s, const char* key, absl::string_view core_key, double& out) {
  return s.Read(key, core_key, out,
                [&](const YAML::Node& n, const std::string& p) { return s.r().Number(n, p); });
}

// `slowStartConfig: {slowStartWindow, aggression, minWeightPercent}` under
// roundRobin or leastRequest.
absl::Status SlowStart(const Scope& parent, core::SlowStartConfig& out) {
  if (!parent["slowStartConfig"]) return absl::OkStatus();
  const Scope s = parent.Child("slowStartConfig", "slow_start_config");
  PICKER_RETURN_IF_ERROR(s.Keys({"slowStartWindow", "aggression", "minWeightPercent"}));
  PICKER_RETURN_IF_ERROR(s.Duration("slowStartWindow", "slow_start_window", out.window));
  PICKER_RETURN_IF_ERROR(Number(s, "aggression", "aggression", out.aggression));
  return Number(s, "minWeightPercent", "min_weight_percent", out.min_weight_percent);
}

absl::Status PeakEwmaOptions(const Scope& s, core::LoadBalancerConfig& lb) {
  PICKER_RETURN_IF_ERROR(s.Keys({"choiceCount", "decayTime", "failurePenalty"}));
  PICKER_RETURN_IF_ERROR(s.Unsigned("choiceCount", "choice_count", lb.choice_count, 1u << 16));
  PICKER_RETURN_IF_ERROR(s.Duration("decayTime", "decay_time", lb.decay_time));
  return s.Duration("failurePenalty", "failure_penalty", lb.failure_penalty);
}

absl::Status WeightedRoundRobinOptions(const Scope& s, core::LoadBalancerConfig& lb) {
  PICKER_RETURN_IF_ERROR(s.Keys({"blackoutPeriod", "weightExpirationPeriod", "weightUpdatePeriod",
                                 "errorUtilizationPenalty"}));
  // blackoutPeriod: 0s means no blackout, as in gRPC (absent: 10s).
  PICKER_RETURN_IF_ERROR(s.Duration("blackoutPeriod", "blackout_period", lb.blackout_period));
  PICKER_RETURN_IF_ERROR(s.Duration("weightExpirationPeriod", "weight_expiration_period",
                                    lb.weight_expiration_period));
  PICKER_RETURN_IF_ERROR(
      s.Duration("weightUpdatePeriod", "weight_update_period", lb.weight_update_period));
  return Number(s, "errorUtilizationPenalty", "error_utilization_penalty",
                lb.error_utilization_penalty);
}

// The options block of the strategy `lb.kind`, e.g. `ringHash: {...}`.
absl::Status StrategyOptions(const Scope& s, core::LoadBalancerConfig& lb) {
  switch (lb.kind) {
    case core::StrategyKind::kLeastRequest:
      PICKER_RETURN_IF_ERROR(s.Keys({"choiceCount", "activeRequestBias", "slowStartConfig"}));
      PICKER_RETURN_IF_ERROR(s.Unsigned("choiceCount", "choice_count", lb.choice_count, 1u << 16));
      PICKER_RETURN_IF_ERROR(
          Number(s, "activeRequestBias", "active_request_bias", lb.active_request_bias));
      return SlowStart(s, lb.slow_start);
    case core::StrategyKind::kRoundRobin:
      PICKER_RETURN_IF_ERROR(s.Keys({"slowStartConfig"}));
      return SlowStart(s, lb.slow_start);
    case core::StrategyKind::kPeakEwma:
      return PeakEwmaOptions(s, lb);
    case core::StrategyKind::kWeightedRoundRobin:
      return WeightedRoundRobinOptions(s, lb);
    case core::StrategyKind::kRingHash:
      PICKER_RETURN_IF_ERROR(s.Keys(
          {"hashFunction", "minRingSize", "maxRingSize", "hashPolicies", "hashBalanceFactor"}));
      PICKER_RETURN_IF_ERROR(HashFunction(s, lb.hash_function));
      PICKER_RETURN_IF_ERROR(
          s.Unsigned("minRingSize", "min_ring_size", lb.min_ring_size, UINT64_MAX));
      PICKER_RETURN_IF_ERROR(
          s.Unsigned("maxRingSize", "max_ring_size", lb.max_ring_size, UINT64_MAX));
      PICKER_RETURN_IF_ERROR(BalanceFactor(s, lb));
      return HashPolicies(s, lb.hash_policies);
    case core::StrategyKind::kMaglev:
      PICKER_RETURN_IF_ERROR(s.Keys({"tableSize", "hashPolicies", "hashBalanceFactor"}));
      PICKER_RETURN_IF_ERROR(s.Unsigned("tableSize", "table_size", lb.table_size, UINT64_MAX));
      PICKER_RETURN_IF_ERROR(BalanceFactor(s, lb));
      return HashPolicies(s, lb.hash_policies);
    case core::StrategyKind::kRandom:
      return s.Keys({});
  }
  return absl::OkStatus();
}

absl::Status LoadBalancer(const Scope& s, core::LoadBalancerConfig& lb) {
  static constexpr core::StrategyKind kKinds[] = {core::StrategyKind::kRoundRobin,
                                                  core::StrategyKind::kLeastRequest,
                                                  core::StrategyKind::kRingHash,
                                                  core::StrategyKind::kRandom,
                                                  core::StrategyKind::kMaglev,
                                                  core::StrategyKind::kPeakEwma,
                                                  core::StrategyKind::kWeightedRoundRobin};
  PICKER_RETURN_IF_ERROR(s.Keys({"type", "roundRobin", "leastRequest", "ringHash", "random",
                                 "maglev", "peakEwma", "weightedRoundRobin"}));
  if (!s["type"]) return s.r().Error(s.node(), s.PathOf("type"), "is required");
  std::string type;
  PICKER_RETURN_IF_ERROR(s.String("type", "type", type));
  bool known = false;
  for (core::StrategyKind kind : kKinds) {
    if (type == TypeName(kind)) {
      lb.kind = kind;
      known = true;
    }
  }
  if (!known) {
    return s.r().Error(s["type"], s.PathOf("type"),
                       "must be RoundRobin, LeastRequest, RingHash, Random, Maglev, PeakEwma or "
                       "WeightedRoundRobin");
  }
  for (core::StrategyKind kind : kKinds) {
    const std::string block = CamelCase(core::StrategyName(kind));
    if (!s[block.c_str()]) continue;
    // A block of another strategy would be ignored: refuse it.
    if (kind != lb.kind) {
      return s.r().Error(s[block.c_str()], s.PathOf(block),
                         absl::StrCat("does not go with type: ", type));
    }
    PICKER_RETURN_IF_ERROR(StrategyOptions(s.Child(block.c_str(), core::StrategyName(kind)), lb));
  }
  return absl::OkStatus();
}

// Active health checks with Kong's knobs: `type` (http, tcp or grpc, in any
// case), `httpPath`, `healthyHttpStatuses`, `interval` (0 or absent: off),
// `timeout`, `healthySuccesses`, `unhealthyFailures`.
absl::Status ActiveHealth(const Scope& s, core::ActiveHealthConfig& out) {
  PICKER_RETURN_IF_ERROR(s.Keys({"type", "httpPath", "healthyHttpStatuses", "interval", "timeout",
                                 "healthySuccesses", "unhealthyFailures"}));
  std::string type = "http";
  PICKER_RETURN_IF_ERROR(s.String("type", "type", type));
  type = absl::AsciiStrToLower(type);
  using Type = core::ActiveHealthConfig::Type;
  if (type == "http" || type == "tcp" || type == "grpc") {
    out.type = type == "http" ? Type::kHttp : type == "tcp" ? Type::kTcp : Type::kGrpc;
  } else {
    return s.r().Error(s["type"], s.PathOf("type"), "must be http, tcp or grpc");
  }
  PICKER_RETURN_IF_ERROR(s.String("httpPath", "http_path", out.http_path));
  if (const YAML::Node statuses = s["healthyHttpStatuses"]) {
    if (!statuses.IsSequence()) {
      return s.r().Error(statuses, s.PathOf("healthyHttpStatuses"), "must be a list");
    }
    s.Note(statuses, "healthyHttpStatuses", "healthy_http_statuses");
    out.healthy_http_statuses.clear();
    for (size_t i = 0; i < statuses.size(); ++i) {
      absl::StatusOr<uint64_t> status = s.r().Unsigned(
          statuses[i], absl::StrCat(s.PathOf("healthyHttpStatuses"), "[", i, "]"), 999);
      if (!status.ok()) return status.status();
      out.healthy_http_statuses.push_back(static_cast<uint32_t>(*status));
    }
  }
  PICKER_RETURN_IF_ERROR(s.Duration("interval", "interval", out.interval));
  PICKER_RETURN_IF_ERROR(s.Duration("timeout", "timeout", out.timeout));
  PICKER_RETURN_IF_ERROR(
      s.Unsigned("healthySuccesses", "healthy_successes", out.healthy_successes, 255));
  return s.Unsigned("unhealthyFailures", "unhealthy_failures", out.unhealthy_failures, 255);
}

absl::Status PassiveHealth(const Scope& s, core::PassiveHealthConfig& out) {
  PICKER_RETURN_IF_ERROR(
      s.Keys({"consecutiveFailures", "baseEjectionTime", "maxEjectionTime", "maxEjectionPercent"}));
  PICKER_RETURN_IF_ERROR(
      s.Unsigned("consecutiveFailures", "consecutive_failures", out.consecutive_failures, 1000000));
  PICKER_RETURN_IF_ERROR(
      s.Duration("baseEjectionTime", "base_ejection_time", out.base_ejection_time));
  PICKER_RETURN_IF_ERROR(s.Duration("maxEjectionTime", "max_ejection_time", out.max_ejection_time));
  return s.Unsigned("maxEjectionPercent", "max_ejection_percent", out.max_ejection_percent, 100);
}

absl::Status HealthChecks(const Scope& s, core::UpstreamConfig& config) {
  PICKER_RETURN_IF_ERROR(s.Keys({"passive", "active"}));
  if (s["active"]) PICKER_RETURN_IF_ERROR(ActiveHealth(s.Child("active", "active"), config.active));
  if (s["passive"]) {
    PICKER_RETURN_IF_ERROR(PassiveHealth(s.Child("passive", "passive"), config.passive));
  }
  return absl::OkStatus();
}

// A list of strings at `key` (Kong's tags).
absl::Status Tags(const Scope& s, std::vector<std::string>& out) {
  const YAML::Node list = s["tags"];
  if (!list) return absl::OkStatus();
  if (!list.IsSequence()) return s.r().Error(list, s.PathOf("tags"), "must be a list of strings");
  s.Note(list, "tags", "tags");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item = absl::StrCat("tags[", i, "]");
    if (!list[i].IsScalar()) return s.r().Error(list[i], s.PathOf(item), "must be a string");
    s.Note(list[i], item, item);
    out.push_back(list[i].Scalar());
  }
  return absl::OkStatus();
}

absl::StatusOr<core::TargetConfig> Target(const Scope& s) {
  PICKER_RETURN_IF_ERROR(s.Keys({"target", "weight", "zone", "hashKey", "tags"}));
  core::TargetConfig target;
  if (!s["target"]) return s.r().Error(s.node(), s.PathOf("target"), "is required");
  std::string address;
  PICKER_RETURN_IF_ERROR(s.String("target", "address", address));
  absl::StatusOr<std::string> canonical = core::CanonicalAddress(address, s.PathOf("target"));
  if (!canonical.ok()) return s.r().At(s["target"], canonical.status().message());
  target.address = *std::move(canonical);
  PICKER_RETURN_IF_ERROR(s.Unsigned("weight", "weight", target.weight, core::kMaxTargetWeight));
  PICKER_RETURN_IF_ERROR(s.String("zone", "zone", target.zone));
  PICKER_RETURN_IF_ERROR(s.String("hashKey", "hash_key", target.hash_key));
  PICKER_RETURN_IF_ERROR(Tags(s, target.tags));
  return target;
}

absl::Status Targets(const Reader& r, const YAML::Node& node, const std::string& field,
                     std::vector<core::TargetConfig>& out) {
  if (!node) return absl::OkStatus();
  if (!node.IsSequence()) return r.Error(node, field + ".targets", "must be a list");
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < node.size(); ++i) {
    Origins origins;
    const Scope s(r, node[i], absl::StrCat(field, ".targets[", i, "]"), "", origins);
    absl::StatusOr<core::TargetConfig> target = Target(s);
    if (!target.ok()) return target.status();
    if (absl::Status v = core::ValidateTarget(*target, "target"); !v.ok()) {
      return r.AtField(v, "target.", origins, Origin{node[i], s.path()});
    }
    if (auto [it, fresh] = seen.emplace(target->address, i); !fresh) {
      return r.Error(node[i]["target"], s.PathOf("target"),
                     absl::StrCat("duplicates targets[", it->second, "]"));
    }
    out.push_back(*std::move(target));
  }
  return absl::OkStatus();
}

// `loadBalancer` and `localityAwareness`, of an upstream or a client
// configuration.
absl::Status Balancing(const Scope& s, core::LoadBalancerConfig& lb, bool& locality_aware) {
  if (s["loadBalancer"]) {
    PICKER_RETURN_IF_ERROR(LoadBalancer(s.Child("loadBalancer", "load_balancer"), lb));
  }
  if (s["localityAwareness"]) {
    const Scope locality = s.Child("localityAwareness", "locality_awareness");
    for (const char* kong_mesh : {"localZone", "crossZone", "failoverThreshold"}) {
      if (locality[kong_mesh]) {
        return s.r().Error(locality[kong_mesh], locality.PathOf(kong_mesh),
                           "is not supported by picker, whose locality prefers the client's "
                           "zone and spills over to the others by their health (Envoy's "
                           "zone-aware priorities); only `disabled` is");
      }
    }
    PICKER_RETURN_IF_ERROR(locality.Keys({"disabled"}));
    bool disabled = false;
    PICKER_RETURN_IF_ERROR(locality.Bool("disabled", "disabled", disabled));
    locality_aware = !disabled;
  }
  return absl::OkStatus();
}

absl::Status ClientSelector(const Scope& s, core::ClientSelector& out) {
  PICKER_RETURN_IF_ERROR(s.Keys({"service", "tags"}));
  PICKER_RETURN_IF_ERROR(s.String("service", "service", out.service));
  const YAML::Node tags = s["tags"];
  if (!tags) return absl::OkStatus();
  if (!tags.IsMap()) return s.r().Error(tags, s.PathOf("tags"), "must be a mapping");
  for (const auto& entry : tags) {
    if (!entry.second.IsScalar()) {
      return s.r().Error(entry.second, s.PathOf("tags." + entry.first.Scalar()),
                         "must be a string");
    }
    out.tags.emplace_back(entry.first.Scalar(), entry.second.Scalar());
  }
  std::sort(out.tags.begin(), out.tags.end());
  return absl::OkStatus();
}

absl::Status ClientConfigs(const Scope& s, std::vector<core::ClientConfig>& out) {
  const YAML::Node list = s["clientConfigs"];
  if (!list) return absl::OkStatus();
  if (!list.IsSequence()) return s.r().Error(list, s.PathOf("clientConfigs"), "must be a list");
  if (list.size() > core::kMaxClientConfigs) {
    return s.r().Error(list, s.PathOf("clientConfigs"),
                       absl::StrCat("at most ", core::kMaxClientConfigs, " entries"));
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const Scope item = s.Item("clientConfigs", i, "client_configs");
    PICKER_RETURN_IF_ERROR(item.Keys({"client", "loadBalancer", "localityAwareness"}));
    if (!item["client"]) return s.r().Error(list[i], item.PathOf("client"), "is required");
    core::ClientConfig& c = out.emplace_back();
    PICKER_RETURN_IF_ERROR(ClientSelector(item.Child("client", "client"), c.client));
    PICKER_RETURN_IF_ERROR(Balancing(item, c.load_balancer, c.locality_aware));
  }
  return absl::OkStatus();
}

absl::Status UpstreamFields(const Scope& s, core::UpstreamConfig& c) {
  PICKER_RETURN_IF_ERROR(Balancing(s, c.load_balancer, c.locality_aware));
  PICKER_RETURN_IF_ERROR(ClientConfigs(s, c.client_configs));
  PICKER_RETURN_IF_ERROR(Tags(s, c.tags));
  PICKER_RETURN_IF_ERROR(s.Unsigned("panicThresholdPercent", "panic_threshold_percent",
                                    c.panic_threshold_percent, UINT32_MAX));
  PICKER_RETURN_IF_ERROR(s.Duration("leaseTtl", "lease_ttl", c.lease_ttl));
  PICKER_RETURN_IF_ERROR(
      s.Unsigned("maxActiveRequests", "max_active_requests", c.max_active_requests, UINT32_MAX));
  PICKER_RETURN_IF_ERROR(s.Unsigned("maxActiveRequestsPerTarget", "max_active_requests_per_target",
                                    c.max_active_requests_per_target, UINT32_MAX));
  if (s["healthChecks"])
    PICKER_RETURN_IF_ERROR(HealthChecks(s.Child("healthChecks", "health_checks"), c));
  return absl::OkStatus();
}

absl::Status Upstream(const Reader& r, const YAML::Node& node, const std::string& field,
                      DeclaredUpstream& out) {
  Origins origins;
  const Scope s(r, node, field, "", origins);
  PICKER_RETURN_IF_ERROR(
      s.Keys({"name", "loadBalancer", "localityAwareness", "panicThresholdPercent", "leaseTtl",
              "targets", "maxActiveRequests", "maxActiveRequestsPerTarget", "healthChecks",
              "clientConfigs", "tags"}));
  if (!s["name"]) return r.Error(node, s.PathOf("name"), "is required");
  core::UpstreamConfig& c = out.config;
  PICKER_RETURN_IF_ERROR(s.String("name", "name", c.name));
  PICKER_RETURN_IF_ERROR(UpstreamFields(s, c));
  core::ReplaceZerosWithDefaults(c);
  if (absl::Status v = core::ValidateUpstreamConfig(c); !v.ok()) {
    return r.AtField(v, "upstream.", origins, Origin{node, field});
  }
  return Targets(r, node["targets"], field, out.targets);
}

// The upstream lists of picker's own documents, each with its field name.
struct UpstreamNodes {
  std::vector<std::pair<YAML::Node, std::string>> nodes;
  std::vector<std::string> names;
};

absl::Status CollectUpstreams(const Reader& r, const YAML::Node& root, UpstreamNodes& out) {
  PICKER_RETURN_IF_ERROR(r.OnlyKeys(root, "config", {"upstreams"}));
  const YAML::Node upstreams = root["upstreams"];
  if (!upstreams) return absl::OkStatus();
  if (!upstreams.IsSequence()) return r.Error(upstreams, "upstreams", "must be a list");
  for (size_t i = 0; i < upstreams.size(); ++i) {
    const YAML::Node name = upstreams[i].IsMap() ? upstreams[i]["name"] : YAML::Node();
    out.nodes.emplace_back(upstreams[i], absl::StrCat("upstreams[", i, "]"));
    out.names.push_back(name && name.IsScalar() ? name.Scalar() : "");
  }
  return absl::OkStatus();
}

// Every upstream of the file's documents, with the MeshLoadBalancingStrategy
// documents merged in (see mesh_policy.h).
absl::StatusOr<std::vector<DeclaredUpstream>> Upstreams(const Reader& r,
                                                        const std::vector<YAML::Node>& documents,
                                                        const std::string& source) {
  UpstreamNodes declared;
  std::vector<MeshPolicy> policies;
  for (const YAML::Node& document : documents) {
    if (!document || document.IsNull()) continue;
    if (!IsMeshResource(document)) {
      PICKER_RETURN_IF_ERROR(CollectUpstreams(r, document, declared));
      continue;
    }
    auto policy = ReadMeshPolicy(document, source);
    if (!policy.ok()) return policy.status();
    policies.push_back(*std::move(policy));
  }
  PICKER_RETURN_IF_ERROR(OrderMeshPolicies(policies, declared.names, source));
  std::vector<DeclaredUpstream> out;
  std::map<std::string, const YAML::Node*> names;
  for (size_t i = 0; i < declared.nodes.size(); ++i) {
    const auto& [node, field] = declared.nodes[i];
    absl::StatusOr<YAML::Node> merged =
        ApplyMeshPolicies(policies, declared.names[i], node, source);
    if (!merged.ok()) return merged.status();
    PICKER_RETURN_IF_ERROR(Upstream(r, *merged, field, out.emplace_back()));
    if (auto [it, fresh] = names.emplace(out.back().config.name, &node); !fresh) {
      return r.Error(node["name"], field + ".name",
                     absl::StrCat("duplicates the upstream at line ", it->second->Mark().line + 1));
    }
  }
  return out;
}

#undef PICKER_RETURN_IF_ERROR

// True when both hold the same targets with the same fields; their order
// does not matter (a write keeps the stored order).
bool SameTargets(const std::vector<core::TargetConfig>& a,
                 const std::vector<core::TargetConfig>& b) {
  if (a.size() != b.size()) return false;
  std::map<std::string, const core::TargetConfig*> by_address;
  for (const core::TargetConfig& t : a) by_address[t.address] = &t;
  for (const core::TargetConfig& t : b) {
    auto it = by_address.find(t.address);
    if (it == by_address.end() || *it->second != t) return false;
  }
  return true;
}

DeclaredUpstream Declared(const core::UpstreamSnapshot& snapshot) {
  DeclaredUpstream d{snapshot.config(), {}};
  for (const core::SnapshotTarget& t : snapshot.targets()) d.targets.push_back(t.config);
  return d;
}

std::string Go(core::Millis d) { return absl::FormatDuration(absl::Milliseconds(d.count())); }

void WriteHashPolicies(YAML::Emitter& out, const core::LoadBalancerConfig& lb) {
  if (lb.hash_balance_factor)
    out << YAML::Key << "hashBalanceFactor" << YAML::Value << *lb.hash_balance_factor;
  if (lb.hash_policies.empty()) return;
  out << YAML::Key << "hashPolicies" << YAML::Value << YAML::BeginSeq;
  using Kind = core::HashPolicy::Kind;
  for (const core::HashPolicy& p : lb.hash_policies) {
    out << YAML::BeginMap;
    static constexpr const char* kTypes[] = {"Header", "Cookie", "Connection", "QueryParameter",
                                             "FilterState"};
    static constexpr const char* kBlocks[] = {"header", "cookie", "connection", "queryParameter",
                                              "filterState"};
    const int k = static_cast<int>(p.kind);
    out << YAML::Key << "type" << YAML::Value << kTypes[k];
    out << YAML::Key << kBlocks[k] << YAML::Value << YAML::Flow << YAML::BeginMap;
    if (p.kind == Kind::kSourceIp) {
      out << YAML::Key << "sourceIP" << YAML::Value << true;
    } else {
      out << YAML::Key << (p.kind == Kind::kFilterState ? "key" : "name") << YAML::Value << p.name;
    }
    if (p.kind == Kind::kCookie && p.cookie_ttl) {
      out << YAML::Key << "ttl" << YAML::Value << Go(*p.cookie_ttl);
    }
    if (p.kind == Kind::kCookie && !p.cookie_path.empty()) {
      out << YAML::Key << "path" << YAML::Value << p.cookie_path;
    }
    out << YAML::EndMap;
    if (p.terminal) out << YAML::Key << "terminal" << YAML::Value << true;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

// `slowStartConfig: {...}` inside roundRobin or leastRequest, unless it is
// all defaults (slow start off), as the API answers it.
void WriteSlowStart(YAML::Emitter& out, const core::SlowStartConfig& s) {
  if (s == core::SlowStartConfig{}) return;
  out << YAML::Key << "slowStartConfig" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "slowStartWindow" << YAML::Value << Go(s.window);
  out << YAML::Key << "aggression" << YAML::Value << s.aggression;
  out << YAML::Key << "minWeightPercent" << YAML::Value << s.min_weight_percent;
  out << YAML::EndMap;
}

void WritePeakEwma(YAML::Emitter& out, const core::LoadBalancerConfig& lb) {
  out << YAML::Key << "peakEwma" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "choiceCount" << YAML::Value << lb.choice_count;
  out << YAML::Key << "decayTime" << YAML::Value << Go(lb.decay_time);
  out << YAML::Key << "failurePenalty" << YAML::Value << Go(lb.failure_penalty);
  out << YAML::EndMap;
}

// Every option is written: an explicit blackoutPeriod of 0s means none.
void WriteWeightedRoundRobin(YAML::Emitter& out, const core::LoadBalancerConfig& lb) {
  out << YAML::Key << "weightedRoundRobin" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "blackoutPeriod" << YAML::Value << Go(lb.blackout_period);
  out << YAML::Key << "weightExpirationPeriod" << YAML::Value << Go(lb.weight_expiration_period);
  out << YAML::Key << "weightUpdatePeriod" << YAML::Value << Go(lb.weight_update_period);
  out << YAML::Key << "errorUtilizationPenalty" << YAML::Value << lb.error_utilization_penalty;
  out << YAML::EndMap;
}

// The options block of `lb.kind` in the shape StrategyOptions reads.
void WriteStrategyOptions(YAML::Emitter& out, const core::LoadBalancerConfig& lb) {
  switch (lb.kind) {
    case core::StrategyKind::kRoundRobin:
      if (lb.slow_start == core::SlowStartConfig{}) break;
      out << YAML::Key << "roundRobin" << YAML::Value << YAML::BeginMap;
      WriteSlowStart(out, lb.slow_start);
      out << YAML::EndMap;
      break;
    case core::StrategyKind::kLeastRequest:
      out << YAML::Key << "leastRequest" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "choiceCount" << YAML::Value << lb.choice_count;
      out << YAML::Key << "activeRequestBias" << YAML::Value << lb.active_request_bias;
      WriteSlowStart(out, lb.slow_start);
      out << YAML::EndMap;
      break;
    case core::StrategyKind::kRingHash:
      out << YAML::Key << "ringHash" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "hashFunction" << YAML::Value
          << (lb.hash_function == core::HashFunction::kMurmurHash2 ? "MurmurHash2" : "XXHash");
      out << YAML::Key << "minRingSize" << YAML::Value << lb.min_ring_size;
      out << YAML::Key << "maxRingSize" << YAML::Value << lb.max_ring_size;
      WriteHashPolicies(out, lb);
      out << YAML::EndMap;
      break;
    case core::StrategyKind::kMaglev:
      out << YAML::Key << "maglev" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "tableSize" << YAML::Value << lb.table_size;
      WriteHashPolicies(out, lb);
      out << YAML::EndMap;
      break;
    case core::StrategyKind::kPeakEwma:
      WritePeakEwma(out, lb);
      break;
    case core::StrategyKind::kWeightedRoundRobin:
      WriteWeightedRoundRobin(out, lb);
      break;
    case core::StrategyKind::kRandom:
      break;
  }
}

void WriteLoadBalancer(YAML::Emitter& out, const core::LoadBalancerConfig& lb) {
  out << YAML::Key << "loadBalancer" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << TypeName(lb.kind);
  WriteStrategyOptions(out, lb);
  out << YAML::EndMap;
}

void WriteHealthChecks(YAML::Emitter& out, const core::UpstreamConfig& c) {
  out << YAML::Key << "healthChecks" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "passive" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "consecutiveFailures" << YAML::Value << c.passive.consecutive_failures;
  out << YAML::Key << "baseEjectionTime" << YAML::Value << Go(c.passive.base_ejection_time);
  out << YAML::Key << "maxEjectionTime" << YAML::Value << Go(c.passive.max_ejection_time);
  out << YAML::Key << "maxEjectionPercent" << YAML::Value << c.passive.max_ejection_percent;
  out << YAML::EndMap;
  static constexpr const char* kTypes[] = {"http", "tcp", "grpc"};
  const core::ActiveHealthConfig& a = c.active;
  out << YAML::Key << "active" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << kTypes[static_cast<int>(a.type)];
  out << YAML::Key << "httpPath" << YAML::Value << a.http_path;
  out << YAML::Key << "healthyHttpStatuses" << YAML::Value << YAML::Flow << a.healthy_http_statuses;
  out << YAML::Key << "interval" << YAML::Value << Go(a.interval);
  out << YAML::Key << "timeout" << YAML::Value << Go(a.timeout);
  out << YAML::Key << "healthySuccesses" << YAML::Value << a.healthy_successes;
  out << YAML::Key << "unhealthyFailures" << YAML::Value << a.unhealthy_failures;
  out << YAML::EndMap << YAML::EndMap;
}

void WriteTags(YAML::Emitter& out, const std::vector<std::string>& tags) {
  if (tags.empty()) return;
  out << YAML::Key << "tags" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& tag : tags) out << YAML::DoubleQuoted << tag;
  out << YAML::EndSeq;
}

void WriteLocality(YAML::Emitter& out, bool locality_aware) {
  out << YAML::Key << "localityAwareness" << YAML::Value << YAML::Flow << YAML::BeginMap
      << YAML::Key << "disabled" << YAML::Value << !locality_aware << YAML::EndMap;
}

void WriteClientConfigs(YAML::Emitter& out, const std::vector<core::ClientConfig>& configs) {
  if (configs.empty()) return;
  out << YAML::Key << "clientConfigs" << YAML::Value << YAML::BeginSeq;
  for (const core::ClientConfig& c : configs) {
    out << YAML::BeginMap << YAML::Key << "client" << YAML::Value << YAML::Flow << YAML::BeginMap;
    if (!c.client.service.empty()) out << YAML::Key << "service" << YAML::Value << c.client.service;
    if (!c.client.tags.empty()) {
      out << YAML::Key << "tags" << YAML::Value << YAML::BeginMap;
      for (const auto& [key, value] : c.client.tags) {
        out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
    WriteLoadBalancer(out, c.load_balancer);
    WriteLocality(out, c.locality_aware);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void WriteUpstream(YAML::Emitter& out, const DeclaredUpstream& u) {
  const core::UpstreamConfig& c = u.config;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.name;
  WriteLoadBalancer(out, c.load_balancer);
  WriteLocality(out, c.locality_aware);
  WriteClientConfigs(out, c.client_configs);
  WriteTags(out, c.tags);
  out << YAML::Key << "panicThresholdPercent" << YAML::Value << c.panic_threshold_percent;
  out << YAML::Key << "leaseTtl" << YAML::Value << Go(c.lease_ttl);
  out << YAML::Key << "maxActiveRequests" << YAML::Value << c.max_active_requests;
  out << YAML::Key << "maxActiveRequestsPerTarget" << YAML::Value
      << c.max_active_requests_per_target;
  WriteHealthChecks(out, c);
  out << YAML::Key << "targets" << YAML::Value << YAML::BeginSeq;
  for (const core::TargetConfig& t : u.targets) {
    out << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "target" << YAML::Value << YAML::DoubleQuoted << t.address;
    out << YAML::Key << "weight" << YAML::Value << t.weight;
    if (!t.zone.empty()) out << YAML::Key << "zone" << YAML::Value << t.zone;
    if (!t.hash_key.empty()) out << YAML::Key << "hashKey" << YAML::Value << t.hash_key;
    WriteTags(out, t.tags);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

}  // namespace

absl::StatusOr<std::vector<DeclaredUpstream>> ParseConfig(const std::string& text,
                                                          const std::string& source) {
  Reader r(source);
  auto documents = LoadDocuments(text, source);
  if (!documents.ok()) return documents.status();
  if (std::all_of(documents->begin(), documents->end(),
                  [](const YAML::Node& d) { return !d || d.IsNull(); })) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": the file is empty (write `upstreams: []` to declare none)"));
  }
  try {
    return Upstreams(r, *documents, source);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
}

absl::StatusOr<std::vector<DeclaredUpstream>> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read the config file: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

std::vector<core::Change> PlanChanges(const std::vector<DeclaredUpstream>& declared,
                                      const std::vector<DeclaredUpstream>& current, bool prune) {
  std::map<std::string, const DeclaredUpstream*> now;
  for (const DeclaredUpstream& u : current) now[u.config.name] = &u;
  std::vector<core::Change> changes;
  for (const DeclaredUpstream& u : declared) {
    auto it = now.find(u.config.name);
    const DeclaredUpstream* existing = it == now.end() ? nullptr : it->second;
    if (existing == nullptr) {
      changes.push_back(core::CreateUpstream{u.config});
    } else if (existing->config != u.config) {
      changes.push_back(core::UpdateUpstream{u.config});
    }
    if (existing == nullptr || !SameTargets(existing->targets, u.targets)) {
      changes.push_back(core::ReplaceTargets{u.config.name, u.targets, /*allow_empty=*/true});
    }
    if (existing != nullptr) now.erase(it);
  }
  if (prune) {
    for (const auto& [name, u] : now) changes.push_back(core::DeleteUpstream{name});
  }
  return changes;
}

std::vector<core::Change> PlanConfig(const std::vector<DeclaredUpstream>& upstreams,
                                     const core::SnapshotMap& current) {
  std::vector<DeclaredUpstream> now;
  for (const DeclaredUpstream& u : upstreams) {
    if (auto snapshot = current.Find(u.config.name)) now.push_back(Declared(*snapshot));
  }
  return PlanChanges(upstreams, now, /*prune=*/false);
}

std::string WriteConfig(const std::vector<DeclaredUpstream>& upstreams) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "upstreams" << YAML::Value;
  if (upstreams.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const DeclaredUpstream& u : upstreams) WriteUpstream(out, u);
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace picker::config
