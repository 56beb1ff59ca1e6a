// picker-bench: a closed-loop RPC load generator for picker-server, with an
// in-process empty-handler baseline measured in the same run.
//
// Each mode runs --concurrency closed loops (one op outstanding each) for
// --warmup then --duration seconds and reports QPS and latency percentiles.
// The baseline modes serve picker.bench.Echo from this process over a real
// loopback TCP port: the transport's own limit on this machine, which picker
// cannot beat, so picker's figures are read as a ratio to it.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench/load/host.h"
#include "bench/load/load.h"
#include "server/program/program.h"

ABSL_FLAG(std::string, modes, "unary,baseline-unary",
          "Comma-separated modes: unary (Pick then Release), stream (PickStream, the previous "
          "lease's release riding on each pick), baseline-unary and baseline-stream (the same "
          "shapes against an empty in-process handler), unary+admin and stream+admin (picker "
          "modes with --admin-writes-per-sec PutTarget writes running).");
ABSL_FLAG(std::string, concurrency, "8",
          "Outstanding ops (one per closed loop); a comma-separated list runs each value.");
ABSL_FLAG(double, duration, 5, "Measured seconds per run.");
ABSL_FLAG(double, warmup, 1, "Seconds of load before measuring, per run.");
ABSL_FLAG(int, repeat, 1,
          "Runs of every (concurrency, mode); the summary gives the median of each figure. "
          "Runs are interleaved so that a burst of load elsewhere on the machine spreads over "
          "the modes.");
ABSL_FLAG(std::string, target, "127.0.0.1:50051", "picker's data listener (loopback only).");
ABSL_FLAG(std::string, admin, "127.0.0.1:50052", "picker's admin listener (loopback only).");
ABSL_FLAG(std::string, metrics, "",
          "picker's metrics listener; when known (or with --spawn-server), the server's own "
          "pick time from picker_pick_duration_seconds is reported.");
ABSL_FLAG(std::string, spawn_server, "",
          "Path of a picker-server to start on free loopback ports with a fresh data "
          "directory (overrides --target, --admin and --metrics); stopped at the end.");
ABSL_FLAG(std::vector<std::string>, server_args, {},
          "Extra flags for the spawned server, comma-separated (e.g. --data-dir=/dev/shm/pb); "
          "not a log level above info, which would hide the line that gives its ports.");
ABSL_FLAG(std::string, upstream, "picker-bench",
          "Upstream to pick from; with --setup, created afresh (deleted first if present).");
ABSL_FLAG(bool, setup, true, "Create the upstream with --targets targets of --strategy.");
ABSL_FLAG(int, targets, 100, "Targets of the bench upstream.");
ABSL_FLAG(bool, mixed_weights, false,
          "Give the bench targets weights 100 and 50 in turn (all 100 otherwise). RoundRobin and "
          "LeastRequest then pick from their weighted (EDF) schedules, and the +admin modes' "
          "flips keep the weights unequal, so idle and +admin runs take the same pick path.");
ABSL_FLAG(std::string, strategy, "round_robin",
          "round_robin, least_request, ring_hash, random or maglev. With ring_hash and maglev "
          "each pick carries a random hash, so the ring or table is searched.");
ABSL_FLAG(double, admin_writes_per_sec, 100,
          "Rate of PutTarget weight flips in the +admin modes (open loop).");
ABSL_FLAG(std::string, admin_writes_to, "picked",
          "Where the +admin modes' flips go: picked (the upstream the picks use), other (a "
          "second upstream set up as the picked one, so picks keep their snapshot) or missing "
          "(an upstream that does not exist: every write answers NOT_FOUND, and stores and "
          "builds nothing).");
ABSL_FLAG(bool, baseline_like_picker, false,
          "Build the baseline server as picker-server is built: grpc.health.v1 and reflection "
          "too, and a second grpc::Server (as picker's admin listener) in the same process, so "
          "that only the handlers differ.");
ABSL_FLAG(bool, baseline_overlap, false,
          "The baseline stream handler starts its next read as soon as it starts a write "
          "(queueing writes under a mutex), as picker's PickStream handler does.");
ABSL_FLAG(std::string, baseline_target, "",
          "Run the baseline modes against this Echo server (another picker-bench started with "
          "--serve-baseline) instead of the in-process one: a baseline in its own process, as "
          "picker-server is.");
ABSL_FLAG(double, serve_baseline, 0,
          "Only serve the baseline Echo service on a free loopback port for this many seconds "
          "(prints 'baseline listening 127.0.0.1:PORT'), then exit.");
