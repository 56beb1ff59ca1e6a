// picker-server: flags and wiring only. Everything else lives in core/,
// store/, config/, control/, data/, health/, metrics/ and api/.
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "picker/version.h"
#include "server/api/server.h"
#include "server/config/config_file.h"
#include "server/control/control_plane.h"
#include "server/data/data_plane.h"
#include "server/health/prober.h"
#include "server/metrics/endpoint.h"
#include "server/metrics/metrics.h"
#include "server/program/logging.h"
#include "server/program/program.h"
#include "server/store/file_store.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "Data listener: picker.v1.Picker, grpc.health.v1.Health and reflection.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:50052",
          "Admin listener: picker.v1.Admin, grpc.health.v1.Health and reflection.");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464", "Prometheus metrics at /metrics.");
ABSL_FLAG(std::string, data_dir, "picker-data",
          "Directory of the embedded store that keeps upstreams, targets and health overrides.");
ABSL_FLAG(std::string, config, "",
          "YAML file declaring upstreams and targets, applied at start over the data directory's "
          "state (declared upstreams are created or replaced; others are left alone), and again "
          "on SIGHUP.");
ABSL_FLAG(std::string, check_config, "",
          "Validate this YAML config file as --config would read it, print the result and exit "
          "(0 when valid, 1 when not) without starting.");
ABSL_FLAG(bool, demo, false,
          "Create an upstream named 'demo' with two targets at start if it does not exist.");
ABSL_FLAG(bool, metrics_per_target, false,
          "Also export per-target series (one per target: mind the cardinality).");
ABSL_FLAG(int, drain_timeout_ms, 5000,
          "On SIGTERM, how long in-flight calls get to finish before the server exits.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: both gRPC listeners serve TLS (with --tls-key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: clients must present a certificate it signed (mutual TLS).");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding a token: every picker.v1.Admin call must then send "
          "'authorization: Bearer <token>'. Health and reflection stay open.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC request accepted, in bytes.");
ABSL_FLAG(uint64_t, max_upstreams, 100000, "Most upstreams the server keeps.");
ABSL_FLAG(uint64_t, max_targets_per_upstream, 100000, "Most targets one upstream may have.");
ABSL_FLAG(uint64_t, max_hash_policies, 16, "Most hash policies one upstream may have.");
ABSL_FLAG(uint64_t, max_leases_per_upstream, 1000000,
          "Most outstanding leases (active requests) per upstream; Pick answers "
          "RESOURCE_EXHAUSTED beyond.");
ABSL_FLAG(std::string, log_level, "info",
          "Log level: trace, debug, info, warn, error, critical or off.");
ABSL_FLAG(std::string, log_format, "text",
          "Log format on stderr: text, or json (one JSON object per line; audit lines' fields "
          "as JSON fields).");

namespace {

constexpr char kVersion[] = PICKER_VERSION;

void CreateDemoUpstream(picker::control::ControlPlane& control,
                        const picker::core::SnapshotMap& snapshots) {
  if (snapshots.Find("demo")) return;
  picker::core::UpstreamConfig config;
  config.name = "demo";
  if (auto s = control.Write(picker::core::CreateUpstream{config}); !s.ok()) {
    spdlog::warn("cannot create the demo upstream: {}", s.status().ToString());
    return;
  }
  for (const char* address : {"127.0.0.1:8081", "127.0.0.1:8082"}) {
    picker::core::TargetPatch patch;
    patch.address = address;
    if (auto s = control.Write(picker::core::PutTarget{"demo", patch}); !s.ok()) {
      spdlog::warn("cannot add demo target {}: {}", address, s.status().ToString());
    }
  }
  spdlog::info("created upstream 'demo' with targets 127.0.0.1:8081 and 127.0.0.1:8082");
}

// Applies the declarations of --config through the control plane. Each
// upstream's changes are first tried as a dry run, all of them before any
// is written, so that a file the store would refuse (a limit, say) changes
// nothing.
absl::Status ApplyConfig(const std::vector<picker::config::DeclaredUpstream>& declared,
                         picker::control::ControlPlane& control,
                         const picker::core::SnapshotMap& snapshots) {
  std::vector<picker::core::Change> plan = picker::config::PlanConfig(declared, snapshots);
  for (size_t begin = 0, end = 0; begin < plan.size(); begin = end) {
    const std::string name = picker::core::UpstreamOf(plan[begin]);
    while (end < plan.size() && picker::core::UpstreamOf(plan[end]) == name) ++end;
    std::promise<absl::Status> checked;
    control.Preview(
        {plan.begin() + begin, plan.begin() + end},
        [&](absl::StatusOr<picker::control::WriteResult> r) { checked.set_value(r.status()); });
    if (absl::Status s = checked.get_future().get(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("upstream \"", name, "\": ", s.message()));
    }
  }
  for (picker::core::Change& change : plan) {
    const std::string name = picker::core::UpstreamOf(change);
    if (auto written = control.Write(std::move(change)); !written.ok()) {
      return absl::Status(written.status().code(),
                          absl::StrCat("upstream \"", name, "\": ", written.status().message()));
    }
  }
  return absl::OkStatus();
}

// SIGHUP: reads --config again and applies it as a start does. A bad file
// is logged with the errors a start would stop with, and changes nothing.
void ReloadConfig(picker::control::ControlPlane& control,
                  const picker::core::SnapshotMap& snapshots) {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    spdlog::warn("SIGHUP: no --config to read again; nothing changed");
    return;
  }
  auto declared = picker::config::LoadConfigFile(path);
  if (!declared.ok()) {
    spdlog::error("SIGHUP: bad --config, nothing changed: {}", declared.status().ToString());
    return;
  }
  if (absl::Status s = ApplyConfig(*declared, control, snapshots); !s.ok()) {
    spdlog::error("SIGHUP: cannot apply --config, nothing changed: {}", s.ToString());
    return;
  }
  spdlog::info("SIGHUP: applied {} upstreams from {}", declared->size(), path);
}

