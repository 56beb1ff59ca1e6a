// picker-server: flags and wiring only. Everything else lives in core/,
// store/, config/, control/, data/, health/, metrics/ and api/.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "picker/version.h"
#include "server/api/server.h"
#include "server/config/config_file.h"
#include "server/control/control_plane.h"
#include "server/data/data_plane.h"
#include "server/etcd/replication.h"
#include "server/health/prober.h"
#include "server/http/https_server.h"
#include "server/http/server.h"
#include "server/http/token_guard.h"
#include "server/kong/kong_admin.h"
#include "server/metrics/metrics.h"
#include "server/metrics/scrape.h"
#include "server/net/acceptor.h"
#include "server/overload/overload_manager.h"
#include "server/program/logging.h"
#include "server/program/program.h"
#include "server/status/page.h"
#include "server/status/report.h"
#include "server/store/file_store.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "Data listener: picker.v1.Picker, grpc.health.v1.Health and reflection.");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:50052",
          "Admin listener: picker.v1.Admin, grpc.health.v1.Health and reflection.");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464",
          "Prometheus metrics at /metrics (and the status page with --status-page).");
ABSL_FLAG(std::string, kong_admin_listen, "",
          "Serve Kong Gateway's Admin API routes for upstreams and targets (HTTP) on this "
          "address, e.g. 127.0.0.1:8001; off when empty. Same state, validation and admin "
          "token as --admin-listen; HTTPS with --tls-cert and --tls-key (and client "
          "certificates with --tls-client-ca), as the gRPC listeners.");
ABSL_FLAG(bool, status_page, false,
          "Serve a status page at /status and its data at /status.json on --metrics-listen. "
          "WARNING: it shows every upstream's targets (addresses, zones, weights) and their "
          "state to whoever reaches that listener; with --admin-token-file it asks for the "
          "token. Bind the listener where only operators reach it.");
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
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "Largest gRPC request accepted on the admin listener, in bytes.");
ABSL_FLAG(int, max_data_message_bytes, 64 << 10,
          "Largest gRPC request accepted on the data listener (which needs no credentials), in "
          "bytes. A Pick is a few hundred bytes.");
ABSL_FLAG(uint64_t, max_pending_stream_answers, 64,
          "Answers a PickStream may hold that its client has not read yet; at this many, picker "
          "reads no further message on the stream until the client reads.");
ABSL_FLAG(uint64_t, max_connections, 0,
          "Open connections per gRPC listener; more are closed at once. 0: half the descriptor "
          "limit less 128, at most 10000.");
ABSL_FLAG(uint64_t, max_memory, 0,
          "Overload manager: above this many bytes allocated (mallinfo2), new picks and admin "
          "writes other than deletes answer RESOURCE_EXHAUSTED. 0 (default) turns it off.");
ABSL_FLAG(bool, admin_insecure, false,
          "Allow an admin listener on a non-loopback address with neither --admin-token-file nor "
          "mutual TLS (--tls-client-ca): anyone who reaches it can change every upstream.");
ABSL_FLAG(uint64_t, max_upstreams, 100000, "Most upstreams the server keeps.");
ABSL_FLAG(uint64_t, max_targets_per_upstream, 100000, "Most targets one upstream may have.");
ABSL_FLAG(uint64_t, max_hash_policies, 16, "Most hash policies one upstream may have.");
ABSL_FLAG(uint64_t, max_leases_per_upstream, 1000000,
          "Most outstanding leases (active requests) per upstream; Pick answers "
          "RESOURCE_EXHAUSTED beyond.");
ABSL_FLAG(std::string, etcd_endpoints, "",
          "Comma-separated etcd URLs (http:// or https://): the configuration and the replicas' "
          "membership live in etcd, shared by every replica. Without it, the embedded store in "
          "--data-dir.");
