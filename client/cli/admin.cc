// picker-cli's commands over picker.v1.Admin, one upstream or target at a
// time: list, get, create, update, delete, targets, put-target,
// delete-target, set-health, clear-health, health, explain.
#include <iostream>
#include <map>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/cli/cli.h"
#include "client/cli/flags.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace picker::cli {
namespace {

// Checks the argument count: `names` are the arguments the command wants.
bool WantArgs(const CommandLine& cl, std::initializer_list<const char*> names, int* exit_code) {
  if (cl.args.size() == names.size()) return true;
  std::string usage;
  for (const char* n : names) usage += std::string(" ") + n;
  *exit_code =
      UsageError(absl::StrCat(cl.command, " takes", usage.empty() ? " no arguments" : usage,
                              cl.args.size() > names.size() ? " (too many arguments)" : ""));
  return false;
}

std::string DurationText(const google::protobuf::Duration& d) {
  return absl::FormatDuration(absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos()));
}

std::string StrategyOf(const v1::Upstream& u) {
  switch (u.load_balancer().type_case()) {
    case v1::LoadBalancer::kLeastRequest:
      return "least_request";
    case v1::LoadBalancer::kRingHash:
      return "ring_hash";
    case v1::LoadBalancer::kRandom:
      return "random";
    case v1::LoadBalancer::kMaglev:
      return "maglev";
    case v1::LoadBalancer::kPeakEwma:
      return "peak_ewma";
    case v1::LoadBalancer::kWeightedRoundRobin:
      return "weighted_round_robin";
    default:
      return "round_robin";
  }
}

// A dry run's answers say so, in the table form.
void DryRunNote() {
  if (absl::GetFlag(FLAGS_dry_run)) std::cout << "(dry run: nothing was changed)\n";
}

// The upstream the flags describe: --json first, then --strategy,
// --header-policy and --lease-ttl over it. `paths` gets the update_mask
// paths of the fields the flags set.
int UpstreamFromFlags(const CommandLine& cl, const std::string& name, v1::Upstream& u,
                      std::vector<std::string>& paths) {
  if (const std::string json = absl::GetFlag(FLAGS_json); !json.empty()) {
    auto parsed = google::protobuf::util::JsonStringToMessage(json, &u);
    if (!parsed.ok()) return UsageError(absl::StrCat("--json: ", parsed.ToString()));
  }
  u.set_name(name);
  const std::string strategy = absl::GetFlag(FLAGS_strategy);
  v1::LoadBalancer* lb = u.mutable_load_balancer();
  if (strategy == "round_robin") {
    lb->mutable_round_robin();
  } else if (strategy == "least_request") {
    lb->mutable_least_request();
  } else if (strategy == "ring_hash") {
    lb->mutable_ring_hash();
  } else if (strategy == "random") {
    lb->mutable_random();
  } else if (strategy == "maglev") {
    lb->mutable_maglev();
  } else if (strategy == "peak_ewma") {
    lb->mutable_peak_ewma();
  } else if (strategy == "weighted_round_robin") {
    lb->mutable_weighted_round_robin();
  } else if (!strategy.empty()) {
    return UsageError(
        absl::StrCat("--strategy: must be round_robin, least_request, ring_hash, random, maglev, "
                     "peak_ewma or weighted_round_robin, got '",
                     strategy, "'"));
  }
  if (!strategy.empty()) paths.push_back("load_balancer");
  const std::vector<std::string>& headers = cl.Values("header_policy");
  if (!headers.empty()) {
    google::protobuf::RepeatedPtrField<v1::HashPolicy>* policies = nullptr;
    if (lb->has_ring_hash()) policies = lb->mutable_ring_hash()->mutable_hash_policies();
    if (lb->has_maglev()) policies = lb->mutable_maglev()->mutable_hash_policies();
    if (policies == nullptr) {
      return UsageError("--header-policy needs --strategy ring_hash or maglev");
    }
    for (const std::string& h : headers) policies->Add()->mutable_header()->set_name(h);
  }
  if (const std::string ttl = absl::GetFlag(FLAGS_lease_ttl); !ttl.empty()) {
    absl::Duration d;
    if (!absl::ParseDuration(ttl, &d)) return UsageError("--lease-ttl: not a duration: " + ttl);
    u.mutable_lease_ttl()->set_seconds(absl::ToInt64Seconds(d));
    u.mutable_lease_ttl()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(d % absl::Seconds(1))));
    paths.push_back("lease_ttl");
  }
  return kExitOk;
}

void PrintUpstream(const v1::Upstream& u) {
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (auto& [path, value] : Flatten(u)) rows.push_back({path, value});
  PrintTable(rows);
}

void PrintTargets(const google::protobuf::RepeatedPtrField<v1::Target>& targets) {
  std::vector<std::vector<std::string>> rows = {{"ADDRESS", "WEIGHT", "ZONE", "HASH_KEY"}};
  for (const v1::Target& t : targets) {
    rows.push_back({t.address(), absl::StrCat(t.weight()), t.zone(), t.hash_key()});
  }
  PrintTable(rows);
}