// `status` with its message after `context: `.
absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// What start-up stops with: the error, logged, and exit code 1.
int Fail(absl::string_view context, const absl::Status& status) {
  spdlog::critical("{}{}", std::string(context), status.ToString());
  return 1;
}

// The declarations of --config; a bad file stops start-up before anything
// is opened or bound.
absl::StatusOr<std::vector<picker::config::DeclaredUpstream>> ReadDeclarations() {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) return std::vector<picker::config::DeclaredUpstream>{};
  return picker::config::LoadConfigFile(path);
}

absl::StatusOr<picker::api::ServerOptions> ServerOptionsFromFlags() {
  picker::api::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  for (auto [flag, out] :
       {std::pair{absl::GetFlag(FLAGS_tls_cert), &options.tls_cert},
        std::pair{absl::GetFlag(FLAGS_tls_key), &options.tls_key},
        std::pair{absl::GetFlag(FLAGS_tls_client_ca), &options.tls_client_ca},
        std::pair{absl::GetFlag(FLAGS_admin_token_file), &options.admin_token}}) {
    if (flag.empty()) continue;
    absl::StatusOr<std::string> contents = ReadFile(flag);
    if (!contents.ok()) return contents.status();
    *out = *std::move(contents);
  }
  options.admin_token = std::string(absl::StripAsciiWhitespace(options.admin_token));
  if (!absl::GetFlag(FLAGS_admin_token_file).empty() && options.admin_token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--admin-token-file ", absl::GetFlag(FLAGS_admin_token_file), " holds no token"));
  }
  return options;
}

// The store, the published snapshots, and the two planes over them.
struct Planes {
  std::unique_ptr<picker::store::FileStore> store;
  picker::core::SnapshotMap snapshots;
  picker::core::WriterStats writer_stats;
  std::unique_ptr<picker::control::ControlPlane> control;
  std::unique_ptr<picker::data::DataPlane> data;
};

// Opens the store, starts the control plane on it, applies --config (and
// --demo) through it, and starts the data plane.
absl::Status StartPlanes(const std::vector<picker::config::DeclaredUpstream>& declared,
                         Planes& planes) {
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  auto store = picker::store::FileStore::Open(data_dir);
  if (!store.ok()) return WithContext(store.status(), "cannot open the store in " + data_dir);
  planes.store = *std::move(store);
  picker::control::ControlPlane::Options options;
  options.limits = {
      .upstreams = {absl::GetFlag(FLAGS_max_upstreams), "--max-upstreams"},
      .targets_per_upstream = {absl::GetFlag(FLAGS_max_targets_per_upstream),
                               "--max-targets-per-upstream"},
      .hash_policies = {absl::GetFlag(FLAGS_max_hash_policies), "--max-hash-policies"}};
  auto control = picker::control::ControlPlane::Start(*planes.store, planes.snapshots,
                                                      planes.writer_stats, options);
  if (!control.ok()) return WithContext(control.status(), "cannot load the store in " + data_dir);
  planes.control = *std::move(control);
  if (absl::Status s = ApplyConfig(declared, *planes.control, planes.snapshots); !s.ok()) {
    return WithContext(s, "cannot apply --config");
  }
  if (!declared.empty()) {
    spdlog::info("applied {} upstreams from {}", declared.size(), absl::GetFlag(FLAGS_config));
  }
  if (absl::GetFlag(FLAGS_demo)) CreateDemoUpstream(*planes.control, planes.snapshots);
  planes.data = std::make_unique<picker::data::DataPlane>(
      planes.snapshots, *planes.control, planes.store->boot(),
      picker::data::DataPlane::Options{
          .max_leases_per_upstream = {absl::GetFlag(FLAGS_max_leases_per_upstream),
                                      "--max-leases-per-upstream"}});
  return absl::OkStatus();
}

