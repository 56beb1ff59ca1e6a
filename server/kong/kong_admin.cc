#include "server/kong/kong_admin.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/http/json.h"
#include "server/kong/kong_entities.h"
#include "spdlog/spdlog.h"

namespace picker::kong {
namespace {

// Kong's page sizes: 100 unless `size` says otherwise, at most 1000.
constexpr size_t kDefaultPageSize = 100;
constexpr size_t kMaxPageSize = 1000;

http::Response Json(int status, http::JsonWriter&& json) {
  return http::Response::Json(status, std::move(json).Take());
}

// Kong's answer to a field that does not validate (code 2).
http::Response SchemaViolation(absl::string_view message) {
  const size_t colon = message.find(": ");
  const absl::string_view field = colon == absl::string_view::npos ? "" : message.substr(0, colon);
  const absl::string_view why =
      colon == absl::string_view::npos ? message : message.substr(colon + 2);
  http::JsonWriter json;
  json.BeginObject().Key("code").Number(2).Key("name").String("schema violation");
  json.Key("message").String(absl::StrCat("schema violation (", message, ")"));
  json.Key("fields").BeginObject();
  if (!field.empty()) json.Key(field).String(why);
  json.EndObject().EndObject();
  return Json(400, std::move(json));
}

// Kong's answer to a duplicate (code 5).
http::Response UniqueViolation(absl::string_view field, absl::string_view value) {
  http::JsonWriter json;
  json.BeginObject().Key("code").Number(5).Key("name").String("unique constraint violation");
  json.Key("message").String(
      absl::StrCat("UNIQUE violation detected on '{", field, "=\"", value, "\"}'"));
  json.Key("fields").BeginObject().Key(field).String(value).EndObject().EndObject();
  return Json(409, std::move(json));
}

http::Response NotFound() { return http::Response::Error(404, "Not found"); }

// A core error as Kong would answer it.
http::Response ErrorResponse(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return SchemaViolation(status.message());
    case absl::StatusCode::kNotFound:
      return NotFound();
    case absl::StatusCode::kAlreadyExists:
      return http::Response::Error(409, status.message());
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kFailedPrecondition:
      return http::Response::Error(400, status.message());
    case absl::StatusCode::kUnavailable:
      return http::Response::Error(503, status.message());
    default:
      return http::Response::Error(500, status.message());
  }
}

// gRPC's spelling of a peer, as the gRPC Admin API's audit lines write it.
std::string Peer(const std::string& remote) {
  const size_t colon = remote.rfind(':');
  const std::string host = remote.substr(0, colon);
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("ipv6:[", host, "]", remote.substr(colon));
  }
  return absl::StrCat("ipv4:", remote);
}

absl::StatusOr<size_t> PageSize(const http::Request& r) {
  if (r.Query("size").empty()) return kDefaultPageSize;
  size_t size = 0;
  if (!absl::SimpleAtoi(r.Query("size"), &size) || size < 1 || size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("size: must be an integer between 1 and ", kMaxPageSize));
  }
  return size;
}

// A page of `names` (sorted) after the request's `offset`, as Kong pages:
// {"data": [...], "next": "<path>?offset=..." or null, "offset": ...}.
template <typename Item, typename Key, typename Write>
http::Response Page(const http::Request& r, const std::vector<Item>& items, Key key, Write write) {
  absl::StatusOr<size_t> size = PageSize(r);
  if (!size.ok()) return SchemaViolation(size.status().message());
  const std::string& after = r.Query("offset");
  auto it = items.begin();
  if (!after.empty()) {
    it = std::upper_bound(items.begin(), items.end(), after,
                          [&](const std::string& a, const Item& i) { return a < key(i); });
  }
  http::JsonWriter json;
  json.BeginObject().Key("data").BeginArray();
  size_t n = 0;
  for (; it != items.end() && n < *size; ++it, ++n) write(*it, json);
  json.EndArray();
  if (it != items.end() && n > 0) {
    const std::string offset = key(*std::prev(it));
    json.Key("next").String(absl::StrCat(r.path, "?offset=", http::UrlEncode(offset)));
    json.Key("offset").String(offset);
  } else {
    json.Key("next").Null();
  }
  json.EndObject();
  return Json(200, std::move(json));
}

}  // namespace