ABSL_FLAG(std::string, etcd_prefix, "/picker/", "The prefix of picker's keys in etcd.");
ABSL_FLAG(std::string, replica_id, "",
          "This replica's id among the members (default: host name and data port).");
ABSL_FLAG(std::string, advertise_address, "",
          "Where peers and clients reach this replica's data listener (default: host name and "
          "data port).");
ABSL_FLAG(std::string, advertise_admin_address, "",
          "Where peers reach this replica's admin listener, to which they forward "
          "GetUpstreamHealth (default: --admin-listen, its host replaced by the advertised data "
          "host when it listens on every address).");
ABSL_FLAG(absl::Duration, member_ttl, absl::Seconds(5),
          "TTL of the etcd lease behind this replica's membership; etcd grants whole seconds, 2 "
          "at least. A replica that dies is replaced as owner within about this.");
ABSL_FLAG(std::string, etcd_cacert, "", "PEM CA that signed etcd's certificate (https).");
ABSL_FLAG(std::string, etcd_cert, "", "PEM client certificate for etcd (--client-cert-auth).");
ABSL_FLAG(std::string, etcd_key, "", "PEM key of --etcd-cert.");
ABSL_FLAG(std::string, etcd_user, "", "etcd user, when etcd's authentication is on.");
ABSL_FLAG(std::string, etcd_password_file, "", "File holding --etcd-user's password.");
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

// An admin listener that others than this machine reach takes writes only
// with a token or client certificates, unless the operator says otherwise.
absl::Status CheckAdminExposure(const picker::api::ServerOptions& options) {
  if (picker::net::IsLoopbackAddress(options.admin_listen) || !options.admin_token.empty() ||
      !options.tls_client_ca.empty() || absl::GetFlag(FLAGS_admin_insecure)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "--admin-listen ", options.admin_listen,
      " is not a loopback address, so anyone who reaches it could change every upstream: set "
      "--admin-token-file, or mutual TLS (--tls-cert, --tls-key and --tls-client-ca), or pass "
      "--admin-insecure to serve it open"));
}

// --max-connections, or its default: both listeners together stay under
// the descriptor limit, with 128 left for the store, probes and gRPC.
size_t MaxConnections(uint64_t descriptor_limit) {
  const uint64_t flag = absl::GetFlag(FLAGS_max_connections);
  if (flag > 0) return flag;
  const uint64_t spare = descriptor_limit > 256 ? (descriptor_limit - 128) / 2 : 64;
  return std::min<uint64_t>(spare, 10000);
}

absl::StatusOr<picker::api::ServerOptions> ServerOptionsFromFlags(uint64_t descriptor_limit) {
  picker::api::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_data_message_bytes = absl::GetFlag(FLAGS_max_data_message_bytes);
  options.max_pending_stream_answers = absl::GetFlag(FLAGS_max_pending_stream_answers);
  options.max_connections = MaxConnections(descriptor_limit);
  if (options.max_data_message_bytes <= 0 || options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        "--max-message-bytes and --max-data-message-bytes must be positive");
  }
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
  if (absl::Status s = CheckAdminExposure(options); !s.ok()) return s;
  return options;
}

// The store, the published snapshots, and the two planes over them; in
// etcd mode, the replication behind the store.
struct Planes {
  picker::core::ProcessStats stats;  // First: the store counts into it.
  std::unique_ptr<picker::etcd::Replication> replication;
  std::unique_ptr<picker::store::FileStore> file_store;
  picker::core::Store* store = nullptr;
  picker::core::SoloReplica solo;
  picker::core::SnapshotMap snapshots;
  picker::core::WriterStats writer_stats;
  std::unique_ptr<picker::control::ControlPlane> control;
  // etcd mode: between the health's sources and the control plane (so it
  // is destroyed before the control plane, after the data plane).
  std::unique_ptr<picker::etcd::HealthShare> health_share;
  std::unique_ptr<picker::data::DataPlane> data;