// Serves until SIGTERM or SIGINT (blocked in `signals`), then drains.
int Serve(const picker::api::ServerOptions& options, Planes& planes, const sigset_t& signals) {
  // Active health checks run on their own threads for the upstreams that
  // turn them on; they follow what the control plane publishes.
  picker::health::Prober prober(*planes.control);
  prober.Start();
  planes.control->AddListener(&prober);
  picker::metrics::Metrics metrics(planes.snapshots, planes.writer_stats,
                                   absl::GetFlag(FLAGS_metrics_per_target), kVersion);
  auto server =
      picker::api::Server::Start(options, *planes.control, *planes.data, planes.snapshots, metrics);
  if (!server.ok()) return Fail("", server.status());
  auto endpoint =
      picker::metrics::MetricsEndpoint::Start(absl::GetFlag(FLAGS_metrics_listen), metrics);
  if (!endpoint.ok()) return Fail("", endpoint.status());
  spdlog::info("picker-server {} listening data={} admin={} metrics={} data-dir={}{}{}", kVersion,
               (*server)->data_address(), (*server)->admin_address(), (*endpoint)->address(),
               absl::GetFlag(FLAGS_data_dir), options.tls_cert.empty() ? "" : " tls=on",
               options.admin_token.empty() ? "" : " admin-token=on");

  int signal = 0;
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    ReloadConfig(*planes.control, planes.snapshots);
  }
  spdlog::info("received {}, draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown(std::chrono::milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms)));
  server->reset();
  (*endpoint)->Stop();
  planes.control->RemoveListener(&prober);
  prober.Stop();
  // Every acknowledged admin write is already on disk (the store syncs each
  // one), so there is nothing left to flush.
  spdlog::info("stopped");
  return 0;
}

// --check-config: the file as --config would read it, and nothing else.
int CheckConfig(const std::string& path) {
  auto declared = picker::config::LoadConfigFile(path);
  if (!declared.ok()) return Fail("bad --config: ", declared.status());
  std::printf("%s: valid, %zu upstreams\n", path.c_str(), declared->size());
  return 0;
}

int Run() {
  // Signals are taken synchronously by the main thread: block them before
  // any other thread starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto declared = ReadDeclarations();
  if (!declared.ok()) return Fail("bad --config: ", declared.status());
  auto options = ServerOptionsFromFlags();
  if (!options.ok()) return Fail("", options.status());
  Planes planes;
  if (absl::Status s = StartPlanes(*declared, planes); !s.ok()) return Fail("", s);
  return Serve(*options, planes, signals);
}

}  // namespace

int main(int argc, char** argv) {
  picker::program::DisableMutexDeadlockDetection();
  spdlog::set_default_logger(spdlog::stderr_color_mt("picker"));
  picker::program::ParseCommandLine(
      argc, argv, "picker-server",
      "picker-server: a stateful gRPC load-balancing service.\n"
      "Clients call picker.v1.Picker/Pick to learn which target should take their next request\n"
      "and Release when it ends; operators manage upstreams with picker.v1.Admin.\n");
  absl::StatusOr<int> level = picker::program::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) {
    spdlog::critical("{}", std::string(level.status().message()));
    return 1;
  }
  spdlog::set_level(static_cast<spdlog::level::level_enum>(*level));
  if (absl::Status s = picker::program::ConfigureLogging(absl::GetFlag(FLAGS_log_format));
      !s.ok()) {
    spdlog::critical("{}", std::string(s.message()));
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_check_config); !path.empty()) {
    return CheckConfig(path);
  }
  return Run();
}