KongAdmin::KongAdmin(control::ControlPlane& control, const core::SnapshotMap& snapshots,
                     std::string admin_token, core::ProcessStats* stats)
    : control_(control), snapshots_(snapshots), guard_(std::move(admin_token)), stats_(stats) {}

void KongAdmin::AddRoutes(http::Router& router) {
  struct Route {
    const char* method;
    const char* path;
    const char* name;  // In audit lines.
    http::Response (KongAdmin::*handler)(const http::Request&);
  };
  static constexpr Route kRoutes[] = {
      {"GET", "/upstreams", nullptr, &KongAdmin::ListUpstreams},
      {"POST", "/upstreams", "KongCreateUpstream", &KongAdmin::CreateUpstream},
      {"GET", "/upstreams/{u}", nullptr, &KongAdmin::GetUpstream},
      {"PUT", "/upstreams/{u}", "KongPutUpstream", &KongAdmin::PutUpstream},
      {"PATCH", "/upstreams/{u}", "KongPatchUpstream", &KongAdmin::PatchUpstream},
      {"DELETE", "/upstreams/{u}", "KongDeleteUpstream", &KongAdmin::DeleteUpstream},
      {"GET", "/upstreams/{u}/health", nullptr, &KongAdmin::Health},
      {"GET", "/upstreams/{u}/targets", nullptr, &KongAdmin::ListTargets},
      {"POST", "/upstreams/{u}/targets", "KongCreateTarget", &KongAdmin::CreateTarget},
      {"GET", "/upstreams/{u}/targets/{t}", nullptr, &KongAdmin::GetTarget},
      {"PUT", "/upstreams/{u}/targets/{t}", "KongPutTarget", &KongAdmin::PutTarget},
      {"PATCH", "/upstreams/{u}/targets/{t}", "KongPatchTarget", &KongAdmin::PatchTarget},
      {"DELETE", "/upstreams/{u}/targets/{t}", "KongDeleteTarget", &KongAdmin::DeleteTarget},
      {"PUT", "/upstreams/{u}/targets/{t}/healthy", "KongSetTargetHealthy",
       &KongAdmin::MarkHealthy},
      {"PUT", "/upstreams/{u}/targets/{t}/unhealthy", "KongSetTargetUnhealthy",
       &KongAdmin::MarkUnhealthy},
  };
  for (const Route& route : kRoutes) {
    router.Add(
        route.method, route.path,
        Guarded(route.name != nullptr ? route.name : "", route.name != nullptr, route.handler));
  }
}

http::Handler KongAdmin::Guarded(const char* method, bool write,
                                 http::Response (KongAdmin::*handler)(const http::Request&)) {
  return [this, method, write, handler](const http::Request& r) {
    if (!guard_.Allows(r) && !guard_.Matches(r.Header("kong-admin-token"))) {
      return http::Response::Error(401, "Invalid credentials. Token or User credentials required");
    }
    absl::Status overloaded =
        write ? core::RefuseWriteWhenOverloaded(stats_, r.method == "DELETE") : absl::OkStatus();
    http::Response response =
        overloaded.ok() ? (this->*handler)(r) : http::Response::Error(503, overloaded.message());
    if (write) {
      std::string upstream = r.Param("u");
      if (upstream.empty()) {  // POST /upstreams: the body names it.
        absl::StatusOr<KongFields> body = ParseKongBody(r);
        if (body.ok() && body->fields().contains("name")) {
          upstream = body->fields().at("name").string_value();
        }
      }
      spdlog::info("audit method={} upstream=\"{}{}\" result={} peer={}", method,
                   absl::CHexEscape(upstream.substr(0, 128)), upstream.size() > 128 ? "..." : "",
                   response.status < 300 ? "OK" : absl::StrCat("HTTP_", response.status),
                   Peer(r.remote_address));
    }
    return response;
  };
}

KongAdmin::Snapshot KongAdmin::FindUpstream(const std::string& name_or_id) const {
  if (Snapshot s = snapshots_.FindUncached(name_or_id)) return s;
  if (!LooksLikeUuid(name_or_id)) return nullptr;
  for (Snapshot& s : snapshots_.List()) {
    if (UpstreamId(s->config().name) == name_or_id) return s;
  }
  return nullptr;
}

