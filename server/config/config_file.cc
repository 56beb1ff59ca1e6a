#include "server/config/config_file.h"

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/api/convert.h"
#include "server/core/address.h"
#include "server/core/validate.h"
#include "yaml-cpp/yaml.h"

namespace picker::config {
namespace {

// Carries the file name and the position of a node into error messages.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  absl::Status Error(const YAML::Node& node, const std::string& field,
                     absl::string_view why) const {
    const YAML::Mark mark = node.Mark();
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", mark.line + 1, ": ", field, ": ", why));
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

  absl::StatusOr<bool> Bool(const YAML::Node& node, const std::string& field) const {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      return Error(node, field, "must be true or false");
    }
    return value;
  }

  // Durations as Kubernetes and Kong Mesh write them: 500ms, 30s, 5m, 1h.
  absl::StatusOr<google::protobuf::Duration> Duration(const YAML::Node& node,
                                                      const std::string& field) const {
    const std::string text = node.IsScalar() ? node.Scalar() : "";
    const size_t unit_at = text.find_first_not_of("0123456789");
    const std::string unit = unit_at == std::string::npos ? "" : text.substr(unit_at);
    int64_t value = 0;
    const int64_t millis = unit == "ms"  ? 1
                           : unit == "s" ? 1000
                           : unit == "m" ? 60000
                           : unit == "h" ? 3600000
                                         : 0;
    if (millis == 0 || !absl::SimpleAtoi(text.substr(0, unit_at), &value) ||
        value > int64_t{1} << 40) {
      return Error(node, field, "must be a duration such as 500ms, 30s, 5m or 1h");
    }
    google::protobuf::Duration d;
    d.set_seconds(value * millis / 1000);
    d.set_nanos(static_cast<int32_t>(value * millis % 1000) * 1000000);
    return d;
  }

 private:
  std::string source_;
};

#define PICKER_ASSIGN(lhs, expr)                \
  do {                                          \
    auto _result = (expr);                      \
    if (!_result.ok()) return _result.status(); \
    lhs = *std::move(_result);                  \
  } while (0)

absl::Status HashPolicies(const Reader& r, const YAML::Node& list, const std::string& field,
                          google::protobuf::RepeatedPtrField<v1::HashPolicy>* out) {
  if (!list.IsSequence()) return r.Error(list, field, "must be a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node node = list[i];
    const std::string path = absl::StrCat(field, "[", i, "]");
    if (absl::Status s = r.OnlyKeys(node, path,
                                    {"type", "terminal", "header", "cookie", "connection",
                                     "queryParameter", "filterState"});
        !s.ok()) {
      return s;
    }
    v1::HashPolicy* p = out->Add();
    if (node["terminal"]) {
      bool terminal;
      PICKER_ASSIGN(terminal, r.Bool(node["terminal"], path + ".terminal"));
      p->set_terminal(terminal);
    }
    if (!node["type"]) return r.Error(node, path + ".type", "is required");
    std::string type;
    PICKER_ASSIGN(type, r.String(node["type"], path + ".type"));
    if (type == "Header") {
      const YAML::Node h = node["header"];
      if (!h || !h["name"]) return r.Error(node, path + ".header.name", "is required");
      PICKER_ASSIGN(*p->mutable_header()->mutable_name(),
                    r.String(h["name"], path + ".header.name"));
    } else if (type == "Cookie") {
      const YAML::Node c = node["cookie"];
      if (!c || !c["name"]) return r.Error(node, path + ".cookie.name", "is required");
      PICKER_ASSIGN(*p->mutable_cookie()->mutable_name(),
                    r.String(c["name"], path + ".cookie.name"));
      if (c["ttl"])
        PICKER_ASSIGN(*p->mutable_cookie()->mutable_ttl(),
                      r.Duration(c["ttl"], path + ".cookie.ttl"));
      if (c["path"])
        PICKER_ASSIGN(*p->mutable_cookie()->mutable_path(),
                      r.String(c["path"], path + ".cookie.path"));
    } else if (type == "Connection") {
      const YAML::Node c = node["connection"];
      const YAML::Node ip = c ? (c["sourceIP"] ? c["sourceIP"] : c["sourceIp"]) : YAML::Node();
      if (!ip) return r.Error(node, path + ".connection.sourceIP", "is required");
      bool source_ip;
      PICKER_ASSIGN(source_ip, r.Bool(ip, path + ".connection.sourceIP"));
      p->mutable_connection()->set_source_ip(source_ip);
    } else if (type == "QueryParameter") {
      const YAML::Node q = node["queryParameter"];
      if (!q || !q["name"]) return r.Error(node, path + ".queryParameter.name", "is required");
      PICKER_ASSIGN(*p->mutable_query_parameter()->mutable_name(),
                    r.String(q["name"], path + ".queryParameter.name"));
    } else if (type == "FilterState") {
      const YAML::Node f = node["filterState"];
      if (!f || !f["key"]) return r.Error(node, path + ".filterState.key", "is required");
      PICKER_ASSIGN(*p->mutable_filter_state()->mutable_key(),
                    r.String(f["key"], path + ".filterState.key"));
    } else {
      return r.Error(node["type"], path + ".type",
                     "must be Header, Cookie, Connection, QueryParameter or FilterState");
    }
  }
  return absl::OkStatus();
}