  // Where passive ejections and active checks' verdicts are reported.
  picker::core::HealthEvents& health_events() {
    if (health_share) return *health_share;
    return *control;
  }
};

// The store: etcd's when --etcd-endpoints is given, else the file store.
absl::Status OpenStore(Planes& planes) {
  const std::string endpoints = absl::GetFlag(FLAGS_etcd_endpoints);
  if (endpoints.empty()) {
    const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
    auto store = picker::store::FileStore::Open(data_dir, &planes.stats);
    if (!store.ok()) return WithContext(store.status(), "cannot open the store in " + data_dir);
    planes.file_store = *std::move(store);
    planes.store = planes.file_store.get();
    return absl::OkStatus();
  }
  picker::etcd::Replication::Options options;
  options.client.endpoints = absl::StrSplit(endpoints, ',', absl::SkipEmpty());
  options.prefix = absl::GetFlag(FLAGS_etcd_prefix);
  options.member_ttl = absl::ToChronoSeconds(absl::GetFlag(FLAGS_member_ttl));
  options.client.user = absl::GetFlag(FLAGS_etcd_user);
  for (auto [flag, out] :
       {std::pair{absl::GetFlag(FLAGS_etcd_cacert), &options.client.cacert},
        std::pair{absl::GetFlag(FLAGS_etcd_cert), &options.client.cert},
        std::pair{absl::GetFlag(FLAGS_etcd_key), &options.client.key},
        std::pair{absl::GetFlag(FLAGS_etcd_password_file), &options.client.password}}) {
    if (flag.empty()) continue;
    absl::StatusOr<std::string> contents = ReadFile(flag);
    if (!contents.ok()) return contents.status();
    *out = *std::move(contents);
  }
  options.client.password = std::string(absl::StripAsciiWhitespace(options.client.password));
  auto replication = picker::etcd::Replication::Connect(std::move(options));
  if (!replication.ok()) return WithContext(replication.status(), "cannot use etcd");
  planes.replication = *std::move(replication);
  planes.store = &planes.replication->store();
  return absl::OkStatus();
}

// Names this replica now that its data listener is bound at
// `data_address`, and joins the members in etcd mode.
absl::Status JoinReplicas(Planes& planes, const std::string& data_address,
                          const std::string& admin_address) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const std::string port = data_address.substr(data_address.rfind(':') + 1);
  std::string id = absl::GetFlag(FLAGS_replica_id);
  if (id.empty()) id = absl::StrCat(host, ":", port);
  // The listener's own host, unless it listens on every address.
  std::string listen_host = data_address.substr(0, data_address.rfind(':'));
  if (listen_host == "0.0.0.0" || listen_host == "[::]" || listen_host.empty()) listen_host = host;
  std::string address = absl::GetFlag(FLAGS_advertise_address);
  if (address.empty()) address = absl::StrCat(listen_host, ":", port);
  if (!planes.replication) {
    planes.solo.Set(id, address);
    return absl::OkStatus();
  }
  // Peers forward GetUpstreamHealth to the admin listener: on the data
  // listener's advertised host when it listens on every address.
  std::string admin = absl::GetFlag(FLAGS_advertise_admin_address);
  if (admin.empty()) {
    std::string admin_host = admin_address.substr(0, admin_address.rfind(':'));
    if (admin_host == "0.0.0.0" || admin_host == "[::]" || admin_host.empty()) {
      admin_host = address.substr(0, address.rfind(':'));
    }
    admin = absl::StrCat(admin_host, admin_address.substr(admin_address.rfind(':')));
  }
  return WithContext(planes.replication->Join(id, address, admin),
                     "cannot join the replicas in etcd");
}