absl::StatusOr<control::WriteResult> KongAdmin::Write(core::Change change) {
  return control_.Write(std::move(change));
}

// ---------------------------------------------------------------------------
// Upstreams.

namespace {

http::Response UpstreamAnswer(int status, const core::UpstreamSnapshot& upstream) {
  http::JsonWriter json;
  WriteKongUpstream(upstream.config(), upstream.times(), json);
  return Json(status, std::move(json));
}

}  // namespace

http::Response KongAdmin::ListUpstreams(const http::Request& r) {
  const std::vector<Snapshot> all = snapshots_.List();  // Sorted by name.
  return Page(
      r, all, [](const Snapshot& s) { return s->config().name; },
      [](const Snapshot& s, http::JsonWriter& json) {
        WriteKongUpstream(s->config(), s->times(), json);
      });
}

http::Response KongAdmin::GetUpstream(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  return s ? UpstreamAnswer(200, *s) : NotFound();
}

http::Response KongAdmin::CreateUpstream(const http::Request& r) {
  absl::StatusOr<KongFields> body = ParseKongBody(r);
  if (!body.ok()) return SchemaViolation(body.status().message());
  core::UpstreamConfig config = KongDefaultUpstream();
  if (absl::Status s = ApplyKongUpstream(*body, config); !s.ok())
    return SchemaViolation(s.message());
  if (config.name.empty()) return SchemaViolation("name: required field missing");
  if (snapshots_.FindUncached(config.name)) return UniqueViolation("name", config.name);
  absl::StatusOr<control::WriteResult> w = Write(core::CreateUpstream{config});
  if (!w.ok() && w.status().code() == absl::StatusCode::kAlreadyExists) {
    return UniqueViolation("name", config.name);
  }
  if (!w.ok()) return ErrorResponse(w.status());
  return UpstreamAnswer(201, *w->snapshot);
}

// PUT creates or replaces the upstream's Kong fields (its targets and the
// fields Kong has no name for stay).
http::Response KongAdmin::PutUpstream(const http::Request& r) {
  absl::StatusOr<KongFields> body = ParseKongBody(r);
  if (!body.ok()) return SchemaViolation(body.status().message());
  Snapshot existing = FindUpstream(r.Param("u"));
  core::UpstreamConfig config = KongDefaultUpstream();
  if (existing) KeepPickersOwnFields(existing->config(), config);
  config.name = existing ? existing->config().name : r.Param("u");
  const std::string name = config.name;
  if (absl::Status s = ApplyKongUpstream(*body, config); !s.ok())
    return SchemaViolation(s.message());
  if (config.name != name) return SchemaViolation("name: must be the upstream's name in the path");
  absl::StatusOr<control::WriteResult> w = existing
                                               ? Write(core::UpdateUpstream{config, std::nullopt})
                                               : Write(core::CreateUpstream{config});
  if (!w.ok()) return ErrorResponse(w.status());
  return UpstreamAnswer(200, *w->snapshot);
}

http::Response KongAdmin::PatchUpstream(const http::Request& r) {
  absl::StatusOr<KongFields> body = ParseKongBody(r);
  if (!body.ok()) return SchemaViolation(body.status().message());
  Snapshot existing = FindUpstream(r.Param("u"));
  if (!existing) return NotFound();
  core::UpstreamConfig config = existing->config();
  if (absl::Status s = ApplyKongUpstream(*body, config); !s.ok())
    return SchemaViolation(s.message());
  if (config.name != existing->config().name) {
    return SchemaViolation("name: picker does not rename upstreams");
  }
  absl::StatusOr<control::WriteResult> w = Write(core::UpdateUpstream{config, std::nullopt});
  if (!w.ok()) return ErrorResponse(w.status());
  return UpstreamAnswer(200, *w->snapshot);
}

// Kong answers 204 whether or not the upstream existed.
http::Response KongAdmin::DeleteUpstream(const http::Request& r) {
  Snapshot existing = FindUpstream(r.Param("u"));
  if (!existing) return http::Response::Json(204, "");
  absl::StatusOr<control::WriteResult> w = Write(core::DeleteUpstream{existing->config().name});
  if (!w.ok() && w.status().code() != absl::StatusCode::kNotFound) return ErrorResponse(w.status());
  return http::Response::Json(204, "");
}