absl::Status LoadBalancer(const Reader& r, const YAML::Node& node, const std::string& field,
                          v1::LoadBalancer* out) {
  if (absl::Status s = r.OnlyKeys(
          node, field, {"type", "roundRobin", "leastRequest", "ringHash", "random", "maglev"});
      !s.ok()) {
    return s;
  }
  if (!node["type"]) return r.Error(node, field + ".type", "is required");
  std::string type;
  PICKER_ASSIGN(type, r.String(node["type"], field + ".type"));
  if (type == "RoundRobin") {
    out->mutable_round_robin();
  } else if (type == "Random") {
    out->mutable_random();
  } else if (type == "LeastRequest") {
    v1::LeastRequest* lr = out->mutable_least_request();
    if (const YAML::Node n = node["leastRequest"]) {
      const std::string f = field + ".leastRequest";
      if (absl::Status s = r.OnlyKeys(n, f, {"choiceCount", "activeRequestBias"}); !s.ok())
        return s;
      if (n["choiceCount"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(n["choiceCount"], f + ".choiceCount", 1u << 16));
        if (v == 1) return r.Error(n["choiceCount"], f + ".choiceCount", "must be at least 2");
        lr->set_choice_count(static_cast<uint32_t>(v));
      }
      if (n["activeRequestBias"]) {
        double bias = 0;
        if (!absl::SimpleAtod(n["activeRequestBias"].Scalar(), &bias) || bias < 0) {
          return r.Error(n["activeRequestBias"], f + ".activeRequestBias", "must be a number >= 0");
        }
        lr->set_active_request_bias(bias);
      }
    }
  } else if (type == "RingHash") {
    v1::RingHash* rh = out->mutable_ring_hash();
    if (const YAML::Node n = node["ringHash"]) {
      const std::string f = field + ".ringHash";
      if (absl::Status s = r.OnlyKeys(
              n, f,
              {"hashFunction", "minRingSize", "maxRingSize", "hashPolicies", "hashBalanceFactor"});
          !s.ok()) {
        return s;
      }
      if (n["hashFunction"]) {
        std::string fn;
        PICKER_ASSIGN(fn, r.String(n["hashFunction"], f + ".hashFunction"));
        if (fn == "XXHash" || fn == "XX_HASH") {
          rh->set_hash_function(v1::XX_HASH);
        } else if (fn == "MurmurHash2" || fn == "MURMUR_HASH_2") {
          rh->set_hash_function(v1::MURMUR_HASH_2);
        } else {
          return r.Error(n["hashFunction"], f + ".hashFunction",
                         "must be XXHash, XX_HASH, MurmurHash2 or MURMUR_HASH_2");
        }
      }
      if (n["minRingSize"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(n["minRingSize"], f + ".minRingSize", core::kMaxRingSize));
        rh->set_min_ring_size(v);
      }
      if (n["maxRingSize"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(n["maxRingSize"], f + ".maxRingSize", core::kMaxRingSize));
        rh->set_max_ring_size(v);
      }
      if (rh->min_ring_size() > 0 && rh->max_ring_size() > 0 &&
          rh->min_ring_size() > rh->max_ring_size()) {
        return r.Error(n["minRingSize"], f + ".minRingSize", "must not exceed maxRingSize");
      }
      if (n["hashBalanceFactor"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(n["hashBalanceFactor"], f + ".hashBalanceFactor", 1u << 20));
        if (v < 100)
          return r.Error(n["hashBalanceFactor"], f + ".hashBalanceFactor", "must be at least 100");
        rh->set_hash_balance_factor(static_cast<uint32_t>(v));
      }
      if (n["hashPolicies"]) {
        if (absl::Status s = HashPolicies(r, n["hashPolicies"], f + ".hashPolicies",
                                          rh->mutable_hash_policies());
            !s.ok()) {
          return s;
        }
      }
    }
  } else if (type == "Maglev") {
    v1::Maglev* m = out->mutable_maglev();
    if (const YAML::Node n = node["maglev"]) {
      const std::string f = field + ".maglev";
      if (absl::Status s = r.OnlyKeys(n, f, {"tableSize", "hashPolicies", "hashBalanceFactor"});
          !s.ok()) {
        return s;
      }
      if (n["tableSize"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(n["tableSize"], f + ".tableSize", core::kMaxMaglevTableSize));
        if (!core::IsPrime(v))
          return r.Error(n["tableSize"], f + ".tableSize", "must be a prime number");
        m->set_table_size(v);
      }
      if (n["hashBalanceFactor"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(n["hashBalanceFactor"], f + ".hashBalanceFactor", 1u << 20));
        if (v < 100)
          return r.Error(n["hashBalanceFactor"], f + ".hashBalanceFactor", "must be at least 100");
        m->set_hash_balance_factor(static_cast<uint32_t>(v));
      }
      if (n["hashPolicies"]) {
        if (absl::Status s =
                HashPolicies(r, n["hashPolicies"], f + ".hashPolicies", m->mutable_hash_policies());
            !s.ok()) {
          return s;
        }
      }
    }
  } else {
    return r.Error(node["type"], field + ".type",
                   "must be RoundRobin, LeastRequest, RingHash, Random or Maglev");
  }
  return absl::OkStatus();
}