// Opens the store, starts the control plane on it, applies --config (and
// --demo) through it, and starts the data plane.
absl::Status StartPlanes(const std::vector<picker::config::DeclaredUpstream>& declared,
                         Planes& planes) {
  if (absl::Status s = OpenStore(planes); !s.ok()) return s;
  const std::string data_dir = absl::GetFlag(FLAGS_etcd_endpoints).empty()
                                   ? absl::GetFlag(FLAGS_data_dir)
                                   : "etcd at " + absl::GetFlag(FLAGS_etcd_endpoints);
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
  if (planes.replication) {
    planes.health_share = planes.replication->ShareHealth(planes.snapshots, *planes.control);
  }
  planes.data = std::make_unique<picker::data::DataPlane>(
      planes.snapshots, planes.health_events(), planes.store->boot(),
      picker::data::DataPlane::Options{
          .max_leases_per_upstream = {absl::GetFlag(FLAGS_max_leases_per_upstream),
                                      "--max-leases-per-upstream"},
          .stats = &planes.stats});
  return absl::OkStatus();
}

// Ends the process if stopping outlasts the drain timeout by a second:
// a handler still running (a slow write, a build) must not hold the exit.
// Every acknowledged admin write is on disk, so ending here loses nothing.
void StartDrainWatchdog(std::chrono::milliseconds grace) {
  std::thread([grace] {
    std::this_thread::sleep_for(grace + std::chrono::seconds(1));
    spdlog::warn("drain: still stopping 1 s after --drain-timeout-ms {}; exiting now",
                 grace.count());
    spdlog::shutdown();
    std::_Exit(0);
  }).detach();
}

// The metrics listener: /metrics, and with --status-page /status,
// /status.json and the login form behind the admin token.
struct HttpListener {
  HttpListener(const Planes& planes, const picker::metrics::Metrics& metrics,
               picker::status::ProcessInfo process, std::string admin_token)
      : scrape(metrics), report(planes.snapshots, std::move(process)), guard(admin_token) {}

  absl::Status Start(const std::string& address) {
    picker::http::Router router;
    router.Add("GET", "/metrics",
               [this](const picker::http::Request& r) { return scrape.Serve(r); });
    if (absl::GetFlag(FLAGS_status_page)) picker::status::AddStatusRoutes(router, report, guard);
    auto started = picker::http::HttpServer::Start({.address = address, .flag = "--metrics-listen"},
                                                   std::move(router));
    if (!started.ok()) return started.status();
    server = *std::move(started);
    return absl::OkStatus();
  }

  picker::metrics::ScrapeHandler scrape;
  picker::status::StatusReport report;
  picker::http::TokenGuard guard;
  std::unique_ptr<picker::http::HttpServer> server;
};

// --kong-admin-listen: Kong's Admin API routes, on a listener of their own.
struct KongListener {
  KongListener(Planes& planes, std::string admin_token)
      : routes(*planes.control, planes.snapshots, std::move(admin_token), &planes.stats) {}

  absl::Status Start(const picker::api::ServerOptions& options) {
    const std::string address = absl::GetFlag(FLAGS_kong_admin_listen);
    if (address.empty()) return absl::OkStatus();
    if (!picker::net::IsLoopbackAddress(address) && options.admin_token.empty() &&
        !absl::GetFlag(FLAGS_admin_insecure)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--kong-admin-listen ", address,
          " is not a loopback address, so anyone who reaches it could change every upstream: "
          "set --admin-token-file, or pass --admin-insecure to serve it open"));
    }
    picker::http::Router router;
    routes.AddRoutes(router);
    const picker::http::ServerOptions http{.address = address, .flag = "--kong-admin-listen"};
    if (options.tls_cert.empty()) {
      auto started = picker::http::HttpServer::Start(http, std::move(router));
      if (!started.ok()) return started.status();
      server = *std::move(started);
      spdlog::info("Kong Admin API listening on {}", server->address());
      return absl::OkStatus();
    }
    // TLS with the gRPC listeners' certificate, key and client CA.
    auto started = picker::http::HttpsServer::Start(
        http,
        {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
         absl::GetFlag(FLAGS_tls_client_ca)},
        std::move(router));
    if (!started.ok()) return started.status();
    secure = *std::move(started);
    spdlog::info("Kong Admin API listening on {} (TLS)", secure->address());
    return absl::OkStatus();
  }
  void Stop() {
    if (server) server->Stop();
    if (secure) secure->Stop();
  }

  picker::kong::KongAdmin routes;
  std::unique_ptr<picker::http::HttpServer> server;
  std::unique_ptr<picker::http::HttpsServer> secure;
};

