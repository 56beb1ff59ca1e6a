// picker-cli: the operator's tool for picker. Administration over
// picker.v1.Admin (--admin-addr), picks and releases over picker.v1.Picker
// (--addr), and a declarative sync of whole upstreams from the YAML file
// format of picker-server --config (dump, diff, apply).
//
//   picker-cli list
//   picker-cli create users --strategy ring_hash --header-policy x-user
//   picker-cli put-target users 10.0.0.1:8080 --weight 50
//   picker-cli explain users --header x-user=42
//   picker-cli dump > picker.yaml; picker-cli diff picker.yaml; picker-cli apply picker.yaml
//
// The command line is parsed with abseil's flags (types, help, values);
// flags may come anywhere on the line. Exit codes: see cli/cli.h.
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/cli/cli.h"
#include "client/cli/flags.h"
#include "picker/version.h"

ABSL_FLAG(std::string, admin_addr, "127.0.0.1:50052", "Admin API address (picker.v1.Admin).");
ABSL_FLAG(std::string, addr, "127.0.0.1:50051",
          "Data plane address (picks, releases, healthcheck).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the admin token, sent as 'authorization: Bearer <token>'.");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle to verify the server (turns TLS on).");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate for mutual TLS (turns TLS on).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert.");
ABSL_FLAG(bool, tls, false, "Use TLS with the system's roots (implied by --tls-ca, --tls-cert).");
ABSL_FLAG(std::string, output, "table", "Output format: table, json or yaml (also -o).");
ABSL_FLAG(int64_t, deadline_ms, 5000, "Deadline of each RPC, in milliseconds.");
ABSL_FLAG(bool, dry_run, false,
          "Writes: validate and show what would be stored, change nothing (validate_only). "
          "apply: show the diff and what it would move.");
ABSL_FLAG(bool, prune, false, "diff, apply: also delete upstreams the file does not declare.");
ABSL_FLAG(std::string, strategy, "",
          "create, update: round_robin, least_request, ring_hash, random, maglev, peak_ewma or "
          "weighted_round_robin.");
ABSL_FLAG(std::string, json, "",
          "create, update: the upstream as JSON (picker.v1.Upstream, as buf curl takes it).");
ABSL_FLAG(std::string, mask, "",
          "update: the fields to change (update_mask, e.g. lease_ttl,health_checks.passive); "
          "without it, the fields other flags set; with --json alone, everything.");
ABSL_FLAG(std::string, lease_ttl, "", "create, update: the lease TTL (e.g. 30s).");
ABSL_FLAG(int64_t, weight, -1, "put-target: weight 0..65535 (unset keeps it, or 100).");
ABSL_FLAG(std::string, zone, "",
          "put-target: the target's zone; explain, pick: the client's zone.");
ABSL_FLAG(std::string, hash_key, "", "put-target: consistent-hash key instead of the address.");
ABSL_FLAG(std::string, upstream, "", "pick, release: the upstream (or give it as an argument).");
ABSL_FLAG(std::string, source_ip, "", "explain, pick: the client's IP.");
ABSL_FLAG(std::string, client_service, "",
          "explain, pick: who is calling (PickRequest.client_service), for per-client "
          "configurations.");
ABSL_FLAG(std::vector<std::string>, client_tag, {},
          "explain, pick: a tag of the caller K=V (PickRequest.client_tags; repeatable).");
ABSL_FLAG(std::string, hash, "", "explain, pick: the request hash to use directly.");
ABSL_FLAG(uint64_t, count, 1, "pick: picks to make.");
ABSL_FLAG(bool, release, false, "pick: release each lease after the pick.");
ABSL_FLAG(bool, stream, false, "pick: pick over PickStream (needs --release).");
ABSL_FLAG(std::string, outcome, "success", "pick, release: success, failure or timeout.");
ABSL_FLAG(int64_t, latency_ms, -1, "pick, release: the latency reported (default: measured).");
ABSL_FLAG(uint64_t, hold_ms, 0, "pick: wait this long between pick and release.");
ABSL_FLAG(uint64_t, lease_id, 0, "release: the lease to release.");
ABSL_FLAG(std::string, service, "", "healthcheck: the service name to check (default: server).");
// Repeatable flags: each occurrence adds a value (kept by the parser below).
ABSL_FLAG(std::vector<std::string>, header, {}, "explain, pick: request header K=V (repeatable).");
ABSL_FLAG(std::vector<std::string>, cookie, {}, "explain, pick: request cookie K=V (repeatable).");
ABSL_FLAG(std::vector<std::string>, query, {}, "explain, pick: query parameter K=V (repeatable).");
ABSL_FLAG(std::vector<std::string>, filter_state, {},
          "explain, pick: filter-state K=V (repeatable).");
ABSL_FLAG(std::vector<std::string>, exclude, {}, "explain, pick: target to avoid (repeatable).");
ABSL_FLAG(std::vector<std::string>, header_policy, {},
          "create, update: hash on this header (ring_hash, maglev; repeatable).");