ABSL_FLAG(double, admin_phase, 0,
          "With a length in seconds (e.g. 0.5), a +admin mode and its idle mode are measured "
          "in the same run: the window alternates idle and writing phases of this length, and "
          "each phase's picks count for its mode (CPU figures are then left out). The idle "
          "mode then needs no runs of its own, and the summary adds the median of the runs' "
          "own p99 ratios.");
ABSL_FLAG(int, channels, 1, "Client connections per run; loops are spread over them.");

namespace picker::bench {
namespace {

// absl::string_view, not std::string_view: Debian's abseil keeps its own.
constexpr absl::string_view kModes[] = {"unary",           "stream",      "baseline-unary",
                                        "baseline-stream", "unary+admin", "stream+admin"};

bool IsAdminMode(const std::string& mode) { return absl::EndsWith(mode, "+admin"); }
bool IsBaseline(const std::string& mode) { return absl::StartsWith(mode, "baseline-"); }
bool IsUnary(const std::string& mode) { return absl::StrContains(mode, "unary"); }

// The figures of one run.
struct Figures {
  double qps = 0;
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0;  // Per op, ms.
  double pick_p50 = 0, pick_p99 = 0;           // The Pick alone (unary), ms.
  uint64_t ops = 0, errors = 0;
  double bench_cpu_us = 0, server_cpu_us = 0;  // Per op.
  double server_pick_us = 0;                   // picker_pick_duration_seconds mean.
  double machine_busy = 0, others_busy = 0;    // Cores busy, on average.
  double admin_writes_per_sec = 0, admin_p99 = 0;
  uint64_t admin_errors = 0;
  std::string first_error;
};

double Ms(double ns) { return ns / 1e6; }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The median of each figure over the runs, separately.
Figures MedianOf(const std::vector<Figures>& runs) {
  auto med = [&](double Figures::*field) {
    std::vector<double> v;
    for (const Figures& f : runs) v.push_back(f.*field);
    return Median(v);
  };
  Figures m;
  for (double Figures::*field :
       {&Figures::qps, &Figures::p50, &Figures::p90, &Figures::p99, &Figures::p999,
        &Figures::pick_p50, &Figures::pick_p99, &Figures::bench_cpu_us, &Figures::server_cpu_us,
        &Figures::server_pick_us, &Figures::machine_busy, &Figures::others_busy,
        &Figures::admin_writes_per_sec, &Figures::admin_p99}) {
    m.*field = med(field);
  }
  for (const Figures& f : runs) {
    m.ops += f.ops;
    m.errors += f.errors;
    m.admin_errors += f.admin_errors;
    if (m.first_error.empty()) m.first_error = f.first_error;
  }
  return m;
}

std::string Describe(const std::string& mode, const Figures& f) {
  std::string line =
      absl::StrFormat("QPS=%.1f p50=%.3fms p90=%.3fms p99=%.3fms p99.9=%.3fms errors=%d", f.qps,
                      f.p50, f.p90, f.p99, f.p999, f.errors);
  if (IsUnary(mode)) {
    absl::StrAppendFormat(&line, " | %s p50=%.3fms p99=%.3fms",
                          IsBaseline(mode) ? "first-call" : "pick", f.pick_p50, f.pick_p99);
  }
  if (f.bench_cpu_us > 0) {  // Left out of --admin-phase runs.
    absl::StrAppendFormat(&line, " | cpu/op bench=%.1fus", f.bench_cpu_us);
    if (f.server_cpu_us > 0) absl::StrAppendFormat(&line, " server=%.1fus", f.server_cpu_us);
    if (f.server_pick_us > 0) {
      absl::StrAppendFormat(&line, " | server pick=%.2fus", f.server_pick_us);
    }
    absl::StrAppendFormat(&line, " | cores busy=%.2f others=%.2f", f.machine_busy, f.others_busy);
  }
  if (IsAdminMode(mode)) {
    absl::StrAppendFormat(&line, " | admin %.1f writes/s p99=%.2fms errors=%d",
                          f.admin_writes_per_sec, f.admin_p99, f.admin_errors);
  }
  if (!f.first_error.empty()) absl::StrAppend(&line, " | first error: ", f.first_error);
  return line;
}

struct Endpoints {
  std::string data, admin, metrics;
  pid_t server_pid = 0;  // 0: not ours, its CPU is not measured.
  std::vector<BenchTarget> targets;
  // Where the +admin modes write (--admin-writes-to).
  std::string admin_upstream;
  std::vector<BenchTarget> admin_targets;
  grpc::StatusCode admin_expected = grpc::StatusCode::OK;
};

struct Samples {
  double bench_cpu = 0, server_cpu = 0;
  MachineCpu machine;
  double pick_sum = 0, pick_count = 0;
};

Samples Sample(const Endpoints& endpoints, bool scrape) {
  Samples s;
  if (scrape && !endpoints.metrics.empty()) {
    if (auto text = HttpGet(endpoints.metrics, "/metrics", std::chrono::seconds(2)); text.ok()) {
      s.pick_sum = PrometheusSum(*text, "picker_pick_duration_seconds_sum");
      s.pick_count = PrometheusSum(*text, "picker_pick_duration_seconds_count");
    }
  }
  s.bench_cpu = SelfCpuSeconds();
  if (endpoints.server_pid > 0) s.server_cpu = ProcessCpuSeconds(endpoints.server_pid);
  s.machine = ReadMachineCpu();
  return s;
}

// The figures of what a run measured (QPS and latency; CPU is for the caller).
Figures FiguresOf(const Measured& measured) {
  Figures f;
  f.ops = measured.ops;
  f.qps = measured.seconds > 0 ? measured.ops / measured.seconds : 0;
  f.p50 = Ms(measured.latency.Quantile(0.5));
  f.p90 = Ms(measured.latency.Quantile(0.9));
  f.p99 = Ms(measured.latency.Quantile(0.99));
  f.p999 = Ms(measured.latency.Quantile(0.999));
  f.pick_p50 = Ms(measured.first_call.Quantile(0.5));
  f.pick_p99 = Ms(measured.first_call.Quantile(0.99));
  return f;
}

// The idle mode whose picks a +admin mode's are compared with.
std::string IdleOf(const std::string& mode) {
  return std::string(absl::StripSuffix(mode, "+admin"));
}

// The load of one run of `mode` at `concurrency`, from the flags.
LoadOptions LoadOptionsFor(const std::string& mode, int concurrency, const Endpoints& endpoints,
                           const std::string& baseline_address) {
  LoadOptions options;
  options.concurrency = concurrency;
  options.channels = absl::GetFlag(FLAGS_channels);
  options.warmup = std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup));
  options.duration = std::chrono::duration<double>(absl::GetFlag(FLAGS_duration));
  options.upstream = absl::GetFlag(FLAGS_upstream);
  const std::string strategy = absl::GetFlag(FLAGS_strategy);
  options.send_hash = strategy == "ring_hash" || strategy == "maglev";
  if (IsBaseline(mode)) {
    options.workload = IsUnary(mode) ? Workload::kEchoUnary : Workload::kEchoStream;
    options.address = baseline_address;
  } else {
    options.workload = IsUnary(mode) ? Workload::kPickerUnary : Workload::kPickerStream;
    options.address = endpoints.data;
  }
  return options;
}

