// picker-sim: a closed-loop simulation of picker's balancing through the
// real server. It starts a picker-server, and for each scenario creates an
// upstream whose targets are backends simulated in this process; --clients
// threads pick through the C++ client library, send the request to the
// backend picked (which holds one of its worker slots for a service time,
// queueing when all are busy), and release with the latency and, for
// weighted_round_robin, the backend's ORCA load report.
//
// Scenarios "STRATEGY": backend 0 becomes five times slower halfway
// through, and backend 1 reports a high utilization (0.6 of other work on
// top of its own). Scenarios "STRATEGY+join" (optionally "+slow_start"):
// the last backend joins a quarter of the way through, cold (four times
// slower at first, normal after 2 s).
//
// It prints, per scenario, the p50/p99/p99.9 request latency and each
// backend's share, and with --series a CSV of the shares over time (for
// bench/sim/plot.sh). With --check it exits 1 unless the directions hold:
// under peak_ewma the slow backend's share falls below its fair share, and
// under slow start the joining backend's share ramps up.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "bench/load/histogram.h"
#include "bench/load/host.h"
#include "bench/sim/backends.h"
#include "grpcpp/grpcpp.h"
#include "picker/client.h"
#include "picker/v1/admin.grpc.pb.h"
#include "server/program/program.h"

ABSL_FLAG(std::string, spawn_server, "", "Path of the picker-server to start (required).");
ABSL_FLAG(int, clients, 12,
          "Closed loops (one request outstanding each); 12 keeps the 16 worker slots of the "
          "four default backends three quarters busy.");
ABSL_FLAG(int, backends, 4, "Backends (targets).");
ABSL_FLAG(double, duration, 8, "Seconds per scenario.");
ABSL_FLAG(int, slots, 4, "Requests a backend serves at once.");
ABSL_FLAG(int, base_us, 2000, "Mean service time of a backend, microseconds.");
ABSL_FLAG(int, slow_start_window_ms, 2000, "slow_start_window of the +slow_start scenarios.");
ABSL_FLAG(std::string, scenarios,
          "round_robin,least_request,peak_ewma,weighted_round_robin,round_robin+join,"
          "round_robin+join+slow_start,least_request+join,least_request+join+slow_start,"
          "peak_ewma+join,weighted_round_robin+join",
          "Comma-separated scenarios: STRATEGY (a backend slows down, another reports high "
          "utilization) or STRATEGY+join[+slow_start] (a cold backend joins).");
ABSL_FLAG(std::string, series, "", "Write the shares over time to this CSV file.");
ABSL_FLAG(bool, check, false,
          "Exit 1 unless the slow backend's share under peak_ewma falls below its fair share "
          "and a joining backend's share ramps up under slow start.");

