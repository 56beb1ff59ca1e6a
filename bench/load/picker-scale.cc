// picker-scale: how picker-server copes with many upstreams and with one very
// large upstream. It spawns a server (fresh data directory, loopback ports),
// then:
//   1. creates --upstreams upstreams and gives each --targets targets with
//      one ReplaceTargets, from --writers concurrent admin clients;
//   2. picks (and releases) on random upstreams for --pick-seconds, checking
//      every answer;
//   3. gives one Maglev upstream --big-targets targets and reads the table
//      rebuild time from picker_table_rebuild_duration_seconds;
//   4. restarts the server on the same data directory, times how long it
//      takes to load the store and listen, and picks once on every upstream;
// and prints times, rates and the server's resident memory after each step.
// Figures are reported, not asserted (see BENCHMARKS.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/load/host.h"
#include "bench/load/load.h"
#include "grpcpp/grpcpp.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"
#include "server/program/program.h"

ABSL_FLAG(std::string, spawn_server, "", "Path of the picker-server binary to start.");
ABSL_FLAG(int, upstreams, 10000, "Upstreams to create.");
ABSL_FLAG(int, targets, 100, "Targets of each of those upstreams.");
ABSL_FLAG(std::string, strategy, "round_robin",
          "Strategy of those upstreams: round_robin, least_request, ring_hash, random, maglev.");
ABSL_FLAG(int, writers, 4, "Concurrent admin clients creating upstreams.");
ABSL_FLAG(double, pick_seconds, 5, "How long to pick on random upstreams.");
ABSL_FLAG(int, big_targets, 10000, "Targets of the one large Maglev upstream (0 skips it).");
ABSL_FLAG(bool, restart, true,
          "Restart the server on its data directory at the end and time the load.");

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// VmRSS of a process, in MiB; 0 if unknown.
double ResidentMiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

// Creates `name` and replaces its targets with `count` distinct addresses.
grpc::Status CreateWithTargets(picker::v1::Admin::Stub& admin, const std::string& name,
                               const std::string& strategy, int count, int seed) {
  grpc::ClientContext create_context;
  create_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  picker::v1::CreateUpstreamRequest create;
  create.mutable_upstream()->set_name(name);
  if (!picker::bench::SetStrategy(strategy, create.mutable_upstream()->mutable_load_balancer())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown --strategy " + strategy);
  }
  picker::v1::Upstream created;
  if (grpc::Status s = admin.CreateUpstream(&create_context, create, &created); !s.ok()) return s;

  picker::v1::ReplaceTargetsRequest replace;
  replace.set_upstream(name);
  for (int i = 0; i < count; ++i) {
    const int n = seed * 65536 + i;  // Distinct per upstream and target.
    replace.add_targets()->set_address(
        absl::StrCat("10.", (n >> 16) & 255, ".", (n >> 8) & 255, ".", n & 255, ":8080"));
  }
  grpc::ClientContext replace_context;
  replace_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  picker::v1::ReplaceTargetsResponse replaced;
  return admin.ReplaceTargets(&replace_context, replace, &replaced);
}

// Picks on upstream `index` and releases the lease. The answer must be one
// of the targets CreateWithTargets gave that upstream: 10.A.B.C:8080 with
// A = index % 256 and B * 256 + C below `targets`.
grpc::Status PickAndRelease(picker::v1::Picker::Stub& picker, int index, int targets,
                            uint64_t hash) {
  picker::v1::PickRequest request;
  request.set_upstream(absl::StrCat("u", index));
  request.set_hash(hash);
  picker::v1::PickResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (grpc::Status s = picker.Pick(&context, request, &response); !s.ok()) return s;
  int a = -1, b = -1, c = -1, port = -1;
  if (std::sscanf(response.target().c_str(), "10.%d.%d.%d:%d", &a, &b, &c, &port) != 4 ||
      a != index % 256 || b * 256 + c >= targets || port != 8080) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat(request.upstream(), " answered ", response.target(),
                                     ", not one of its targets"));
  }
  picker::v1::ReleaseRequest release;
  release.set_upstream(request.upstream());
  release.set_lease_id(response.lease_id());
  release.set_outcome(picker::v1::ReleaseRequest::SUCCESS);
  picker::v1::ReleaseResponse released;
  grpc::ClientContext release_context;
  release_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return picker.Release(&release_context, release, &released);
}

int Fail(const std::string& what, const grpc::Status& status) {
  std::fprintf(stderr, "picker-scale: %s: %s %s\n", what.c_str(),
               std::to_string(status.error_code()).c_str(), status.error_message().c_str());
  return 1;
}