// ---------------------------------------------------------------------------
// Targets.

namespace {

// The target `{t}` names in `s`: by address (Kong's default port when it
// has none) or by Kong id; null when there is none.
const core::SnapshotTarget* FindTarget(const core::UpstreamSnapshot& s, const std::string& t) {
  if (LooksLikeUuid(t)) {
    for (const core::SnapshotTarget& target : s.targets()) {
      if (TargetId(s.config().name, target.config.address) == t) return &target;
    }
  }
  KongFields body;
  (*body.mutable_fields())["target"].set_string_value(t);
  absl::StatusOr<KongTarget> parsed = ReadKongTarget(body, true);
  if (!parsed.ok()) return nullptr;
  std::optional<uint32_t> index = s.Find(parsed->address);
  return index ? &s.targets()[*index] : nullptr;
}

http::Response TargetAnswer(int status, const std::string& upstream,
                            const core::SnapshotTarget& target) {
  http::JsonWriter json;
  WriteKongTarget(upstream, target.config, target.times, json);
  return Json(status, std::move(json));
}

// The target `address` as the write left it.
http::Response WrittenTarget(int status, const control::WriteResult& w,
                             const std::string& address) {
  std::optional<uint32_t> index = w.snapshot->Find(address);
  if (!index) return NotFound();
  return TargetAnswer(status, w.snapshot->config().name, w.snapshot->targets()[*index]);
}

}  // namespace

http::Response KongAdmin::ListTargets(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  if (!s) return NotFound();
  std::vector<const core::SnapshotTarget*> sorted;
  for (const core::SnapshotTarget& t : s->targets()) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->config.address < b->config.address; });
  const std::string name = s->config().name;
  return Page(
      r, sorted, [](const core::SnapshotTarget* t) { return t->config.address; },
      [&](const core::SnapshotTarget* t, http::JsonWriter& json) {
        WriteKongTarget(name, t->config, t->times, json);
      });
}

http::Response KongAdmin::GetTarget(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  const core::SnapshotTarget* t = s ? FindTarget(*s, r.Param("t")) : nullptr;
  return t ? TargetAnswer(200, s->config().name, *t) : NotFound();
}

// POST creates only: a target already there is 409, as in Kong 3.
http::Response KongAdmin::CreateTarget(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  if (!s) return NotFound();
  absl::StatusOr<KongFields> body = ParseKongBody(r);
  if (!body.ok()) return SchemaViolation(body.status().message());
  absl::StatusOr<KongTarget> target = ReadKongTarget(*body, true);
  if (!target.ok()) return SchemaViolation(target.status().message());
  if (s->Find(target->address)) return UniqueViolation("target", target->address);
  absl::StatusOr<control::WriteResult> w =
      Write(core::PutTarget{s->config().name, core::TargetPatch{.address = target->address,
                                                                .weight = target->weight,
                                                                .tags = target->tags}});
  if (!w.ok()) return ErrorResponse(w.status());
  return WrittenTarget(201, *w, target->address);
}

// PUT creates or updates the target the path names.
http::Response KongAdmin::PutTarget(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  if (!s) return NotFound();
  absl::StatusOr<KongFields> body = ParseKongBody(r);
  if (!body.ok()) return SchemaViolation(body.status().message());
  (*body->mutable_fields())["target"].set_string_value(r.Param("t"));
  if (const core::SnapshotTarget* t = FindTarget(*s, r.Param("t"))) {
    (*body->mutable_fields())["target"].set_string_value(t->config.address);
  }
  absl::StatusOr<KongTarget> target = ReadKongTarget(*body, true);
  if (!target.ok()) return SchemaViolation(target.status().message());
  absl::StatusOr<control::WriteResult> w = Write(core::PutTarget{
      s->config().name,
      core::TargetPatch{.address = target->address,
                        .weight = target->weight.value_or(core::kDefaultTargetWeight),
                        // PUT replaces the entity: no tags given, none kept.
                        .tags = target->tags.value_or(std::vector<std::string>{})}});
  if (!w.ok()) return ErrorResponse(w.status());
  return WrittenTarget(200, *w, target->address);
}