namespace picker::sim {
namespace {

constexpr auto kBucket = std::chrono::milliseconds(250);

struct Scenario {
  std::string name;
  std::string strategy;
  bool join = false;
  bool slow_start = false;
};

std::string Address(int backend) { return absl::StrCat("10.0.0.", backend + 1, ":8080"); }

Scenario ParseScenario(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '+');
  Scenario s{name, parts[0]};
  for (size_t i = 1; i < parts.size(); ++i) {
    s.join = s.join || parts[i] == "join";
    s.slow_start = s.slow_start || parts[i] == "slow_start";
  }
  return s;
}

// The upstream's load balancer. The periods are shortened to fit runs of a
// few seconds: WRR's blackout 1 s (A58: 10 s) and weight refresh 500 ms.
bool SetLoadBalancer(const Scenario& s, v1::LoadBalancer* lb) {
  v1::SlowStartConfig* slow_start = nullptr;
  if (s.strategy == "round_robin") {
    slow_start = lb->mutable_round_robin()->mutable_slow_start_config();
  } else if (s.strategy == "least_request") {
    slow_start = lb->mutable_least_request()->mutable_slow_start_config();
  } else if (s.strategy == "peak_ewma") {
    lb->mutable_peak_ewma();
  } else if (s.strategy == "weighted_round_robin") {
    v1::WeightedRoundRobin* wrr = lb->mutable_weighted_round_robin();
    wrr->mutable_blackout_period()->set_seconds(1);
    wrr->mutable_weight_update_period()->set_nanos(500000000);
  } else {
    return false;
  }
  if (s.slow_start) {
    if (slow_start == nullptr) return false;
    const int ms = absl::GetFlag(FLAGS_slow_start_window_ms);
    slow_start->mutable_slow_start_window()->set_seconds(ms / 1000);
    slow_start->mutable_slow_start_window()->set_nanos(ms % 1000 * 1000000);
  }
  return true;
}

// One admin call with a deadline; the error as text, empty when OK.
template <typename Call>
std::string Admin(Call call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Status status = call(&context);
  return status.ok() ? "" : absl::StrCat(status.error_code(), " ", status.error_message());
}

std::string PutTarget(v1::Admin::Stub& admin, const std::string& upstream, int backend) {
  v1::PutTargetRequest put;
  put.set_upstream(upstream);
  put.mutable_target()->set_address(Address(backend));
  v1::Target out;
  return Admin([&](grpc::ClientContext* c) { return admin.PutTarget(c, put, &out); });
}

std::string CreateUpstream(v1::Admin::Stub& admin, const Scenario& s, const std::string& name,
                           int targets) {
  v1::CreateUpstreamRequest create;
  create.mutable_upstream()->set_name(name);
  if (!SetLoadBalancer(s, create.mutable_upstream()->mutable_load_balancer())) {
    return absl::StrCat("scenario ", s.name, ": unknown strategy or no slow start there");
  }
  // Nothing here fails: passive health would only add noise.
  create.mutable_upstream()->mutable_health_checks()->mutable_passive()->set_consecutive_failures(
      0);
  v1::Upstream out;
  std::string error =
      Admin([&](grpc::ClientContext* c) { return admin.CreateUpstream(c, create, &out); });
  for (int b = 0; b < targets && error.empty(); ++b) error = PutTarget(admin, name, b);
  return error;
}

// What the clients measured, shared by their threads.
struct Tally {
  Tally(int backends, int buckets)
      : backends(backends), counts(static_cast<size_t>(backends) * buckets) {}
  void Count(int bucket, int backend) {
    if (bucket >= 0 && static_cast<size_t>(bucket * backends + backend) < counts.size()) {
      counts[bucket * backends + backend].fetch_add(1, std::memory_order_relaxed);
    }
  }
  uint64_t At(int bucket, int backend) const { return counts[bucket * backends + backend].load(); }
  int buckets() const { return static_cast<int>(counts.size()) / backends; }
  // Share of `backend` among the picks of buckets [from, to).
  double Share(int backend, int from, int to) const {
    uint64_t mine = 0, all = 0;
    for (int b = std::max(0, from); b < std::min(to, buckets()); ++b) {
      for (int k = 0; k < backends; ++k) all += At(b, k);
      mine += At(b, backend);
    }
    return all == 0 ? 0 : static_cast<double>(mine) / static_cast<double>(all);
  }

