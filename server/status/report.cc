#include "server/status/report.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "server/api/convert.h"

namespace picker::status {
namespace {

using http::JsonWriter;

uint64_t Load(const std::atomic<uint64_t>& value) { return value.load(std::memory_order_relaxed); }

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

// A number parameter in [min, max], or `fallback` when absent.
absl::StatusOr<size_t> SizeParameter(const http::Request& request, const char* name, size_t min,
                                     size_t max, size_t fallback) {
  const std::string& text = request.Query(name);
  if (text.empty()) return fallback;
  size_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": must be a whole number from ", min,
                                                   " to ", max, ", got \"", text, "\""));
  }
  return value;
}

// One word for what a person should see first: healthy, ejected (passive
// checks), unhealthy (manual override or active checks) or disabled
// (weight 0, never picked).
const char* StateWord(const core::SnapshotTarget& t) {
  if (t.config.weight == 0) return "disabled";
  if (t.healthy) return "healthy";
  if (t.reasons & (core::kReasonManual | core::kReasonActive)) return "unhealthy";
  return "ejected";
}

void WriteReasons(JsonWriter& json, uint32_t reasons) {
  json.BeginArray();
  if (reasons & core::kReasonManual) json.String("manual");
  if (reasons & core::kReasonPassive) json.String("passive");
  if (reasons & core::kReasonActive) json.String("active");
  if (reasons & core::kReasonWeightZero) json.String("weight_zero");
  json.EndArray();
}

const char* OverrideWord(core::HealthOverride value) {
  switch (value) {
    case core::HealthOverride::kHealthy:
      return "healthy";
    case core::HealthOverride::kUnhealthy:
      return "unhealthy";
    case core::HealthOverride::kNone:
      break;
  }
  return "none";
}

// The upstream's configuration as the Admin API's JSON has it (snake_case
// names, the effective values).
std::string ConfigJson(const core::UpstreamConfig& config) {
  v1::Upstream upstream = api::ToProto(config);
  upstream.clear_name();
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(upstream, &out, options).ok()) return "null";
  return out;
}

}  // namespace

absl::StatusOr<PageQuery> ParsePageQuery(const http::Request& request) {
  PageQuery query;
  query.filter = request.Query("filter");
  absl::StatusOr<size_t> offset =
      SizeParameter(request, "offset", 0, std::numeric_limits<uint32_t>::max(), 0);
  if (!offset.ok()) return offset.status();
  absl::StatusOr<size_t> size =
      SizeParameter(request, "size", 1, PageQuery::kMaxSize, PageQuery::kDefaultSize);
  if (!size.ok()) return size.status();
  query.offset = *offset;
  query.size = *size;
  return query;
}

StatusReport::StatusReport(const core::SnapshotMap& snapshots, ProcessInfo process)
    : snapshots_(snapshots), process_(std::move(process)) {}

std::string StatusReport::Json(const PageQuery& query) {
  const Now now{RateTracker::Clock::now(), std::chrono::system_clock::now()};
  const Snapshots all = snapshots_.List();
  JsonWriter json;
  json.BeginObject();
  WriteProcess(json, now);
  WriteTotals(json, all, now);
  const std::string filter = absl::AsciiStrToLower(query.filter);
  size_t matched = 0;
  json.Key("upstreams").BeginArray();
  for (const auto& snapshot : all) {
    if (!filter.empty() &&
        !absl::StrContains(absl::AsciiStrToLower(snapshot->config().name), filter)) {
      continue;
    }
    if (matched >= query.offset && matched - query.offset < query.size) {
      WriteUpstream(json, *snapshot, now);
    }
    ++matched;
  }
  json.EndArray();
  json.Key("page").BeginObject();
  json.Key("filter").String(query.filter);
  json.Key("offset").Number(static_cast<uint64_t>(query.offset));
  json.Key("size").Number(static_cast<uint64_t>(query.size));
  json.Key("matched").Number(static_cast<uint64_t>(matched));
  json.Key("next_offset");
  if (query.offset + query.size < matched) {
    json.Number(static_cast<uint64_t>(query.offset + query.size));
  } else {
    json.Null();
  }
  json.EndObject();
  json.EndObject();
  return std::move(json).Take();
}

void StatusReport::WriteProcess(JsonWriter& json, const Now& now) const {
  json.Key("version").String(process_.version);
  json.Key("started_at").String(Rfc3339(process_.started_wall));
  json.Key("now").String(Rfc3339(now.wall));
  json.Key("uptime_seconds")
      .Number(std::chrono::duration<double>(now.steady - process_.started).count());
  WriteReplica(json);
}

// Null for a server alone. With replicas, counts on this page are the
// picks this replica served: an upstream another replica owns shows that
// owner, and its counts are there.
void StatusReport::WriteReplica(JsonWriter& json) const {
  json.Key("replica");
  const core::Replicas* replicas = process_.replicas;
  if (replicas == nullptr || !replicas->shared()) {
    json.Null();
    return;
  }
  json.BeginObject();
  json.Key("id").String(replicas->self_id());
  json.Key("ownership_confirmed").Bool(replicas->confirmed());
  json.Key("members").BeginArray();
  for (const core::Replicas::Peer& peer : replicas->Members()) json.String(peer.id);
  json.EndArray();
  json.EndObject();
}