http::Response KongAdmin::PatchTarget(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  const core::SnapshotTarget* existing = s ? FindTarget(*s, r.Param("t")) : nullptr;
  if (!existing) return NotFound();
  absl::StatusOr<KongFields> body = ParseKongBody(r);
  if (!body.ok()) return SchemaViolation(body.status().message());
  absl::StatusOr<KongTarget> target = ReadKongTarget(*body, false);
  if (!target.ok()) return SchemaViolation(target.status().message());
  if (!target->address.empty() && target->address != existing->config.address) {
    return SchemaViolation("target: picker does not move a target to another address");
  }
  const std::string address = existing->config.address;
  absl::StatusOr<control::WriteResult> w = Write(core::PutTarget{
      s->config().name,
      core::TargetPatch{.address = address, .weight = target->weight, .tags = target->tags}});
  if (!w.ok()) return ErrorResponse(w.status());
  return WrittenTarget(200, *w, address);
}

http::Response KongAdmin::DeleteTarget(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  if (!s) return NotFound();
  const core::SnapshotTarget* t = FindTarget(*s, r.Param("t"));
  if (!t) return http::Response::Json(204, "");
  absl::StatusOr<control::WriteResult> w =
      Write(core::DeleteTarget{s->config().name, t->config.address});
  if (!w.ok() && w.status().code() != absl::StatusCode::kNotFound) return ErrorResponse(w.status());
  return http::Response::Json(204, "");
}

// ---------------------------------------------------------------------------
// Health.

http::Response KongAdmin::MarkHealthy(const http::Request& r) {
  return SetHealth(r, core::HealthOverride::kNone);
}

http::Response KongAdmin::MarkUnhealthy(const http::Request& r) {
  return SetHealth(r, core::HealthOverride::kUnhealthy);
}

// `healthy` takes back a manual `unhealthy` (the checks decide again);
// `unhealthy` holds until then.
http::Response KongAdmin::SetHealth(const http::Request& r, core::HealthOverride health) {
  Snapshot s = FindUpstream(r.Param("u"));
  const core::SnapshotTarget* t = s ? FindTarget(*s, r.Param("t")) : nullptr;
  if (!t) return NotFound();
  absl::StatusOr<control::WriteResult> w =
      Write(core::SetTargetHealth{s->config().name, t->config.address, health});
  if (!w.ok()) return ErrorResponse(w.status());
  return http::Response::Json(204, "");
}

namespace {

// Kong's health of a target: HEALTHCHECKS_OFF when nothing checks it.
const char* KongHealth(const core::UpstreamSnapshot& s, const core::SnapshotTarget& t) {
  const bool checked = s.config().active.interval.count() > 0 ||
                       s.config().passive.consecutive_failures > 0 ||
                       t.health_override != core::HealthOverride::kNone;
  if (t.config.weight == 0 || !checked) return "HEALTHCHECKS_OFF";
  return t.healthy ? "HEALTHY" : "UNHEALTHY";
}

}  // namespace

http::Response KongAdmin::Health(const http::Request& r) {
  Snapshot s = FindUpstream(r.Param("u"));
  if (!s) return NotFound();
  std::vector<const core::SnapshotTarget*> sorted;
  for (const core::SnapshotTarget& t : s->targets()) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->config.address < b->config.address; });
  const std::string name = s->config().name;
  return Page(
      r, sorted, [](const core::SnapshotTarget* t) { return t->config.address; },
      [&](const core::SnapshotTarget* t, http::JsonWriter& json) {
        const char* health = KongHealth(*s, *t);
        json.BeginObject();
        json.Key("id").String(TargetId(name, t->config.address));
        json.Key("target").String(t->config.address);
        json.Key("weight").Number(t->config.weight);
        json.Key("upstream").BeginObject().Key("id").String(UpstreamId(name)).EndObject();
        json.Key("health").String(health);
        json.Key("data").BeginObject().Key("addresses").BeginArray().BeginObject();
        const size_t colon = t->config.address.rfind(':');
        json.Key("ip").String(t->config.address.substr(0, colon));
        json.Key("port").Number(std::stoi(t->config.address.substr(colon + 1)));
        json.Key("health").String(health);
        json.Key("weight").Number(t->config.weight);
        json.EndObject().EndArray().EndObject();
        WriteKongTags(t->config.tags, json);
        WriteKongTimes(t->times, json);
        json.EndObject();
      });
}

}  // namespace picker::kong