// Active health checks with Kong's knobs: `type` (http, tcp or grpc, in any
// case), `httpPath`, `healthyHttpStatuses`, `interval` (0 or absent: off),
// `timeout`, `healthySuccesses`, `unhealthyFailures`.
absl::Status ActiveHealth(const Reader& r, const YAML::Node& a, const std::string& f,
                          v1::HealthChecks::Active* out) {
  if (absl::Status s = r.OnlyKeys(a, f,
                                  {"type", "httpPath", "healthyHttpStatuses", "interval", "timeout",
                                   "healthySuccesses", "unhealthyFailures"});
      !s.ok()) {
    return s;
  }
  if (a["type"]) {
    std::string type;
    PICKER_ASSIGN(type, r.String(a["type"], f + ".type"));
    type = absl::AsciiStrToLower(type);
    if (type == "http") {
      out->set_type(v1::HealthChecks::Active::HTTP);
    } else if (type == "tcp") {
      out->set_type(v1::HealthChecks::Active::TCP);
    } else if (type == "grpc") {
      out->set_type(v1::HealthChecks::Active::GRPC);
    } else {
      return r.Error(a["type"], f + ".type", "must be http, tcp or grpc");
    }
  }
  if (a["httpPath"])
    PICKER_ASSIGN(*out->mutable_http_path(), r.String(a["httpPath"], f + ".httpPath"));
  if (const YAML::Node statuses = a["healthyHttpStatuses"]) {
    if (!statuses.IsSequence()) {
      return r.Error(statuses, f + ".healthyHttpStatuses", "must be a list");
    }
    for (size_t i = 0; i < statuses.size(); ++i) {
      uint64_t v;
      PICKER_ASSIGN(v,
                    r.Unsigned(statuses[i], absl::StrCat(f, ".healthyHttpStatuses[", i, "]"), 999));
      out->add_healthy_http_statuses(static_cast<uint32_t>(v));
    }
  }
  if (a["interval"])
    PICKER_ASSIGN(*out->mutable_interval(), r.Duration(a["interval"], f + ".interval"));
  if (a["timeout"])
    PICKER_ASSIGN(*out->mutable_timeout(), r.Duration(a["timeout"], f + ".timeout"));
  if (a["healthySuccesses"]) {
    uint64_t v;
    PICKER_ASSIGN(v, r.Unsigned(a["healthySuccesses"], f + ".healthySuccesses", 255));
    out->set_healthy_successes(static_cast<uint32_t>(v));
  }
  if (a["unhealthyFailures"]) {
    uint64_t v;
    PICKER_ASSIGN(v, r.Unsigned(a["unhealthyFailures"], f + ".unhealthyFailures", 255));
    out->set_unhealthy_failures(static_cast<uint32_t>(v));
  }
  return absl::OkStatus();
}

