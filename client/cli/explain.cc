// picker-cli explain: what a pick would choose now, and why, as a small
// report (picker.v1.Admin/ExplainPick).
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli.h"
#include "client/cli/flags.h"
#include "google/protobuf/util/time_util.h"

namespace picker::cli {
namespace {

// K=V values of a repeatable flag into `out`; an error message, or empty.
std::string Pairs(const CommandLine& cl, const std::string& flag,
                  google::protobuf::Map<std::string, std::string>* out) {
  for (const std::string& kv : cl.Values(flag)) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::StrCat("--", flag, " wants KEY=VALUE, got '", kv, "'");
    }
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return "";
}

void PrintReport(const v1::PickExplanation& x) {
  std::cout << "upstream " << x.upstream() << " (" << x.strategy() << ")\n";
  if (x.has_client_config()) {
    std::cout << "  client_configs[" << x.client_config()
              << "] applies: the upstream's configuration for this caller\n";
  }
  for (const auto& p : x.hash_policies()) {
    std::cout << "  hash policy " << p.policy() << (p.terminal() ? " (terminal)" : "") << ": "
              << p.result() << (p.has_value() ? absl::StrCat(" ", p.value()) : "") << "\n";
  }
  std::cout << "  request hash: "
            << (x.has_hash() ? absl::StrCat(x.hash(), " (", x.hash_source(), ")")
                             : "none: drawn at random by each pick")
            << "\n";
  const auto& l = x.locality();
  if (l.applies()) {
    std::cout << "  locality: zone " << l.client_zone() << " takes " << l.local_percent()
              << "% of picks; "
              << (l.draw() == 0 ? "the priority is random"
                                : absl::StrCat("draw ", l.draw(), " -> priority ", l.priority(),
                                               l.priority() == 0 ? " (the client's zone)"
                                                                 : " (the other zones)"))
              << "\n";
  }
  if (x.panic()) std::cout << "  panic: unhealthy targets are picked too\n";
  for (const auto& p : x.passed_over()) {
    std::cout << "  passed over " << p.address() << ": "
              << (p.reason() == "bounded_load"
                      ? absl::StrFormat("bounded load (%.2f x its cap)", p.overload())
                      : std::string("excluded or at its circuit-breaker cap"))
              << "\n";
  }
  if (x.passed_over_not_listed() > 0) {
    std::cout << "  (" << x.passed_over_not_listed() << " more passed over, not listed)\n";
  }
  if (x.deterministic()) {
    std::cout << "  chosen: " << x.target();
    if (x.has_entry_hash()) {
      std::cout << " (ring entry " << x.entry() << ", hash " << x.entry_hash() << ")";
    } else if (x.has_entry()) {
      std::cout << " (table slot " << x.entry() << ")";
    }
    std::cout << "\n";
  } else if (x.candidates().empty()) {
    std::cout << "  no target can be picked: Pick answers UNAVAILABLE\n";
  } else {
    std::cout << "  random choice among:\n";
    std::vector<std::vector<std::string>> rows = {
        {"    TARGET", "PROBABILITY", "ACTIVE", "WEIGHT"}};
    for (const auto& c : x.candidates()) {
      rows.push_back({"    " + c.address(), absl::StrFormat("%.2f%%", c.probability() * 100),
                      absl::StrCat(c.active_requests()), absl::StrFormat("%g", c.weight())});
    }
    PrintTable(rows);
    if (x.candidates_not_listed() > 0) {
      std::cout << "    (" << x.candidates_not_listed() << " less likely candidates not listed)\n";
    }
  }
  for (const auto& left : x.left_out()) {
    std::vector<std::string> checks;
    for (int r : left.checks()) checks.push_back(v1::TargetHealth::Reason_Name(r));
    std::cout << "  left out " << left.address() << ": " << left.reason();
    if (!checks.empty()) std::cout << " (" << absl::StrJoin(checks, ", ") << ")";
    if (left.has_ejected_until()) {
      std::cout << " until " << google::protobuf::util::TimeUtil::ToString(left.ejected_until());
    }
    std::cout << "\n";
  }
  if (x.left_out_not_listed() > 0) {
    std::cout << "  (" << x.left_out_not_listed() << " more left out, not listed)\n";
  }
}

}  // namespace

// The PickRequest the flags describe (explain; pick builds the same).
int PickRequestFromFlags(const CommandLine& cl, const std::string& upstream, v1::PickRequest& r) {
  r.set_upstream(upstream);
  v1::RequestAttributes* a = r.mutable_attributes();
  for (auto [flag, map] :
       {std::pair{"header", a->mutable_headers()}, std::pair{"cookie", a->mutable_cookies()},
        std::pair{"query", a->mutable_query_params()},
        std::pair{"filter_state", a->mutable_filter_state()}}) {
    if (std::string e = Pairs(cl, flag, map); !e.empty()) return UsageError(e);
  }
  a->set_source_ip(absl::GetFlag(FLAGS_source_ip));
  r.set_client_zone(absl::GetFlag(FLAGS_zone));
  r.set_client_service(absl::GetFlag(FLAGS_client_service));
  if (std::string e = Pairs(cl, "client_tag", r.mutable_client_tags()); !e.empty()) {
    return UsageError(e);
  }
  for (const std::string& e : cl.Values("exclude")) r.add_exclude(e);
  if (const std::string h = absl::GetFlag(FLAGS_hash); !h.empty()) {
    uint64_t hash;
    if (!absl::SimpleAtoi(h, &hash)) return UsageError("--hash wants an unsigned 64-bit number");
    r.set_hash(hash);
  }
  return kExitOk;
}

int RunExplain(const Connection& c, const CommandLine& cl) {
  if (cl.args.size() != 1) return UsageError("explain takes UPSTREAM");
  v1::PickRequest request;
  if (int e = PickRequestFromFlags(cl, cl.args[0], request)) return e;
  auto stub = c.Admin();
  v1::PickExplanation response;
  auto context = c.Context();
  grpc::Status status = stub->ExplainPick(context.get(), request, &response);
  if (!status.ok()) return RpcError("explain", status);
  Print(c, response, [&] { PrintReport(response); });
  return kExitOk;
}

}  // namespace picker::cli