namespace {

constexpr char kUsage[] = R"(picker-cli: the operator's tool for picker.

Usage: picker-cli COMMAND [ARGS] [FLAGS]   (flags may come anywhere)

Upstreams and targets (picker.v1.Admin at --admin-addr):
  list                                  upstreams
  get UPSTREAM                          one upstream's configuration
  create UPSTREAM [--strategy S] [--header-policy H] [--lease-ttl D] [--json J]
  update UPSTREAM [--strategy S] [--header-policy H] [--lease-ttl D] [--json J] [--mask PATHS]
  delete UPSTREAM
  targets UPSTREAM                      its targets
  put-target UPSTREAM ADDRESS [--weight N] [--zone Z] [--hash-key K]
  delete-target UPSTREAM ADDRESS
  set-health UPSTREAM ADDRESS healthy|unhealthy
  clear-health UPSTREAM ADDRESS
  health UPSTREAM                       health of each target
  explain UPSTREAM [--header K=V] [--cookie K=V] [--query K=V] [--filter-state K=V]
                   [--source-ip IP] [--hash N] [--zone Z] [--exclude ADDRESS]
                   [--client-service S] [--client-tag K=V]
                                        what a pick would choose now, and why
Declarative sync (the YAML format of picker-server --config):
  dump                                  every upstream and its targets, as YAML
  diff FILE [--prune]                   what apply would change, and what it moves
  apply FILE [--prune] [--dry-run]      make the upstreams FILE declares match it
Data plane (--addr):
  pick UPSTREAM [--header K=V ...] [--count N] [--release] [--stream]
  release UPSTREAM --lease-id ID [--outcome O] [--latency-ms N]
  healthcheck [--service S]             grpc.health.v1 Check; exit 0 when SERVING
  version                               picker-cli's version (also --version)
  help                                  this text (also --help)

Writes take --dry-run (validate_only: nothing is stored). -o json|yaml prints
the API's answer; the default is a table. Exit codes: 0 ok; 1 diff found
changes, or not serving; 2 usage error; 3 a local file is unreadable or
invalid; 8 x the gRPC status code when the server refuses (as buf curl).

Flags:
)";

// Flags that take several values, one per occurrence.
bool Repeatable(const std::string& name) {
  return name == "header" || name == "cookie" || name == "query" || name == "filter_state" ||
         name == "exclude" || name == "header_policy" || name == "client_tag";
}

void PrintHelp() {
  std::cout << kUsage;
  std::map<std::string, const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::StrContains(flag->Filename(), "picker-cli")) continue;
    flags[absl::StrReplaceAll(name, {{"_", "-"}})] = flag;
  }
  for (const auto& [name, flag] : flags) {
    std::cout << "  --" << name << " (default: " << flag->DefaultValue() << ")\n      "
              << flag->Help() << "\n";
  }
}

// Parses argv with abseil's flag registry: each --flag[=value] (or -o
// VALUE) is looked up and typed by abseil; anything else is the command or
// an argument. Returns an error message, empty when fine.
std::string Parse(int argc, char** argv, picker::cli::CommandLine& out) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      positional.insert(positional.end(), argv + i + 1, argv + argc);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    std::string name = arg == "-o" ? "output" : arg.substr(arg[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    name = absl::StrReplaceAll(name, {{"-", "_"}});
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr || !absl::StrContains(flag->Filename(), "picker-cli")) {
      return absl::StrCat("unknown flag ", arg.substr(0, arg.find('=')));
    }
    if (!value && flag->IsOfType<bool>()) value = "true";
    if (!value) {
      if (i + 1 >= argc) return absl::StrCat("--", name, " needs a value");
      value = argv[++i];
    }
    if (Repeatable(name)) {
      out.repeated[name].push_back(*value);
      continue;
    }
    std::string error;
    if (!flag->ParseFrom(*value, &error)) return absl::StrCat("--", name, ": ", error);
  }
  if (positional.empty()) return "missing command";
  out.command = positional[0];
  out.args.assign(positional.begin() + 1, positional.end());
  return "";
}

using Command = int (*)(const picker::cli::Connection&, const picker::cli::CommandLine&);

const std::map<std::string, Command>& Commands() {
  using namespace picker::cli;
  static const std::map<std::string, Command> commands = {
      {"list", RunList},
      {"get", RunGet},
      {"create", RunCreate},
      {"update", RunUpdate},
      {"delete", RunDelete},
      {"targets", RunTargets},
      {"put-target", RunPutTarget},
      {"delete-target", RunDeleteTarget},
      {"set-health", RunSetHealth},
      {"clear-health", RunSetHealth},
      {"health", RunHealth},
      {"explain", RunExplain},
      {"dump", RunDump},
      {"diff", RunDiff},
      {"apply", RunApply},
      {"pick", RunPick},
      {"release", RunRelease},
      {"healthcheck", RunHealthcheck},
  };
  return commands;
}

}  // namespace

int PrintVersion() {
  std::cout << "picker-cli " << PICKER_VERSION << "\n";
  return 0;
}

int main(int argc, char** argv) {
  // --help and --version win over whatever else the line holds (even an
  // unknown flag); the words help and version count only as the command,
  // so that `get version` reads the upstream named "version".
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      PrintHelp();
      return 0;
    }
    if (arg == "--version") return PrintVersion();
  }
  picker::cli::CommandLine command_line;
  if (std::string error = Parse(argc, argv, command_line); !error.empty()) {
    return picker::cli::UsageError(error);
  }
  if (command_line.command == "help") {
    PrintHelp();
    return 0;
  }
  if (command_line.command == "version") {
    if (!command_line.args.empty()) return picker::cli::UsageError("version takes no arguments");
    return PrintVersion();
  }
  auto it = Commands().find(command_line.command);
  if (it == Commands().end()) {
    return picker::cli::UsageError(absl::StrCat("unknown command '", command_line.command, "'"));
  }
  absl::StatusOr<picker::cli::Connection> connection = picker::cli::Connection::FromFlags();
  if (!connection.ok()) {
    if (connection.status().code() == absl::StatusCode::kInvalidArgument) {
      return picker::cli::UsageError(std::string(connection.status().message()));
    }
    return picker::cli::LocalError(connection.status());
  }
  return it->second(*connection, command_line);
}