absl::Status Upstream(const Reader& r, const YAML::Node& node, const std::string& field,
                      DeclaredUpstream& out) {
  if (absl::Status s = r.OnlyKeys(
          node, field,
          {"name", "loadBalancer", "localityAwareness", "panicThresholdPercent", "leaseTtl",
           "targets", "maxActiveRequests", "maxActiveRequestsPerTarget", "healthChecks"});
      !s.ok()) {
    return s;
  }
  v1::Upstream u;
  if (!node["name"]) return r.Error(node, field + ".name", "is required");
  PICKER_ASSIGN(*u.mutable_name(), r.String(node["name"], field + ".name"));
  if (absl::Status s = core::ValidateUpstreamName(u.name(), field + ".name"); !s.ok()) {
    return r.Error(node["name"], field + ".name", "letters, digits, '.', '_' and '-', 1..128");
  }
  if (node["loadBalancer"]) {
    if (absl::Status s = LoadBalancer(r, node["loadBalancer"], field + ".loadBalancer",
                                      u.mutable_load_balancer());
        !s.ok()) {
      return s;
    }
  }
  if (const YAML::Node n = node["localityAwareness"]) {
    if (absl::Status s = r.OnlyKeys(n, field + ".localityAwareness", {"disabled"}); !s.ok())
      return s;
    if (n["disabled"]) {
      bool disabled;
      PICKER_ASSIGN(disabled, r.Bool(n["disabled"], field + ".localityAwareness.disabled"));
      u.mutable_locality_awareness()->set_disabled(disabled);
    }
  }
  if (node["panicThresholdPercent"]) {
    uint64_t v;
    PICKER_ASSIGN(v,
                  r.Unsigned(node["panicThresholdPercent"], field + ".panicThresholdPercent", 100));
    u.set_panic_threshold_percent(static_cast<uint32_t>(v));
  }
  if (node["leaseTtl"]) {
    PICKER_ASSIGN(*u.mutable_lease_ttl(), r.Duration(node["leaseTtl"], field + ".leaseTtl"));
  }
  if (node["maxActiveRequests"]) {
    uint64_t v;
    PICKER_ASSIGN(v,
                  r.Unsigned(node["maxActiveRequests"], field + ".maxActiveRequests", UINT32_MAX));
    u.set_max_active_requests(static_cast<uint32_t>(v));
  }
  if (node["maxActiveRequestsPerTarget"]) {
    uint64_t v;
    PICKER_ASSIGN(v, r.Unsigned(node["maxActiveRequestsPerTarget"],
                                field + ".maxActiveRequestsPerTarget", UINT32_MAX));
    u.set_max_active_requests_per_target(static_cast<uint32_t>(v));
  }
  if (const YAML::Node hc = node["healthChecks"]) {
    const std::string f = field + ".healthChecks";
    if (absl::Status s = r.OnlyKeys(hc, f, {"passive", "active"}); !s.ok()) return s;
    if (const YAML::Node a = hc["active"]) {
      if (absl::Status s =
              ActiveHealth(r, a, f + ".active", u.mutable_health_checks()->mutable_active());
          !s.ok()) {
        return s;
      }
    }
    if (const YAML::Node p = hc["passive"]) {
      const std::string pf = f + ".passive";
      if (absl::Status s = r.OnlyKeys(
              p, pf,
              {"consecutiveFailures", "baseEjectionTime", "maxEjectionTime", "maxEjectionPercent"});
          !s.ok()) {
        return s;
      }
      v1::HealthChecks::Passive* out = u.mutable_health_checks()->mutable_passive();
      if (p["consecutiveFailures"]) {
        uint64_t v;
        PICKER_ASSIGN(v,
                      r.Unsigned(p["consecutiveFailures"], pf + ".consecutiveFailures", 1000000));
        out->set_consecutive_failures(static_cast<uint32_t>(v));
      }
      if (p["baseEjectionTime"]) {
        PICKER_ASSIGN(*out->mutable_base_ejection_time(),
                      r.Duration(p["baseEjectionTime"], pf + ".baseEjectionTime"));
      }
      if (p["maxEjectionTime"]) {
        PICKER_ASSIGN(*out->mutable_max_ejection_time(),
                      r.Duration(p["maxEjectionTime"], pf + ".maxEjectionTime"));
      }
      if (p["maxEjectionPercent"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(p["maxEjectionPercent"], pf + ".maxEjectionPercent", 100));
        out->set_max_ejection_percent(static_cast<uint32_t>(v));
      }
    }
  }
  absl::StatusOr<core::UpstreamConfig> config = api::FromProto(u);
  if (!config.ok()) return r.Error(node, field, config.status().message());
  if (absl::Status s = core::ValidateUpstreamConfig(*config); !s.ok()) {
    return r.Error(node, field, s.message());
  }
  out.config = *std::move(config);

  if (const YAML::Node targets = node["targets"]) {
    if (!targets.IsSequence()) return r.Error(targets, field + ".targets", "must be a list");
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < targets.size(); ++i) {
      const YAML::Node t = targets[i];
      const std::string tf = absl::StrCat(field, ".targets[", i, "]");
      if (absl::Status s = r.OnlyKeys(t, tf, {"target", "weight", "zone", "hashKey"}); !s.ok()) {
        return s;
      }
      core::TargetConfig target;
      if (!t["target"]) return r.Error(t, tf + ".target", "is required");
      std::string address;
      PICKER_ASSIGN(address, r.String(t["target"], tf + ".target"));
      absl::StatusOr<std::string> canonical = core::CanonicalAddress(address, tf + ".target");
      if (!canonical.ok())
        return r.Error(t["target"], tf + ".target", canonical.status().message());
      target.address = *canonical;
      if (t["weight"]) {
        uint64_t v;
        PICKER_ASSIGN(v, r.Unsigned(t["weight"], tf + ".weight", core::kMaxTargetWeight));
        target.weight = static_cast<uint32_t>(v);
      }
      if (t["zone"]) PICKER_ASSIGN(target.zone, r.String(t["zone"], tf + ".zone"));
      if (t["hashKey"]) PICKER_ASSIGN(target.hash_key, r.String(t["hashKey"], tf + ".hashKey"));
      if (!seen.emplace(target.address, i).second) {
        return r.Error(t["target"], tf + ".target",
                       absl::StrCat("duplicates targets[", seen[target.address], "]"));
      }
      out.targets.push_back(std::move(target));
    }
  }
  return absl::OkStatus();
}