void StatusReport::WriteTotals(JsonWriter& json, const Snapshots& all, const Now& now) {
  uint64_t targets = 0, healthy = 0, panics = 0, active = 0, picks = 0;
  for (const auto& snapshot : all) {
    targets += snapshot->targets().size();
    healthy += snapshot->healthy_count();
    panics += snapshot->panic() ? 1 : 0;
    active += Load(snapshot->live().active_requests);
    picks += Load(snapshot->live().counters.picks[static_cast<size_t>(core::PickResult::kOk)]);
  }
  json.Key("totals").BeginObject();
  json.Key("upstreams").Number(static_cast<uint64_t>(all.size()));
  json.Key("upstreams_in_panic").Number(panics);
  json.Key("targets").Number(targets);
  json.Key("healthy_targets").Number(healthy);
  json.Key("active_requests").Number(active);
  json.Key("picks_total").Number(picks);
  json.Key("picks_per_second");
  if (auto rate = rates_.Rate("", picks, now.steady)) {
    json.Number(*rate);
  } else {
    json.Null();
  }
  json.EndObject();
}

void StatusReport::WriteUpstream(JsonWriter& json, const core::UpstreamSnapshot& snapshot,
                                 const Now& now) {
  const core::UpstreamConfig& config = snapshot.config();
  const core::UpstreamLive& live = snapshot.live();
  const uint64_t picks = Load(live.counters.picks[static_cast<size_t>(core::PickResult::kOk)]);
  json.BeginObject();
  json.Key("name").String(config.name);
  if (process_.replicas != nullptr && process_.replicas->shared()) {
    const auto owner = process_.replicas->OwnerOf(config.name);
    json.Key("owner").String(owner ? owner->id : process_.replicas->self_id());
  }
  json.Key("strategy").String(core::StrategyName(config.load_balancer.kind));
  json.Key("config").Raw(ConfigJson(config));
  json.Key("panic").Bool(snapshot.panic());
  json.Key("healthy_targets").Number(snapshot.healthy_count());
  json.Key("total_targets").Number(static_cast<uint64_t>(snapshot.targets().size()));
  json.Key("active_requests").Number(Load(live.active_requests));
  json.Key("picks_total").Number(picks);
  json.Key("picks_per_second");
  if (auto rate = rates_.Rate("u\n" + config.name, picks, now.steady)) {
    json.Number(*rate);
  } else {
    json.Null();
  }
  json.Key("ejections_total").Number(Load(live.counters.ejections));
  WriteTargets(json, snapshot, now);
  json.EndObject();
}

void StatusReport::WriteTargets(JsonWriter& json, const core::UpstreamSnapshot& snapshot,
                                const Now& now) {
  const std::vector<core::SnapshotTarget>& targets = snapshot.targets();
  const std::vector<double> hash_shares = snapshot.TargetHashShares();
  std::vector<double> weight_shares(targets.size(), 0.0);
  uint64_t pickable_weight = 0;
  for (uint32_t i : snapshot.pickable_targets()) pickable_weight += targets[i].config.weight;
  for (uint32_t i : snapshot.pickable_targets()) {
    weight_shares[i] = static_cast<double>(targets[i].config.weight) / pickable_weight;
  }
  const std::string prefix = absl::StrCat("t\n", snapshot.config().name, "\n");
  json.Key("targets").BeginArray();
  for (size_t i = 0; i < targets.size(); ++i) {
    const core::SnapshotTarget& t = targets[i];
    json.BeginObject();
    json.Key("address").String(t.config.address);
    json.Key("zone").String(t.config.zone);
    json.Key("weight").Number(t.config.weight);
    json.Key("state").String(StateWord(t));
    json.Key("healthy").Bool(t.healthy);
    json.Key("reasons");
    WriteReasons(json, t.reasons);
    json.Key("health_override").String(OverrideWord(t.health_override));
    json.Key("ejected_until");
    t.returns_at ? json.String(Rfc3339(*t.returns_at)) : json.Null();
    json.Key("ejections").Number(t.live->ejections.load(std::memory_order_relaxed));
    json.Key("active_requests").Number(Load(t.live->active_requests));
    const uint64_t picks = Load(t.live->picks);
    json.Key("picks_total").Number(picks);
    json.Key("picks_per_second");
    if (auto rate = rates_.Rate(prefix + t.config.address, picks, now.steady)) {
      json.Number(*rate);
    } else {
      json.Null();
    }
    json.Key("weight_share").Number(weight_shares[i]);
    json.Key("hash_share");
    hash_shares.empty() ? json.Null() : json.Number(hash_shares[i]);
    // Null unless the target is in slow start (RoundRobin, LeastRequest).
    json.Key("slow_start_factor");
    if (auto factor = snapshot.SlowStartFactorOf(static_cast<uint32_t>(i), now.wall)) {
      json.Number(*factor);
    } else {
      json.Null();
    }
    json.EndObject();
  }
  json.EndArray();
}

}  // namespace picker::status