// Serves until SIGTERM or SIGINT (blocked in `signals`), then drains.
int Serve(picker::api::ServerOptions options, Planes& planes, const sigset_t& signals,
          const picker::status::ProcessInfo& process) {
  const picker::core::Replicas& replicas =
      planes.replication ? planes.replication->replicas() : planes.solo;
  // Active health checks run on their own threads for the upstreams that
  // turn them on; they follow what the control plane publishes.
  picker::health::Prober::Options checks;
  if (replicas.shared()) {
    checks.owns = [&replicas](const std::string& upstream) { return !replicas.OwnerOf(upstream); };
  }
  picker::health::Prober prober(planes.health_events(), checks);
  prober.Start();
  planes.control->AddListener(&prober);
  picker::metrics::Metrics metrics(planes.snapshots, planes.writer_stats, replicas,
                                   absl::GetFlag(FLAGS_metrics_per_target), kVersion,
                                   &planes.stats);
  picker::overload::OverloadManager overload(planes.stats, absl::GetFlag(FLAGS_max_memory));
  options.stats = &planes.stats;
  auto server = picker::api::Server::Start(options, *planes.control, *planes.data, planes.snapshots,
                                           replicas, metrics);
  if (!server.ok()) return Fail("", server.status());
  picker::status::ProcessInfo about = process;
  about.replicas = &replicas;
  HttpListener http(planes, metrics, std::move(about), options.admin_token);
  if (absl::Status s = http.Start(absl::GetFlag(FLAGS_metrics_listen)); !s.ok()) return Fail("", s);
  KongListener kong(planes, options.admin_token);
  if (absl::Status s = kong.Start(options); !s.ok()) return Fail("", s);
  if (absl::Status s = JoinReplicas(planes, (*server)->data_address(), (*server)->admin_address());
      !s.ok())
    return Fail("", s);
  spdlog::info("picker-server {} listening data={} admin={} metrics={} data-dir={}{}{}{}", kVersion,
               (*server)->data_address(), (*server)->admin_address(), http.server->address(),
               absl::GetFlag(FLAGS_data_dir), options.tls_cert.empty() ? "" : " tls=on",
               options.admin_token.empty() ? "" : " admin-token=on",
               absl::GetFlag(FLAGS_status_page) ? " status-page=on" : "");

  int signal = 0;
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    ReloadConfig(*planes.control, planes.snapshots);
  }
  spdlog::info("received {}, draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  const std::chrono::milliseconds grace(absl::GetFlag(FLAGS_drain_timeout_ms));
  StartDrainWatchdog(grace);
  // Ownership moves to the others at once; then the calls in flight drain.
  if (planes.replication) planes.replication->Leave();
  (*server)->Shutdown(grace);
  server->reset();
  http.server->Stop();
  kong.Stop();
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
  const picker::status::ProcessInfo process{.version = kVersion};
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
  const picker::program::DescriptorLimit fds = picker::program::RaiseDescriptorLimit();
  auto options = ServerOptionsFromFlags(fds.soft);
  if (options.ok()) {
    spdlog::info("descriptor limit: soft {} (was {}), hard {}; --max-connections {} per listener",
                 fds.soft, fds.soft_before, fds.hard, options->max_connections);
  }
  if (!options.ok()) return Fail("", options.status());
  Planes planes;
  if (absl::Status s = StartPlanes(*declared, planes); !s.ok()) return Fail("", s);
  return Serve(*options, planes, signals, process);
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