// For a +admin mode: the writer, started, and with --admin-phase switched on
// and off by the load's phases; null for other modes.
std::unique_ptr<AdminWriter> StartAdminWriter(const std::string& mode, const Endpoints& endpoints,
                                              LoadOptions& options) {
  if (!IsAdminMode(mode)) return nullptr;
  const bool phased = absl::GetFlag(FLAGS_admin_phase) > 0;
  auto writer = std::make_unique<AdminWriter>(
      endpoints.admin, endpoints.admin_upstream, endpoints.admin_targets,
      absl::GetFlag(FLAGS_admin_writes_per_sec), endpoints.admin_expected);
  if (phased) {
    options.phase = std::chrono::duration<double>(absl::GetFlag(FLAGS_admin_phase));
    options.on_phase = [w = writer.get()](bool on) { w->SetActive(on); };
  }
  writer->Start(/*active=*/!phased);  // Phases begin idle.
  return writer;
}

// Adds the writer's figures over `seconds` (the writing phases, or its own
// run time) to `f`.
void AddAdminFigures(const AdminWriter::Stats& stats, double seconds, Figures& f) {
  f.admin_writes_per_sec = seconds > 0 ? stats.writes / seconds : 0;
  f.admin_p99 = Ms(stats.latency.Quantile(0.99));
  f.admin_errors = stats.errors;
  if (!stats.first_error.empty()) f.first_error = "admin: " + stats.first_error;
}