  const int backends;
  std::vector<std::atomic<uint64_t>> counts;  // [bucket][backend]
  std::mutex mu;
  bench::Histogram latency;  // Guarded by mu (merged per client).
  std::atomic<uint64_t> errors{0};
  std::string first_error;  // Guarded by mu.
};

struct Run {
  Scenario scenario;
  std::vector<std::unique_ptr<Backend>> backends;
  Clock::time_point start;
  Clock::time_point end;
  std::unique_ptr<Tally> tally;
};

void ClientLoop(Run& run, const std::string& address, const std::string& upstream, int seed) {
  absl::StatusOr<std::unique_ptr<picker::Client>> client = picker::Client::Create(address);
  std::mt19937_64 rng(seed);
  bench::Histogram latency;
  const bool report = run.scenario.strategy == "weighted_round_robin";
  while (client.ok() && Clock::now() < run.end) {
    absl::StatusOr<picker::Lease> lease = (*client)->Pick({.upstream = upstream});
    if (!lease.ok()) {
      std::lock_guard lock(run.tally->mu);
      if (run.tally->errors.fetch_add(1) == 0) run.tally->first_error = lease.status().ToString();
      continue;
    }
    int backend = 0;
    while (backend < static_cast<int>(run.backends.size()) && Address(backend) != lease->target()) {
      ++backend;
    }
    if (backend == static_cast<int>(run.backends.size())) continue;
    const Clock::time_point sent = Clock::now();
    const std::chrono::nanoseconds took = run.backends[backend]->Serve(rng);
    lease->set_latency(took);
    if (report) lease->set_load_report(run.backends[backend]->LoadReport()).IgnoreError();
    latency.Record(static_cast<uint64_t>(took.count()));
    run.tally->Count(static_cast<int>((sent - run.start) / kBucket), backend);
  }
  std::lock_guard lock(run.tally->mu);
  run.tally->latency.Merge(latency);
}

// The scenario's events (slowdown, join) and the backends' load figures.
void Drive(Run& run, v1::Admin::Stub& admin, const std::string& upstream) {
  const auto duration = run.end - run.start;
  const int m = static_cast<int>(run.backends.size());
  bool slowed = false, joined = run.scenario.join ? false : true;
  while (Clock::now() < run.end) {
    const Clock::time_point now = Clock::now();
    for (auto& b : run.backends) b->Tick(now);
    if (!run.scenario.join && !slowed && now >= run.start + duration / 2) {
      run.backends[0]->SetSlowdown(5);
      slowed = true;
    }
    if (!joined && now >= run.start + duration / 4) {
      run.backends[m - 1]->StartCold(4, std::chrono::milliseconds(2000));
      const std::string error = PutTarget(admin, upstream, m - 1);
      if (!error.empty()) std::fprintf(stderr, "PutTarget: %s\n", error.c_str());
      joined = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Run RunScenario(const Scenario& s, bench::SpawnedServer& server, v1::Admin::Stub& admin) {
  Run run;
  run.scenario = s;
  const int m = absl::GetFlag(FLAGS_backends);
  for (int b = 0; b < m; ++b) {
    BackendShape shape{absl::GetFlag(FLAGS_slots),
                       std::chrono::microseconds(absl::GetFlag(FLAGS_base_us))};
    // The "hot" backend: busy with other work too (slow scenarios only).
    if (!s.join && b == 1) shape.background_utilization = 0.6;
    run.backends.push_back(std::make_unique<Backend>(shape));
  }
  const std::string upstream = absl::StrReplaceAll(s.name, {{"+", "-"}});
  const std::string error = CreateUpstream(admin, s, upstream, s.join ? m - 1 : m);
  if (!error.empty()) {
    std::fprintf(stderr, "%s: %s\n", s.name.c_str(), error.c_str());
    return run;
  }
  const auto duration = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(absl::GetFlag(FLAGS_duration)));
  run.tally = std::make_unique<Tally>(m, static_cast<int>(duration / kBucket) + 1);
  run.start = Clock::now();
  run.end = run.start + duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < absl::GetFlag(FLAGS_clients); ++c) {
    clients.emplace_back(ClientLoop, std::ref(run), server.data_address(), upstream, c + 1);
  }
  Drive(run, admin, upstream);
  for (std::thread& t : clients) t.join();
  return run;
}

// Buckets of the run's phases: [after the slowdown or join, end).
int PhaseBucket(const Run& run, double fraction) {
  return static_cast<int>(std::chrono::duration<double>(run.end - run.start).count() * fraction /
                          std::chrono::duration<double>(kBucket).count());
}

void PrintHeader(int m) {
  std::printf("| scenario | requests | p50 ms | p99 ms | p99.9 ms |");
  for (int b = 0; b < m; ++b) std::printf(" b%d share |", b);
  std::printf(" watched |\n|---|---|---|---|---|");
  for (int b = 0; b < m; ++b) std::printf("---|");
  std::printf("---|\n");
}

// The figure the scenario is about: the slow backend's share after it
// slowed, or the joiner's share in its first second and in the last quarter.
std::string Watched(const Run& run) {
  const Tally& t = *run.tally;
  const int m = t.backends;
  if (!run.scenario.join) {
    return absl::StrFormat("b0 after slowing: %.1f%%",
                           100 * t.Share(0, PhaseBucket(run, 0.5) + 2, t.buckets()));
  }
  const int join = PhaseBucket(run, 0.25);
  return absl::StrFormat("b%d first 1 s: %.1f%%, last quarter: %.1f%%", m - 1,
                         100 * t.Share(m - 1, join, join + 4),
                         100 * t.Share(m - 1, PhaseBucket(run, 0.75), t.buckets()));
}

void PrintRow(const Run& run) {
  const Tally& t = *run.tally;
  std::printf("| %s | %llu | %.2f | %.2f | %.2f |", run.scenario.name.c_str(),
              static_cast<unsigned long long>(t.latency.count()), t.latency.Quantile(0.5) / 1e6,
              t.latency.Quantile(0.99) / 1e6, t.latency.Quantile(0.999) / 1e6);
  for (int b = 0; b < t.backends; ++b) std::printf(" %.1f%% |", 100 * t.Share(b, 0, t.buckets()));
  std::printf(" %s |\n", Watched(run).c_str());
  std::fflush(stdout);
}

void WriteSeries(std::ofstream& out, const Run& run) {
  const Tally& t = *run.tally;
  for (int bucket = 0; bucket + 1 < t.buckets(); ++bucket) {
    uint64_t picks = 0;
    for (int b = 0; b < t.backends; ++b) picks += t.At(bucket, b);
    // Before the join, or a stall of the whole machine: no share to plot.
    if (picks == 0) continue;
    out << run.scenario.name << "," << (bucket + 0.5) * kBucket.count() / 1000.0;
    for (int b = 0; b < t.backends; ++b) out << "," << t.Share(b, bucket, bucket + 1);
    out << "\n";
  }
}

// --check: the directions the issue asks for, where the run has them.
bool Check(const Run& run) {
  const Tally& t = *run.tally;
  const int m = t.backends;
  if (run.scenario.strategy == "peak_ewma" && !run.scenario.join) {
    const double slow = t.Share(0, PhaseBucket(run, 0.5) + 2, t.buckets());
    if (slow >= 1.0 / m) {
      std::printf("CHECK FAILED: %s: the slow backend's share %.3f is not below %.3f\n",
                  run.scenario.name.c_str(), slow, 1.0 / m);
      return false;
    }
  }
  if (run.scenario.slow_start) {
    const int join = PhaseBucket(run, 0.25);
    const double early = t.Share(m - 1, join, join + 2);
    const double late = t.Share(m - 1, PhaseBucket(run, 0.75), t.buckets());
    if (!(early < late)) {
      std::printf(
          "CHECK FAILED: %s: the joining backend's share did not ramp up (%.3f, then %.3f)\n",
          run.scenario.name.c_str(), early, late);
      return false;
    }
  }
  return true;
}

int Main() {
  absl::StatusOr<std::unique_ptr<bench::SpawnedServer>> server = bench::SpawnedServer::Start(
      absl::GetFlag(FLAGS_spawn_server), {}, std::chrono::milliseconds(20000));
  if (!server.ok()) {
    std::fprintf(stderr, "picker-sim: %s\n", server.status().ToString().c_str());
    return 2;
  }
  auto channel =
      grpc::CreateChannel((*server)->admin_address(), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::Admin::Stub> admin = v1::Admin::NewStub(channel);
  std::ofstream series;
  if (!absl::GetFlag(FLAGS_series).empty()) series.open(absl::GetFlag(FLAGS_series));
  bool ok = true;
  PrintHeader(absl::GetFlag(FLAGS_backends));
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',')) {
    Run run = RunScenario(ParseScenario(std::string(name)), **server, *admin);
    if (run.tally == nullptr) return 2;
    PrintRow(run);
    if (run.tally->errors > 0) {
      std::fprintf(stderr, "%s: %llu failed picks, first: %s\n", run.scenario.name.c_str(),
                   static_cast<unsigned long long>(run.tally->errors.load()),
                   run.tally->first_error.c_str());
      ok = false;
    }
    if (series.is_open()) WriteSeries(series, run);
    if (absl::GetFlag(FLAGS_check)) ok = Check(run) && ok;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace picker::sim

int main(int argc, char** argv) {
  picker::program::ParseCommandLine(
      argc, argv, "picker-sim",
      "picker-sim: closed-loop simulation of picker's strategies through a real server.\n\n"
      "  picker-sim --spawn-server build/picker-server --series sim.csv\n");
  if (absl::GetFlag(FLAGS_spawn_server).empty()) {
    std::fprintf(stderr, "picker-sim: --spawn-server is required\n");
    return 2;
  }
  return picker::sim::Main();
}