std::string ReasonsText(const google::protobuf::RepeatedField<int>& reasons) {
  std::vector<std::string> names;
  for (int r : reasons) names.push_back(v1::TargetHealth::Reason_Name(r));
  return absl::StrJoin(names, ",");
}

void PrintHealthRows(const google::protobuf::RepeatedPtrField<v1::TargetHealth>& targets) {
  std::vector<std::vector<std::string>> rows = {
      {"ADDRESS", "HEALTHY", "REASONS", "ACTIVE", "EJECTIONS", "RETURNS_AT"}};
  for (const v1::TargetHealth& t : targets) {
    rows.push_back(
        {t.address(), t.healthy() ? "yes" : "no", ReasonsText(t.reasons()),
         absl::StrCat(t.active_requests()), absl::StrCat(t.ejections()),
         t.has_returns_at() ? google::protobuf::util::TimeUtil::ToString(t.returns_at()) : ""});
  }
  PrintTable(rows);
}

// Runs one unary admin call and prints its answer; `table` prints it for
// people.
template <typename Request, typename Response, typename Call>
int Unary(const Connection& c, const std::string& what, const Request& request, Call call,
          const std::function<void(const Response&)>& table) {
  auto stub = c.Admin();
  Response response;
  auto context = c.Context();
  grpc::Status status = ((*stub).*call)(context.get(), request, &response);
  if (!status.ok()) return RpcError(what, status);
  Print(c, response, [&] { table(response); });
  return kExitOk;
}

// Runs a listing admin call over all its pages and prints the whole
// answer (one page would drop what follows it).
template <typename Request, typename Response, typename Entries, typename Table>
int Listing(const Connection& c, const std::string& what, const Request& request,
            grpc::Status (v1::Admin::Stub::*call)(grpc::ClientContext*, const Request&, Response*),
            Entries entries, Table table) {
  Response all;
  if (grpc::Status s = ReadAllPages(c, request, call, entries, all); !s.ok()) {
    return RpcError(what, s);
  }
  Print(c, all, [&] { table(all); });
  return kExitOk;
}

}  // namespace

int RunList(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {}, &code)) return code;
  return Listing(
      c, "list", v1::ListUpstreamsRequest(), &v1::Admin::Stub::ListUpstreams,
      [](auto& r) { return r.mutable_upstreams(); },
      [](const v1::ListUpstreamsResponse& r) {
        std::vector<std::vector<std::string>> rows = {{"NAME", "STRATEGY", "LEASE_TTL", "PANIC"}};
        for (const v1::Upstream& u : r.upstreams()) {
          rows.push_back({u.name(), StrategyOf(u), DurationText(u.lease_ttl()),
                          absl::StrCat(u.panic_threshold_percent(), "%")});
        }
        PrintTable(rows);
      });
}

int RunGet(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM"}, &code)) return code;
  v1::GetUpstreamRequest request;
  request.set_name(cl.args[0]);
  return Unary<v1::GetUpstreamRequest, v1::Upstream>(c, "get", request,
                                                     &v1::Admin::Stub::GetUpstream, PrintUpstream);
}

int RunCreate(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM"}, &code)) return code;
  v1::CreateUpstreamRequest request;
  std::vector<std::string> paths;
  if (int e = UpstreamFromFlags(cl, cl.args[0], *request.mutable_upstream(), paths)) return e;
  request.set_validate_only(absl::GetFlag(FLAGS_dry_run));
  return Unary<v1::CreateUpstreamRequest, v1::Upstream>(
      c, "create", request, &v1::Admin::Stub::CreateUpstream, [](const v1::Upstream& u) {
        std::cout << "created upstream " << u.name() << " (" << StrategyOf(u) << ")\n";
        DryRunNote();
      });
}

int RunUpdate(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM"}, &code)) return code;
  v1::UpdateUpstreamRequest request;
  std::vector<std::string> paths;
  if (int e = UpstreamFromFlags(cl, cl.args[0], *request.mutable_upstream(), paths)) return e;
  if (const std::string mask = absl::GetFlag(FLAGS_mask); !mask.empty()) {
    paths = absl::StrSplit(mask, ',', absl::SkipEmpty());
  } else if (paths.empty() && absl::GetFlag(FLAGS_json).empty()) {
    return UsageError("update: say what to change (--strategy, --lease-ttl, --json, --mask)");
  }
  // With --json alone, the whole configuration is replaced (no mask).
  if (!absl::GetFlag(FLAGS_mask).empty() || absl::GetFlag(FLAGS_json).empty()) {
    for (const std::string& p : paths) request.mutable_update_mask()->add_paths(p);
  }
  request.set_validate_only(absl::GetFlag(FLAGS_dry_run));
  return Unary<v1::UpdateUpstreamRequest, v1::Upstream>(
      c, "update", request, &v1::Admin::Stub::UpdateUpstream, [](const v1::Upstream& u) {
        PrintUpstream(u);
        DryRunNote();
      });
}