// Adds the CPU figures of a window of `window` seconds and `ops` ops, from
// the samples at its start and end, to `f`. The server's CPU counts only
// when picker served the run.
void AddCpuFigures(const Samples& start, const Samples& end, double window, uint64_t ops,
                   bool picker_served, const Endpoints& endpoints, Figures& f) {
  if (ops > 0) {
    f.bench_cpu_us = (end.bench_cpu - start.bench_cpu) / static_cast<double>(ops) * 1e6;
    if (picker_served && endpoints.server_pid > 0) {
      f.server_cpu_us = (end.server_cpu - start.server_cpu) / static_cast<double>(ops) * 1e6;
    }
  }
  if (end.pick_count > start.pick_count) {
    f.server_pick_us = (end.pick_sum - start.pick_sum) / (end.pick_count - start.pick_count) * 1e6;
  }
  const double wall = end.machine.total - start.machine.total;  // Summed over cores.
  window = std::max(window, 1e-9);
  if (wall > 0) {
    const double cores = wall / window;
    f.machine_busy = (end.machine.busy - start.machine.busy) / wall * cores;
    const double ours =
        (end.bench_cpu - start.bench_cpu) + (picker_served ? end.server_cpu - start.server_cpu : 0);
    f.others_busy = std::max(0.0, f.machine_busy - ours / window);
  }
}

// One run of `mode`, as (mode, figures): one entry, or with --admin-phase and
// a +admin mode, two (the writing phases, then the idle ones as the idle
// mode).
std::vector<std::pair<std::string, Figures>> RunOne(const std::string& mode, int concurrency,
                                                    const Endpoints& endpoints,
                                                    const std::string& baseline_address) {
  LoadOptions options = LoadOptionsFor(mode, concurrency, endpoints, baseline_address);
  const bool baseline = IsBaseline(mode);
  Samples start, end;
  options.on_window_start = [&] { start = Sample(endpoints, !baseline); };
  options.on_window_end = [&] { end = Sample(endpoints, !baseline); };
  const bool phased = IsAdminMode(mode) && absl::GetFlag(FLAGS_admin_phase) > 0;
  std::unique_ptr<AdminWriter> writer = StartAdminWriter(mode, endpoints, options);

  RunResult result = RunClosedLoop(options);
  Figures f = FiguresOf(phased ? result.on : result.window);
  if (writer) {
    AdminWriter::Stats stats = writer->Stop();
    AddAdminFigures(stats, phased ? result.on.seconds : stats.seconds, f);
  }
  f.errors = result.errors;
  if (!result.first_error.empty()) f.first_error = result.first_error;
  if (phased) {
    // The CPU samples cover both kinds of phase, so they describe neither.
    Figures idle = FiguresOf(result.window);
    idle.first_error = f.first_error;
    return {{mode, f}, {IdleOf(mode), idle}};
  }
  AddCpuFigures(start, end, result.window.seconds, result.window.ops, !baseline, endpoints, f);
  return {{mode, f}};
}

// --serve-baseline: the Echo server alone, in its own process, for a bounded
// time.
int ServeBaseline(double seconds) {
  EchoServer echo(absl::GetFlag(FLAGS_baseline_like_picker), absl::GetFlag(FLAGS_baseline_overlap));
  if (echo.address().empty()) return 1;
  std::printf("baseline listening %s\n", echo.address().c_str());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(std::min(seconds, 3600.0)));
  return 0;
}

// The spawned server, for the signal thread: Ctrl-C must not leave a data
// directory behind (the server itself dies with picker-bench anyway).
std::atomic<SpawnedServer*> g_spawned{nullptr};

// Exits at once, from a thread other than the main one, killing the spawned
// server first: its data directory goes with it.
[[noreturn]] void KillServerAndExit(int status) {
  if (SpawnedServer* server = g_spawned.load()) server->KillNow();
  std::_Exit(status);
}

// SIGINT and SIGTERM are taken by a thread with sigwait, so the clean-up may
// do more than async-signal-safe calls. Called before any other thread
// starts, so that every thread inherits the blocked mask.
void HandleSignals() {
  static sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([] {
    int signal = 0;
    sigwait(&signals, &signal);
    std::fprintf(stderr, "picker-bench: interrupted\n");
    KillServerAndExit(130);
  }).detach();
}

// Prints "picker-bench: `message`" to stderr; the exit status of a failure.
int Fail(const std::string& message) {
  std::fprintf(stderr, "picker-bench: %s\n", message.c_str());
  return 1;
}

// What to run, from the flags, checked before anything starts.
struct Plan {
  std::vector<std::string> modes;
  std::vector<int> concurrencies;
  int repeat = 1;
  double duration = 0;
  double warmup = 0;
  bool phased = false;        // --admin-phase given.
  bool needs_picker = false;  // A mode runs against picker-server.
  bool needs_admin = false;   // A +admin mode runs.

