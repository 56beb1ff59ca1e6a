// picker-cli: pick and release from a shell, with picker::Client.
//
//   picker-cli pick --addr 127.0.0.1:50051 --upstream demo --header x-user=42 --release
//   picker-cli release --addr 127.0.0.1:50051 --upstream demo --lease-id 17 --outcome failure
//
// Exit status: 0 on success, 1 when an RPC fails (the status goes to stderr),
// 2 on a usage error.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "picker/client.h"

namespace {

constexpr char kUsage[] =
    R"(picker-cli: pick targets from a picker server and release leases.

Usage:
  picker-cli pick --addr HOST:PORT --upstream NAME [options]
  picker-cli release --addr HOST:PORT --upstream NAME --lease-id ID [--outcome O] [--latency-ms N]

pick options:
  --header K=V         request header for hash policies (repeatable)
  --cookie K=V         request cookie (repeatable)
  --query K=V          query parameter (repeatable)
  --filter-state K=V   filter-state value (repeatable)
  --source-ip IP       client IP address
  --zone ZONE          client zone (locality-aware picks)
  --hash N             request hash to use directly (consistent hashing)
  --exclude HOST:PORT  target to avoid (repeatable)
  --count N            picks to make (default 1)
  --release            release each lease after the pick (otherwise it stays
                       open until released by id or until its TTL)
  --outcome O          outcome reported on release: success, failure, timeout
  --latency-ms N       latency reported on release (default: measured)
  --hold-ms N          wait this long between pick and release
  --stream             pick over PickStream with batched releases
common options:
  --deadline-ms N      deadline of each RPC (default 1000)

Each pick prints: target=HOST:PORT zone=Z lease_id=ID ttl_ms=N [hash=H]
Each release prints: released lease_id=ID state=STATE
)";

int UsageError(const std::string& message) {
  std::cerr << "picker-cli: " << message << "\n(see picker-cli --help)\n";
  return 2;
}

bool ParseUint(const std::string& text, uint64_t* out) {
  if (text.empty()) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t next = value * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != value) return false;  // overflow
    value = next;
  }
  *out = value;
  return true;
}

bool ParseOutcome(const std::string& text, picker::Outcome* out) {
  if (text == "success") {
    *out = picker::Outcome::kSuccess;
  } else if (text == "failure") {
    *out = picker::Outcome::kFailure;
  } else if (text == "timeout") {
    *out = picker::Outcome::kTimeout;
  } else {
    return false;
  }
  return true;
}

struct Args {
  std::string command;
  std::map<std::string, std::vector<std::string>> values;  // flag -> values
  std::vector<std::string> switches;

  const std::string* Get(const std::string& flag) const {
    auto it = values.find(flag);
    return it == values.end() || it->second.empty() ? nullptr : &it->second.back();
  }
  bool Has(const std::string& flag) const {
    for (const auto& s : switches) {
      if (s == flag) return true;
    }
    return false;
  }
};

// Flags taking a value; the others are switches.
bool TakesValue(std::string_view flag) {
  static const char* const kFlags[] = {"addr",       "upstream",     "header",      "cookie",
                                       "query",      "filter-state", "source-ip",   "zone",
                                       "hash",       "exclude",      "count",       "outcome",
                                       "latency-ms", "hold-ms",      "deadline-ms", "lease-id"};
  for (const char* f : kFlags) {
    if (flag == f) return true;
  }
  return false;
}

bool IsSwitch(std::string_view flag) { return flag == "release" || flag == "stream"; }

// Parses argv into args; returns an error message, empty when fine.
std::string Parse(int argc, char** argv, Args* args) {
  if (argc < 2) return "missing command (pick or release)";
  args->command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return "unexpected argument '" + arg + "'";
    std::string flag = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (IsSwitch(flag)) {
      if (value) return "--" + flag + " takes no value";
      args->switches.push_back(flag);
      continue;
    }
    if (!TakesValue(flag)) return "unknown flag --" + flag;
    if (!value) {
      if (i + 1 >= argc) return "--" + flag + " needs a value";
      value = argv[++i];
    }
    args->values[flag].push_back(*value);
  }
  return "";
}

// Reads the K=V values of a repeatable flag.
std::string ParsePairs(const Args& args, const std::string& flag,
                       std::map<std::string, std::string>* out) {
  auto it = args.values.find(flag);
  if (it == args.values.end()) return "";
  for (const std::string& kv : it->second) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return "--" + flag + " wants KEY=VALUE, got '" + kv + "'";
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return "";
}

void PrintLease(const picker::Lease& lease) {
  std::cout << "target=" << lease.target() << " zone=" << lease.zone()
            << " lease_id=" << lease.lease_id() << " ttl_ms=" << lease.lease_ttl().count();
  if (lease.hash()) std::cout << " hash=" << *lease.hash();
  for (const picker::SetCookie& c : lease.set_cookies()) {
    std::cout << " set_cookie=" << c.name << "=" << c.value;
  }
  std::cout << std::endl;
}

// What both commands share: the server, the upstream, the client's options
// and what a release reports.
struct Common {
  std::string addr;
  std::string upstream;
  picker::ClientOptions options;
  picker::Outcome outcome = picker::Outcome::kSuccess;
  std::optional<std::chrono::nanoseconds> latency;  // Unset: measured.
};