#undef PICKER_ASSIGN

}  // namespace

absl::StatusOr<std::vector<DeclaredUpstream>> ParseConfig(const std::string& text,
                                                          const std::string& source) {
  Reader r(source);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  std::vector<DeclaredUpstream> out;
  if (root.IsNull()) return out;
  try {
    if (absl::Status s = r.OnlyKeys(root, "config", {"upstreams"}); !s.ok()) return s;
    const YAML::Node upstreams = root["upstreams"];
    if (!upstreams) return out;
    if (!upstreams.IsSequence()) return r.Error(upstreams, "upstreams", "must be a list");
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < upstreams.size(); ++i) {
      DeclaredUpstream& u = out.emplace_back();
      const std::string field = absl::StrCat("upstreams[", i, "]");
      if (absl::Status s = Upstream(r, upstreams[i], field, u); !s.ok()) return s;
      if (!names.emplace(u.config.name, i).second) {
        return r.Error(upstreams[i]["name"], field + ".name",
                       absl::StrCat("duplicates upstreams[", names[u.config.name], "]"));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
  return out;
}

absl::StatusOr<std::vector<DeclaredUpstream>> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the config file"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

absl::Status ApplyConfig(const std::vector<DeclaredUpstream>& upstreams, core::Registry& registry) {
  for (const DeclaredUpstream& u : upstreams) {
    absl::Status status = registry.Find(u.config.name) ? registry.UpdateUpstream(u.config).status()
                                                       : registry.CreateUpstream(u.config).status();
    if (status.ok()) status = registry.ReplaceTargets(u.config.name, u.targets).status();
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("upstream \"", u.config.name, "\": ", status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace picker::config