void PrintResident(const char* step, pid_t pid) {
  std::printf("| %s | RSS %.1f MiB |\n", step, ResidentMiB(pid));
}

// The flags, read once.
struct Options {
  std::string server_path;
  int upstreams = 0;
  int targets = 0;
  std::string strategy;
  int writers = 1;
  double pick_seconds = 0;
  int big_targets = 0;
  bool restart = false;
};

// What the steps share: the flags, the server and its channels, and one
// random sequence (seeded, so runs pick the same upstreams).
struct Scale {
  Options options;
  std::unique_ptr<picker::bench::SpawnedServer> server;
  std::shared_ptr<grpc::Channel> admin_channel;
  std::shared_ptr<grpc::Channel> data_channel;
  std::mt19937_64 random{42};
};

// Step 1's writes: upstreams u0..u(N-1), dealt out to --writers concurrent
// admin clients. Returns the first error of a writer, if any.
grpc::Status CreateUpstreams(const Scale& scale) {
  const Options& o = scale.options;
  std::vector<std::thread> threads;
  std::vector<grpc::Status> errors(o.writers);
  for (int w = 0; w < o.writers; ++w) {
    threads.emplace_back([&, w] {
      // One channel per writer, so that writes travel side by side.
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", w);
      auto stub = picker::v1::Admin::NewStub(grpc::CreateCustomChannel(
          scale.server->admin_address(), grpc::InsecureChannelCredentials(), args));
      for (int i = w; i < o.upstreams; i += o.writers) {
        grpc::Status s = CreateWithTargets(*stub, absl::StrCat("u", i), o.strategy, o.targets, i);
        if (!s.ok()) {
          errors[w] = s;
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const grpc::Status& s : errors) {
    if (!s.ok()) return s;
  }
  return grpc::Status::OK;
}

// 1. Many upstreams, each written as one CreateUpstream and one ReplaceTargets.
int LoadManyUpstreams(const Scale& scale) {
  const Options& o = scale.options;
  const Clock::time_point start = Clock::now();
  if (grpc::Status s = CreateUpstreams(scale); !s.ok()) return Fail("creating upstreams", s);
  const double seconds = Seconds(Clock::now() - start);
  std::printf(
      "| %d upstreams x %d targets (%s), %d admin clients | %.1f s, %.0f upstreams/s "
      "(each a CreateUpstream and a ReplaceTargets, each durable before its answer) |\n",
      o.upstreams, o.targets, o.strategy.c_str(), o.writers, seconds, o.upstreams / seconds);
  PrintResident("after loading them", scale.server->pid());
  return 0;
}

// 2. Picks on random upstreams, each released, every answer checked.
int PickOnRandomUpstreams(Scale& scale) {
  const Options& o = scale.options;
  auto stub = picker::v1::Picker::NewStub(scale.data_channel);
  uint64_t picks = 0;
  const Clock::time_point start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(o.pick_seconds));
  while (Clock::now() < end) {
    const int index = static_cast<int>(scale.random() % o.upstreams);
    if (grpc::Status s = PickAndRelease(*stub, index, o.targets, scale.random()); !s.ok()) {
      return Fail(absl::StrCat("Pick+Release on u", index), s);
    }
    ++picks;
  }
  std::printf(
      "| unary Pick+Release on random upstreams, 1 client | %.0f ops/s over %.0f s, "
      "every answer a target of its upstream |\n",
      picks / Seconds(Clock::now() - start), o.pick_seconds);
  return 0;
}

// The big upstream's last table rebuild from /metrics, in seconds; -1 if
// absent. Prometheus does not fix the order of labels, so both are tried.
double BigRebuildSeconds(const picker::bench::SpawnedServer& server) {
  auto metrics = picker::bench::HttpGet(server.metrics_address(), "/metrics",
                                        std::chrono::milliseconds(30000));
  if (!metrics.ok()) return -1;
  double rebuild = -1;
  const std::string series =
      "picker_table_rebuild_duration_seconds{strategy=\"maglev\",upstream=\"big\"} ";
  const std::string other =
      "picker_table_rebuild_duration_seconds{upstream=\"big\",strategy=\"maglev\"} ";
  for (const std::string& s : {series, other}) {
    if (size_t at = metrics->find(s); at != std::string::npos) {
      rebuild = std::stod(metrics->substr(at + s.size()));
    }
  }
  return rebuild;
}

// 3. One very large Maglev upstream.
int CreateBigUpstream(const Scale& scale) {
  const int big = scale.options.big_targets;
  auto admin = picker::v1::Admin::NewStub(scale.admin_channel);
  const Clock::time_point start = Clock::now();
  if (grpc::Status s = CreateWithTargets(*admin, "big", "maglev", big, scale.options.upstreams + 1);
      !s.ok()) {
    return Fail("creating the large upstream", s);
  }
  const double seconds = Seconds(Clock::now() - start);
  const double rebuild = BigRebuildSeconds(*scale.server);
  std::printf(
      "| one Maglev upstream, %d targets, table 65537 | snapshot build %.1f ms "
      "(picker_table_rebuild_duration_seconds); CreateUpstream+ReplaceTargets "
      "round trip %.1f ms |\n",
      big, rebuild * 1e3, seconds * 1e3);
  PrintResident("after it", scale.server->pid());
  return 0;
}

// 4. A restart on the same data directory: how long until the server
// listens (it loads every record first), and whether every upstream
// answers with its own targets then.
int RestartOnSameData(Scale& scale) {
  const Options& o = scale.options;
  const std::string data_dir = scale.server->ReleaseDataDir();
  scale.server.reset();  // SIGTERM, drain, exit.
  const Clock::time_point start = Clock::now();
  auto restarted =
      picker::bench::SpawnedServer::Start(o.server_path, {}, std::chrono::minutes(10), data_dir);
  if (!restarted.ok()) {
    std::fprintf(stderr, "picker-scale: restart: %s\n", restarted.status().ToString().c_str());
    return 1;
  }
  const double seconds = Seconds(Clock::now() - start);
  auto stub = picker::v1::Picker::NewStub(
      grpc::CreateChannel((*restarted)->data_address(), grpc::InsecureChannelCredentials()));
  for (int index = 0; index < o.upstreams; ++index) {
    if (grpc::Status s = PickAndRelease(*stub, index, o.targets, scale.random()); !s.ok()) {
      return Fail(absl::StrCat("after the restart, Pick+Release on u", index), s);
    }
  }
  std::printf(
      "| restart on the same data directory | listening after %.1f s (every record loaded "
      "first); then every one of the %d upstreams answered a target of its own |\n",
      seconds, o.upstreams);
  PrintResident("after it", (*restarted)->pid());
  return 0;
}

// Reads the flags; false (with the error printed) without --spawn-server.
bool ReadOptions(Options* o) {
  o->server_path = absl::GetFlag(FLAGS_spawn_server);
  if (o->server_path.empty()) {
    std::fprintf(stderr, "picker-scale: --spawn-server is required\n");
    return false;
  }
  o->upstreams = absl::GetFlag(FLAGS_upstreams);
  o->targets = absl::GetFlag(FLAGS_targets);
  o->strategy = absl::GetFlag(FLAGS_strategy);
  o->writers = std::max(1, absl::GetFlag(FLAGS_writers));
  o->pick_seconds = absl::GetFlag(FLAGS_pick_seconds);
  o->big_targets = absl::GetFlag(FLAGS_big_targets);
  o->restart = absl::GetFlag(FLAGS_restart);
  return true;
}

// Spawns the server with a fresh data directory and opens its channels.
bool StartServer(Scale& scale) {
  auto server = picker::bench::SpawnedServer::Start(scale.options.server_path, {},
                                                    std::chrono::milliseconds(30000));
  if (!server.ok()) {
    std::fprintf(stderr, "picker-scale: %s\n", server.status().ToString().c_str());
    return false;
  }
  scale.server = *std::move(server);
  scale.admin_channel =
      grpc::CreateChannel(scale.server->admin_address(), grpc::InsecureChannelCredentials());
  scale.data_channel =
      grpc::CreateChannel(scale.server->data_address(), grpc::InsecureChannelCredentials());
  return true;
}

int RunSteps(Scale& scale) {
  if (!StartServer(scale)) return 1;
  std::printf("| step | figure |\n|---|---|\n");
  PrintResident("idle server", scale.server->pid());
  if (int status = LoadManyUpstreams(scale); status != 0) return status;
  if (int status = PickOnRandomUpstreams(scale); status != 0) return status;
  if (scale.options.big_targets > 0) {
    if (int status = CreateBigUpstream(scale); status != 0) return status;
  }
  if (scale.options.restart) return RestartOnSameData(scale);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  picker::program::DisableMutexDeadlockDetection();
  picker::program::ParseCommandLine(
      argc, argv, "picker-scale",
      "picker-scale: how a spawned picker-server copes with many upstreams and with one very\n"
      "large upstream: load and restart times, pick rates, resident memory.\n\n"
      "  picker-scale --spawn-server build/picker-server [--upstreams N --targets M "
      "--big-targets K]\n");
  Scale scale;
  if (!ReadOptions(&scale.options)) return 2;
  return RunSteps(scale);
}
