// picker-server: flags and wiring only. Everything else lives in core/,
// store/, metrics/ and api/.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/api/server.h"
#include "server/config/config_file.h"
#include "server/core/registry.h"
#include "server/health/prober.h"
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
          "state (declared upstreams are created or replaced; others are left alone).");
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
ABSL_FLAG(std::string, log_level, "info", "Log level: trace, debug, info, warn, error.");
ABSL_FLAG(std::string, log_format, "text",
          "Log format on stderr: text, or json (one JSON object per line; audit lines' fields "
          "as JSON fields).");

namespace {

constexpr char kVersion[] = "0.1.0";

void CreateDemoUpstream(picker::core::Registry& registry) {
  if (registry.Find("demo")) return;
  picker::core::UpstreamConfig config;
  config.name = "demo";
  if (auto s = registry.CreateUpstream(config); !s.ok()) {
    spdlog::warn("cannot create the demo upstream: {}", s.status().ToString());
    return;
  }
  for (const char* address : {"127.0.0.1:8081", "127.0.0.1:8082"}) {
    picker::core::TargetPatch patch;
    patch.address = address;
    if (auto s = registry.PutTarget("demo", patch); !s.ok()) {
      spdlog::warn("cannot add demo target {}: {}", address, s.status().ToString());
    }
  }
  spdlog::info("created upstream 'demo' with targets 127.0.0.1:8081 and 127.0.0.1:8082");
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

int Run() {
  // Signals are taken synchronously by the main thread: block them before
  // any other thread starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // A bad config file must stop start-up before anything is opened or bound.
  std::vector<picker::config::DeclaredUpstream> declared;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    auto parsed = picker::config::LoadConfigFile(path);
    if (!parsed.ok()) {
      spdlog::critical("bad --config: {}", std::string(parsed.status().message()));
      return 1;
    }
    declared = *std::move(parsed);
  }

  picker::api::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  for (auto [flag, out] :
       {std::pair{absl::GetFlag(FLAGS_tls_cert), &options.tls_cert},
        std::pair{absl::GetFlag(FLAGS_tls_key), &options.tls_key},
        std::pair{absl::GetFlag(FLAGS_tls_client_ca), &options.tls_client_ca},
        std::pair{absl::GetFlag(FLAGS_admin_token_file), &options.admin_token}}) {
    if (flag.empty()) continue;
    absl::StatusOr<std::string> contents = ReadFile(flag);
    if (!contents.ok()) {
      spdlog::critical("{}", contents.status().ToString());
      return 1;
    }
    *out = *std::move(contents);
  }
  options.admin_token = std::string(absl::StripAsciiWhitespace(options.admin_token));
  if (!absl::GetFlag(FLAGS_admin_token_file).empty() && options.admin_token.empty()) {
    spdlog::critical("--admin-token-file {} holds no token", absl::GetFlag(FLAGS_admin_token_file));
    return 1;
  }

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  auto store = picker::store::FileStore::Open(data_dir);
  if (!store.ok()) {
    spdlog::critical("{}", store.status().ToString());
    return 1;
  }
  picker::core::Registry::Options limits;
  limits.max_upstreams = absl::GetFlag(FLAGS_max_upstreams);
  limits.max_targets_per_upstream = absl::GetFlag(FLAGS_max_targets_per_upstream);
  limits.max_hash_policies = absl::GetFlag(FLAGS_max_hash_policies);
  limits.max_leases_per_upstream = absl::GetFlag(FLAGS_max_leases_per_upstream);
  auto registry = picker::core::Registry::Open(store->get(), limits);
  if (!registry.ok()) {
    spdlog::critical("cannot load the store in {}: {}", data_dir, registry.status().ToString());
    return 1;
  }
  if (absl::Status s = picker::config::ApplyConfig(declared, **registry); !s.ok()) {
    spdlog::critical("cannot apply --config: {}", s.ToString());
    return 1;
  }
  if (!declared.empty()) {
    spdlog::info("applied {} upstreams from {}", declared.size(), absl::GetFlag(FLAGS_config));
  }
  if (absl::GetFlag(FLAGS_demo)) CreateDemoUpstream(**registry);

  // Active health checks run on their own threads for the upstreams that
  // turn them on; the prober is declared after the registry so that it stops
  // before the registry goes away.
  picker::health::Prober prober(**registry);
  prober.Start();
  picker::metrics::Metrics metrics(**registry, &prober, absl::GetFlag(FLAGS_metrics_per_target),
                                   kVersion);
  auto server = picker::api::Server::Start(options, **registry, metrics);
  if (!server.ok()) {
    spdlog::critical("{}", server.status().ToString());
    return 1;
  }
  spdlog::info("picker-server {} listening data={} admin={} metrics={} data-dir={}{}{}", kVersion,
               (*server)->data_address(), (*server)->admin_address(), (*server)->metrics_address(),
               data_dir, options.tls_cert.empty() ? "" : " tls=on",
               options.admin_token.empty() ? "" : " admin-token=on");

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("received {}, draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown(std::chrono::milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms)));
  server->reset();
  prober.Stop();
  // Every acknowledged admin write is already on disk (the store syncs each
  // one), so there is nothing left to flush.
  spdlog::info("stopped");
  return 0;
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
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  if (absl::Status s = picker::program::ConfigureLogging(absl::GetFlag(FLAGS_log_format));
      !s.ok()) {
    spdlog::critical("{}", std::string(s.message()));
    return 1;
  }
  return Run();
}
