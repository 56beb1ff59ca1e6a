// picker-server: flags and wiring only. Everything else lives in core/,
// store/, metrics/ and api/.
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "server/api/server.h"
#include "server/core/registry.h"
#include "server/metrics/metrics.h"
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
ABSL_FLAG(bool, demo, false,
          "Create an upstream named 'demo' with two targets at start if it does not exist.");
ABSL_FLAG(bool, metrics_per_target, false,
          "Also export per-target series (one per target: mind the cardinality).");
ABSL_FLAG(int, drain_timeout_ms, 5000,
          "On SIGTERM, how long in-flight calls get to finish before the server exits.");
ABSL_FLAG(std::string, log_level, "info", "Log level: trace, debug, info, warn, error.");

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

int Run() {
  // Signals are taken synchronously by the main thread: block them before
  // any other thread starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  auto store = picker::store::FileStore::Open(data_dir);
  if (!store.ok()) {
    spdlog::critical("{}", store.status().ToString());
    return 1;
  }
  auto registry = picker::core::Registry::Open(store->get(), {});
  if (!registry.ok()) {
    spdlog::critical("cannot load the store in {}: {}", data_dir, registry.status().ToString());
    return 1;
  }
  if (absl::GetFlag(FLAGS_demo)) CreateDemoUpstream(**registry);

  picker::metrics::Metrics metrics(**registry, absl::GetFlag(FLAGS_metrics_per_target), kVersion);
  picker::api::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  auto server = picker::api::Server::Start(options, **registry, metrics);
  if (!server.ok()) {
    spdlog::critical("{}", server.status().ToString());
    return 1;
  }
  spdlog::info("picker-server {} listening data={} admin={} metrics={} data-dir={}", kVersion,
               (*server)->data_address(), (*server)->admin_address(),
               (*server)->metrics_address(), data_dir);

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("received {}, draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown(std::chrono::milliseconds(absl::GetFlag(FLAGS_drain_timeout_ms)));
  server->reset();
  // Every acknowledged admin write is already on disk (the store syncs each
  // one), so there is nothing left to flush.
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("picker"));
  absl::SetProgramUsageMessage(
      "picker-server: a stateful gRPC load-balancing (target picking) service.\n"
      "Usage: picker-server [--listen ADDR] [--admin-listen ADDR] [--metrics-listen ADDR] "
      "[--data-dir DIR] [--demo]");
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  return Run();
}