// Reads the flags both commands take; returns a usage error, empty when fine.
// Read before the command is looked at: a bad one of these flags is reported
// even with an unknown command.
std::string ParseCommon(const Args& args, Common* common) {
  const std::string* addr = args.Get("addr");
  const std::string* upstream = args.Get("upstream");
  if (addr == nullptr) return "--addr is required";
  if (upstream == nullptr) return "--upstream is required";
  common->addr = *addr;
  common->upstream = *upstream;
  if (const std::string* v = args.Get("deadline-ms")) {
    uint64_t ms;
    if (!ParseUint(*v, &ms) || ms == 0) return "--deadline-ms wants a positive number";
    common->options.deadline = std::chrono::milliseconds(ms);
  }
  common->options.use_stream = args.Has("stream");
  if (const std::string* v = args.Get("outcome")) {
    if (!ParseOutcome(*v, &common->outcome)) {
      return "--outcome wants success, failure or timeout, got '" + *v + "'";
    }
  }
  if (const std::string* v = args.Get("latency-ms")) {
    uint64_t ms;
    if (!ParseUint(*v, &ms)) return "--latency-ms wants a number";
    common->latency = std::chrono::milliseconds(ms);
  }
  return "";
}

// Prints the answer to the release of `lease_id`; returns the exit status.
int ReportRelease(uint64_t lease_id, const absl::StatusOr<picker::ReleaseState>& state) {
  if (!state.ok()) {
    std::cerr << "picker-cli: release failed: " << state.status().ToString() << "\n";
    return 1;
  }
  std::cout << "released lease_id=" << lease_id << " state=" << picker::ReleaseStateName(*state)
            << std::endl;
  return 0;
}

// picker-cli release: one unary Release of a lease picked earlier.
int RunRelease(const Args& args, Common common) {
  const std::string* id_text = args.Get("lease-id");
  uint64_t lease_id;
  if (id_text == nullptr || !ParseUint(*id_text, &lease_id) || lease_id == 0) {
    return UsageError("release needs --lease-id (a positive number)");
  }
  // One release by id: a unary call, with no stream to open and flush.
  common.options.use_stream = false;
  auto client = picker::Client::Create(common.addr, common.options);
  if (!client.ok()) return UsageError(client.status().ToString());
  return ReportRelease(
      lease_id, (*client)->Release(common.upstream, lease_id, common.outcome, common.latency));
}

// What picker-cli pick does, from its flags.
struct PickPlan {
  picker::PickOptions pick;
  uint64_t count = 1;
  uint64_t hold_ms = 0;
  bool release = false;
};

// Reads the pick flags; returns a usage error, empty when fine.
std::string ParsePick(const Args& args, const std::string& upstream, PickPlan* plan) {
  picker::PickOptions& pick = plan->pick;
  pick.upstream = upstream;
  for (const auto& [flag, map] :
       {std::pair{"header", &pick.headers}, std::pair{"cookie", &pick.cookies},
        std::pair{"query", &pick.query_params}, std::pair{"filter-state", &pick.filter_state}}) {
    if (std::string error = ParsePairs(args, flag, map); !error.empty()) return error;
  }
  if (const std::string* v = args.Get("source-ip")) pick.source_ip = *v;
  if (const std::string* v = args.Get("zone")) pick.client_zone = *v;
  if (const std::string* v = args.Get("hash")) {
    uint64_t hash;
    if (!ParseUint(*v, &hash)) return "--hash wants an unsigned 64-bit number";
    pick.hash = hash;
  }
  if (auto it = args.values.find("exclude"); it != args.values.end()) pick.exclude = it->second;
  if (const std::string* v = args.Get("count")) {
    if (!ParseUint(*v, &plan->count) || plan->count == 0) return "--count wants a positive number";
  }
  if (const std::string* v = args.Get("hold-ms")) {
    if (!ParseUint(*v, &plan->hold_ms)) return "--hold-ms wants a number";
  }
  plan->release = args.Has("release");
  return "";
}

// One pick, printed, then the lease released or left open; returns the
// exit status.
int PickOnce(picker::Client& client, const PickPlan& plan, const Common& common) {
  absl::StatusOr<picker::Lease> lease = client.Pick(plan.pick);
  if (!lease.ok()) {
    std::cerr << "picker-cli: pick failed: " << lease.status().ToString() << "\n";
    return 1;
  }
  PrintLease(*lease);
  if (plan.hold_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(plan.hold_ms));
  if (!plan.release) {
    // Left open for a later `picker-cli release` by id, or for its TTL.
    lease->Detach();
    return 0;
  }
  lease->set_outcome(common.outcome);
  if (common.latency) lease->set_latency(*common.latency);
  const uint64_t id = lease->lease_id();
  return ReportRelease(id, lease->Release());
}

// picker-cli pick: --count picks, stopping at the first failure.
int RunPick(const Args& args, const Common& common) {
  PickPlan plan;
  if (std::string error = ParsePick(args, common.upstream, &plan); !error.empty()) {
    return UsageError(error);
  }
  auto client = picker::Client::Create(common.addr, common.options);
  if (!client.ok()) return UsageError(client.status().ToString());
  int status = 0;
  for (uint64_t i = 0; i < plan.count && status == 0; ++i) {
    status = PickOnce(**client, plan, common);
  }
  // With --stream, releases are batched; the last batch must go before exit.
  if (status == 0 && common.options.use_stream) {
    if (absl::Status s = (*client)->Flush(); !s.ok()) {
      std::cerr << "picker-cli: flushing releases failed: " << s.ToString() << "\n";
      status = 1;
    }
  }
  return status;
}

int Run(const Args& args) {
  Common common;
  if (std::string error = ParseCommon(args, &common); !error.empty()) return UsageError(error);
  if (args.command == "release") return RunRelease(args, common);
  if (args.command != "pick") return UsageError("unknown command '" + args.command + "'");
  return RunPick(args, common);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "help") {
      std::cout << kUsage;
      return 0;
    }
  }
  Args args;
  if (std::string error = Parse(argc, argv, &args); !error.empty()) return UsageError(error);
  return Run(args);
}