  bool Has(const std::string& mode) const {
    return std::find(modes.begin(), modes.end(), mode) != modes.end();
  }
};

// --modes, each one of kModes; false (with the error printed) otherwise.
bool ParseModes(std::vector<std::string>* modes) {
  *modes = absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipEmpty());
  for (const std::string& mode : *modes) {
    if (std::find(std::begin(kModes), std::end(kModes), mode) == std::end(kModes)) {
      std::fprintf(stderr, "--modes: unknown mode '%s' (one of %s)\n", mode.c_str(),
                   absl::StrJoin(kModes, ", ").c_str());
      return false;
    }
  }
  return true;
}

// --concurrency, each in 1..10000; false (with the error printed) otherwise.
bool ParseConcurrencies(std::vector<int>* concurrencies) {
  for (absl::string_view c :
       absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1 || n > 10000) {
      std::fprintf(stderr, "--concurrency: '%s' is not a number in 1..10000\n",
                   std::string(c).c_str());
      return false;
    }
    concurrencies->push_back(n);
  }
  return true;
}

// Reads and checks the plan; 0, or the exit status of a usage error.
int ReadPlan(Plan& plan) {
  if (!ParseModes(&plan.modes) || !ParseConcurrencies(&plan.concurrencies)) return 2;
  plan.repeat = absl::GetFlag(FLAGS_repeat);
  plan.duration = absl::GetFlag(FLAGS_duration);
  plan.warmup = absl::GetFlag(FLAGS_warmup);
  const double admin_phase = absl::GetFlag(FLAGS_admin_phase);
  plan.phased = admin_phase > 0;
  if (plan.modes.empty() || plan.concurrencies.empty() || plan.repeat < 1 || plan.duration <= 0 ||
      plan.duration > 3600 || plan.warmup < 0 || plan.warmup > 600 ||
      absl::GetFlag(FLAGS_channels) < 1 || admin_phase < 0 || admin_phase * 2 > plan.duration) {
    std::fprintf(stderr,
                 "need modes, concurrency >= 1, repeat >= 1, 0 < duration <= 3600, "
                 "0 <= warmup <= 600, channels >= 1, 0 <= admin-phase <= duration / 2\n");
    return 2;
  }
  plan.needs_picker = std::any_of(plan.modes.begin(), plan.modes.end(),
                                  [](const std::string& m) { return !IsBaseline(m); });
  plan.needs_admin = std::any_of(plan.modes.begin(), plan.modes.end(), IsAdminMode);
  if (plan.needs_admin && absl::GetFlag(FLAGS_admin_writes_per_sec) <= 0) {
    std::fprintf(stderr, "--admin-writes-per-sec must be > 0 for the +admin modes\n");
    return 2;
  }
  return 0;
}

// Every run stops by itself; this catches anything that would not (a hung
// connect, a server that never answers), and the spawned server dies with
// this process.
void StartWatchdog(const Plan& plan) {
  const double planned = plan.repeat *
                         static_cast<double>(plan.concurrencies.size() * plan.modes.size()) *
                         (plan.duration + plan.warmup + 1);
  std::thread([limit = planned + 120] {
    std::this_thread::sleep_for(std::chrono::duration<double>(limit));
    std::fprintf(stderr, "picker-bench: still running after %.0f s, giving up\n", limit);
    std::fflush(stdout);
    KillServerAndExit(3);
  }).detach();
}

// What the steps of a picker-bench run share.
struct Bench {
  Plan plan;
  Endpoints endpoints;
  std::unique_ptr<SpawnedServer> server;  // With --spawn-server.
  std::string baseline_address;
  std::unique_ptr<EchoServer> echo;  // The in-process baseline, when it runs here.

  // The servers this run started, the baseline first.
  void StopServers() {
    echo.reset();
    g_spawned.store(nullptr);
    server.reset();
  }
};

// False (with the error printed) for a --server-args log level that would
// hide the info-level "listening" line the ports are learnt from.
bool CheckServerArgs() {
  for (const std::string& arg : absl::GetFlag(FLAGS_server_args)) {
    if ((absl::StrContains(arg, "log-level") || absl::StrContains(arg, "log_level")) &&
        !absl::EndsWith(arg, "=info") && !absl::EndsWith(arg, "=debug") &&
        !absl::EndsWith(arg, "=trace")) {
      std::fprintf(stderr, "--server-args: %s would hide the server's listening line\n",
                   arg.c_str());
      return false;
    }
  }
  return true;
}