int RunDelete(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM"}, &code)) return code;
  v1::DeleteUpstreamRequest request;
  request.set_name(cl.args[0]);
  request.set_validate_only(absl::GetFlag(FLAGS_dry_run));
  return Unary<v1::DeleteUpstreamRequest, v1::DeleteUpstreamResponse>(
      c, "delete", request, &v1::Admin::Stub::DeleteUpstream, [&](const auto&) {
        std::cout << "deleted upstream " << cl.args[0] << "\n";
        DryRunNote();
      });
}

int RunTargets(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM"}, &code)) return code;
  v1::ListTargetsRequest request;
  request.set_upstream(cl.args[0]);
  return Listing(
      c, "targets", request, &v1::Admin::Stub::ListTargets,
      [](auto& r) { return r.mutable_targets(); },
      [](const v1::ListTargetsResponse& r) { PrintTargets(r.targets()); });
}

int RunPutTarget(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM", "ADDRESS"}, &code)) return code;
  v1::PutTargetRequest request;
  request.set_upstream(cl.args[0]);
  v1::Target* t = request.mutable_target();
  t->set_address(cl.args[1]);
  if (const int64_t w = absl::GetFlag(FLAGS_weight); w >= 0) {
    if (w > 65535) return UsageError("--weight: must be 0..65535");
    t->set_weight(static_cast<uint32_t>(w));
  }
  t->set_zone(absl::GetFlag(FLAGS_zone));
  t->set_hash_key(absl::GetFlag(FLAGS_hash_key));
  request.set_validate_only(absl::GetFlag(FLAGS_dry_run));
  return Unary<v1::PutTargetRequest, v1::Target>(
      c, "put-target", request, &v1::Admin::Stub::PutTarget, [](const v1::Target& target) {
        google::protobuf::RepeatedPtrField<v1::Target> one;
        *one.Add() = target;
        PrintTargets(one);
        DryRunNote();
      });
}

int RunDeleteTarget(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM", "ADDRESS"}, &code)) return code;
  v1::DeleteTargetRequest request;
  request.set_upstream(cl.args[0]);
  request.set_address(cl.args[1]);
  request.set_validate_only(absl::GetFlag(FLAGS_dry_run));
  return Unary<v1::DeleteTargetRequest, v1::DeleteTargetResponse>(
      c, "delete-target", request, &v1::Admin::Stub::DeleteTarget, [&](const auto&) {
        std::cout << "deleted target " << cl.args[1] << " of " << cl.args[0] << "\n";
        DryRunNote();
      });
}

// set-health UPSTREAM ADDRESS healthy|unhealthy, and clear-health.
int RunSetHealth(const Connection& c, const CommandLine& cl) {
  const bool clear = cl.command == "clear-health";
  int code;
  if (clear ? !WantArgs(cl, {"UPSTREAM", "ADDRESS"}, &code)
            : !WantArgs(cl, {"UPSTREAM", "ADDRESS", "healthy|unhealthy"}, &code)) {
    return code;
  }
  v1::SetTargetHealthRequest request;
  request.set_upstream(cl.args[0]);
  request.set_address(cl.args[1]);
  if (clear) {
    request.set_override(v1::SetTargetHealthRequest::CLEAR);
  } else if (cl.args[2] == "healthy") {
    request.set_override(v1::SetTargetHealthRequest::HEALTHY);
  } else if (cl.args[2] == "unhealthy") {
    request.set_override(v1::SetTargetHealthRequest::UNHEALTHY);
  } else {
    return UsageError("set-health: the health is healthy or unhealthy, got '" + cl.args[2] + "'");
  }
  request.set_validate_only(absl::GetFlag(FLAGS_dry_run));
  return Unary<v1::SetTargetHealthRequest, v1::SetTargetHealthResponse>(
      c, cl.command, request, &v1::Admin::Stub::SetTargetHealth,
      [](const v1::SetTargetHealthResponse& r) {
        google::protobuf::RepeatedPtrField<v1::TargetHealth> one;
        *one.Add() = r.target();
        PrintHealthRows(one);
        DryRunNote();
      });
}

int RunHealth(const Connection& c, const CommandLine& cl) {
  int code;
  if (!WantArgs(cl, {"UPSTREAM"}, &code)) return code;
  v1::GetUpstreamHealthRequest request;
  request.set_name(cl.args[0]);
  return Listing(
      c, "health", request, &v1::Admin::Stub::GetUpstreamHealth,
      [](auto& h) { return h.mutable_targets(); },
      [](const v1::UpstreamHealth& h) {
        std::cout << h.name() << ": " << h.healthy_targets() << " of " << h.total_targets()
                  << " targets healthy" << (h.panic() ? ", in panic" : "") << "\n";
        PrintHealthRows(h.targets());
      });
}

}  // namespace picker::cli