// --spawn-server: starts the server and aims the endpoints at it; 0, or the
// exit status.
int SpawnServer(Bench& bench) {
  if (!CheckServerArgs()) return 2;
  // Before any gRPC thread exists: the child is forked from this process.
  auto spawned = SpawnedServer::Start(absl::GetFlag(FLAGS_spawn_server),
                                      absl::GetFlag(FLAGS_server_args), std::chrono::seconds(30));
  if (!spawned.ok()) return Fail(std::string(spawned.status().message()));
  bench.server = *std::move(spawned);
  g_spawned.store(bench.server.get());
  Endpoints& endpoints = bench.endpoints;
  endpoints.data = bench.server->data_address();
  endpoints.admin = bench.server->admin_address();
  endpoints.metrics = bench.server->metrics_address();
  endpoints.server_pid = bench.server->pid();
  std::printf("# spawned %s pid %d: data=%s admin=%s metrics=%s\n",
              absl::GetFlag(FLAGS_spawn_server).c_str(), static_cast<int>(bench.server->pid()),
              endpoints.data.c_str(), endpoints.admin.c_str(), endpoints.metrics.c_str());
  return 0;
}

// picker's listeners must be on this machine; a metrics listener elsewhere
// is only not scraped. 0, or the exit status.
int CheckLoopback(Endpoints& endpoints) {
  for (const std::string* a : {&endpoints.data, &endpoints.admin}) {
    if (!IsLoopback(*a)) {
      std::fprintf(stderr, "picker-bench talks to this machine only; %s is not 127.0.0.1\n",
                   a->c_str());
      return 2;
    }
  }
  if (!endpoints.metrics.empty() && !IsLoopback(endpoints.metrics)) endpoints.metrics.clear();
  return 0;
}

// (Re)creates `upstream` with the bench targets of the flags.
SetupResult SetUpFromFlags(const std::string& admin, const std::string& upstream) {
  return SetUpUpstream(admin, upstream, absl::GetFlag(FLAGS_strategy), absl::GetFlag(FLAGS_targets),
                       absl::GetFlag(FLAGS_mixed_weights));
}

// --admin-writes-to: the upstream the +admin modes write to, set up if need
// be; 0, or the exit status.
int AimAdminWrites(Endpoints& endpoints) {
  const std::string writes_to = absl::GetFlag(FLAGS_admin_writes_to);
  if (writes_to == "other") {
    endpoints.admin_upstream += "-other";
    SetupResult other = SetUpFromFlags(endpoints.admin, endpoints.admin_upstream);
    if (!other.error.empty()) return Fail(other.error);
    endpoints.admin_targets = std::move(other.targets);
  } else if (writes_to == "missing") {
    endpoints.admin_upstream += "-missing";
    endpoints.admin_expected = grpc::StatusCode::NOT_FOUND;
  } else if (writes_to != "picked") {
    std::fprintf(stderr, "--admin-writes-to must be picked, other or missing\n");
    return 2;
  }
  return 0;
}

// --setup: the bench upstream, and the one the admin writes go to; 0, or the
// exit status.
int SetUpUpstreams(Bench& bench) {
  Endpoints& endpoints = bench.endpoints;
  const std::string upstream = absl::GetFlag(FLAGS_upstream);
  SetupResult setup = SetUpFromFlags(endpoints.admin, upstream);
  if (!setup.error.empty()) {
    Fail(setup.error);
    if (bench.server) std::fprintf(stderr, "server log:\n%s\n", bench.server->RecentLog().c_str());
    return 1;
  }
  endpoints.targets = std::move(setup.targets);
  endpoints.admin_upstream = upstream;
  endpoints.admin_targets = endpoints.targets;
  return AimAdminWrites(endpoints);
}

// The baseline the baseline modes run against: --baseline-target, or an
// Echo server started in this process. 0, or the exit status.
int StartBaseline(Bench& bench) {
  if (const std::string target = absl::GetFlag(FLAGS_baseline_target); !target.empty()) {
    if (!IsLoopback(target)) {
      std::fprintf(stderr, "--baseline-target must be on 127.0.0.1\n");
      return 2;
    }
    bench.baseline_address = target;
  } else if (std::any_of(bench.plan.modes.begin(), bench.plan.modes.end(), IsBaseline)) {
    bench.echo = std::make_unique<EchoServer>(absl::GetFlag(FLAGS_baseline_like_picker),
                                              absl::GetFlag(FLAGS_baseline_overlap));
    if (bench.echo->address().empty()) {
      return Fail("cannot start the baseline server on 127.0.0.1");
    }
    bench.baseline_address = bench.echo->address();
  }
  return 0;
}

// Everything the runs talk to, ready: picker-server (spawned or given, its
// upstreams set up) and the baseline. 0, or the exit status.
int PrepareEndpoints(Bench& bench) {
  const Plan& plan = bench.plan;
  bench.endpoints.data = absl::GetFlag(FLAGS_target);
  bench.endpoints.admin = absl::GetFlag(FLAGS_admin);
  bench.endpoints.metrics = absl::GetFlag(FLAGS_metrics);
  if (plan.needs_picker && !absl::GetFlag(FLAGS_spawn_server).empty()) {
    if (int status = SpawnServer(bench); status != 0) return status;
  }
  if (plan.needs_picker) {
    if (int status = CheckLoopback(bench.endpoints); status != 0) return status;
  }
  if (plan.needs_picker && absl::GetFlag(FLAGS_setup)) {
    if (int status = SetUpUpstreams(bench); status != 0) return status;
  } else if (plan.needs_admin) {
    std::fprintf(stderr, "the +admin modes need --setup (they flip the bench targets' weights)\n");
    return 2;
  }
  return StartBaseline(bench);
}

void PrintHeader(const Plan& plan) {
  std::printf(
      "# picker-bench modes=%s concurrency=%s duration=%gs warmup=%gs repeat=%d "
      "strategy=%s targets=%d weights=%s channels=%d cores=%u loadavg=%s\n",
      absl::StrJoin(plan.modes, ",").c_str(), absl::GetFlag(FLAGS_concurrency).c_str(),
      plan.duration, plan.warmup, plan.repeat, absl::GetFlag(FLAGS_strategy).c_str(),
      absl::GetFlag(FLAGS_targets), absl::GetFlag(FLAGS_mixed_weights) ? "mixed" : "equal",
      absl::GetFlag(FLAGS_channels), std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::fflush(stdout);
}

// The p99 that admin writes are judged by: the Pick call alone in a unary
// mode, the whole op on a stream.
double PickP99(const std::string& mode, const Figures& f) {
  return IsUnary(mode) ? f.pick_p99 : f.p99;
}

// What the runs measured.
struct Results {
  // Every run's figures, by (concurrency, mode).
  std::map<std::pair<int, std::string>, std::vector<Figures>> runs;
  // --admin-phase: each run's own p99 ratio, by (concurrency, +admin mode).
  std::map<std::pair<int, std::string>, std::vector<double>> run_ratios;
  bool failed = false;  // A run had errors or no completed ops.
};

// With --admin-phase, an idle mode whose +admin mode runs is measured in
// the +admin mode's runs.
bool MeasuredElsewhere(const Plan& plan, const std::string& mode) {
  return plan.phased && !IsAdminMode(mode) && plan.Has(mode + "+admin");
}

// Run `r` of `mode` at concurrency `c`: printed, and kept in `results`.
void RunAndPrint(const Bench& bench, int r, int c, const std::string& mode, Results& results) {
  auto figures = RunOne(mode, c, bench.endpoints, bench.baseline_address);
  for (auto& [measured_mode, f] : figures) {
    if (f.ops == 0 || f.errors > 0) results.failed = true;
    std::printf("run %d/%d %s c=%d%s: %s\n", r, bench.plan.repeat, measured_mode.c_str(), c,
                figures.size() > 1
                    ? (IsAdminMode(measured_mode) ? " (writing phases)" : " (idle phases)")
                    : "",
                Describe(measured_mode, f).c_str());
  }
  if (figures.size() == 2) {
    const double busy = PickP99(mode, figures[0].second);
    const double idle = PickP99(mode, figures[1].second);
    if (idle > 0) results.run_ratios[{c, mode}].push_back(busy / idle);
  }
  std::fflush(stdout);
  for (auto& [measured_mode, f] : figures) {
    results.runs[{c, measured_mode}].push_back(std::move(f));
  }
}

// Every (concurrency, mode), --repeat times, interleaved (see --repeat).
Results RunAll(const Bench& bench) {
  Results results;
  for (int r = 1; r <= bench.plan.repeat; ++r) {
    for (int c : bench.plan.concurrencies) {
      for (const std::string& mode : bench.plan.modes) {
        if (!MeasuredElsewhere(bench.plan, mode)) RunAndPrint(bench, r, c, mode, results);
      }
    }
  }
  return results;
}

// Picker against the empty handler, same shape, same run.
void PrintBaselineRatios(int c, const std::string& shape,
                         const std::map<std::string, Figures>& median) {
  const std::string base = absl::StrCat("baseline-", shape);
  if (!median.contains(base) || median.at(base).qps <= 0) return;
  const Figures& b = median.at(base);
  for (const std::string& mode : {shape, absl::StrCat(shape, "+admin")}) {
    if (!median.contains(mode)) continue;
    const Figures& p = median.at(mode);
    std::printf("ratio %s/%s = %.2f (c=%d; QPS %.0f vs %.0f; p50 x%.2f, p99 x%.2f)\n", mode.c_str(),
                base.c_str(), p.qps / b.qps, c, p.qps, b.qps, b.p50 > 0 ? p.p50 / b.p50 : 0,
                b.p99 > 0 ? p.p99 / b.p99 : 0);
  }
}

// Picks under admin writes against idle: the pick's own p99, of the medians
// and, with --admin-phase, the median of each run's own ratio.
void PrintAdminRatios(int c, const std::string& shape, const std::map<std::string, Figures>& median,
                      const Results& results) {
  const std::string loaded = absl::StrCat(shape, "+admin");
  if (!median.contains(loaded) || !median.contains(shape)) return;
  const Figures& idle = median.at(shape);
  const Figures& busy = median.at(loaded);
  const double idle_p99 = PickP99(shape, idle);
  const double busy_p99 = PickP99(shape, busy);
  std::printf(
      "ratio %s/%s pick p99 = %.2f (c=%d; %.3f ms under %.1f admin writes/s vs %.3f ms "
      "idle; QPS x%.2f)\n",
      loaded.c_str(), shape.c_str(), idle_p99 > 0 ? busy_p99 / idle_p99 : 0, c, busy_p99,
      busy.admin_writes_per_sec, idle_p99, idle.qps > 0 ? busy.qps / idle.qps : 0);
  if (auto it = results.run_ratios.find({c, loaded}); it != results.run_ratios.end()) {
    std::vector<std::string> each;
    for (double ratio : it->second) each.push_back(absl::StrFormat("%.2f", ratio));
    std::printf("ratio %s/%s pick p99, median of the runs' own = %.2f (runs: %s)\n", loaded.c_str(),
                shape.c_str(), Median(it->second), absl::StrJoin(each, " ").c_str());
  }
}

// The summary of concurrency `c`: each mode's medians, then the ratios.
void PrintSummaryAt(int c, const Plan& plan, const Results& results) {
  std::map<std::string, Figures> median;
  for (const std::string& mode : plan.modes) {
    auto it = results.runs.find({c, mode});
    if (it == results.runs.end()) continue;
    median[mode] = MedianOf(it->second);
    std::printf("%s c=%d: %s\n", mode.c_str(), c, Describe(mode, median[mode]).c_str());
  }
  for (const std::string shape : {"unary", "stream"}) {
    PrintBaselineRatios(c, shape, median);
    PrintAdminRatios(c, shape, median, results);
  }
}

void PrintSummary(const Plan& plan, const Results& results) {
  std::printf("\n# summary%s, loadavg=%s\n",
              plan.repeat > 1 ? absl::StrCat(" (median of ", plan.repeat, " runs)").c_str() : "",
              LoadAverage().c_str());
  for (int c : plan.concurrencies) PrintSummaryAt(c, plan, results);
  std::fflush(stdout);
}

int Run() {
  HandleSignals();
  if (const double serve = absl::GetFlag(FLAGS_serve_baseline); serve > 0) {
    return ServeBaseline(serve);
  }
  Bench bench;
  if (int status = ReadPlan(bench.plan); status != 0) return status;
  StartWatchdog(bench.plan);
  if (int status = PrepareEndpoints(bench); status != 0) return status;
  PrintHeader(bench.plan);
  const Results results = RunAll(bench);
  PrintSummary(bench.plan, results);
  bench.StopServers();
  if (results.failed) {
    std::fprintf(stderr, "picker-bench: a run had errors or no completed ops\n");
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace picker::bench

int main(int argc, char** argv) {
  picker::program::DisableMutexDeadlockDetection();
  picker::program::ParseCommandLine(
      argc, argv, "picker-bench",
      "picker-bench: closed-loop gRPC load against picker-server, with an empty-handler\n"
      "baseline served by this process measured in the same run.\n\n"
      "  picker-bench --spawn-server build/picker-server --modes unary,baseline-unary \\\n"
      "      --concurrency 1,8,64 --duration 10\n");
  return picker::bench::Run();
}
