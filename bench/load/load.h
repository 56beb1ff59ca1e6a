// Closed-loop load against picker (Pick/Release, PickStream) or against the
// in-process empty baseline (Echo), and the concurrent admin writer.
#ifndef PICKER_BENCH_LOAD_LOAD_H_
#define PICKER_BENCH_LOAD_LOAD_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/load/histogram.h"
#include "grpcpp/support/status.h"
#include "picker/v1/admin.pb.h"

namespace grpc {
class Channel;
class Server;
}  // namespace grpc

namespace picker::bench {

using Clock = std::chrono::steady_clock;

enum class Workload {
  kPickerUnary,   // Pick, then Release of its lease: one op = both RPCs.
  kPickerStream,  // PickStream: one op = one pick message and its answer.
  kEchoUnary,     // Two empty unary calls in a row, the shape of a unary op.
  kEchoStream,    // One empty message and its answer on a bidi stream.
};

struct LoadOptions {
  Workload workload = Workload::kPickerUnary;
  std::string address;   // Data listener (picker) or the baseline server.
  std::string upstream;  // Picker workloads.
  // Set PickRequest.hash to a random value, so a consistent-hashing strategy
  // looks up its ring or table (with no hash policy, it would otherwise pick
  // at random).
  bool send_hash = false;
  int channels = 1;  // Connections; slots are spread over them.
  int concurrency = 1;
  std::chrono::duration<double> warmup{1};
  std::chrono::duration<double> duration{5};
  // Called on the running thread when the measured window opens and closes
  // (for CPU and metrics samples taken over the same window).
  std::function<void()> on_window_start;
  std::function<void()> on_window_end;
  // With a phase > 0, the window is cut into phases of this length, off and
  // on in turn, off first; `on_phase` runs on the running thread at each
  // boundary (off phases: false). An op counts in the phase its answer came
  // in. Comparing on phases with off phases of one run, rather than runs of
  // their own, keeps the machine's slow minutes from reading as a
  // difference between the two.
  std::chrono::duration<double> phase{0};
  std::function<void(bool on)> on_phase;
};

// What a run measured over its window, or over one kind of its phases.
struct Measured {
  uint64_t ops = 0;    // Ops completed (successfully).
  double seconds = 0;  // Time measured.
  Histogram latency;   // Per op, ns.
  // Unary workloads: the first call of the op alone (the Pick).
  Histogram first_call;

  // Adds the other's ops and histograms; the seconds are the run's to set.
  void Merge(const Measured& other);
};

struct RunResult {
  Measured window;      // The whole window; with phases, its off phases.
  Measured on;          // With phases: the on phases.
  uint64_t errors = 0;  // Failed RPCs or answers with a non-zero code.
  std::string first_error;
};

// Runs `options.concurrency` closed loops (each one op outstanding) for the
// warmup, then measures for the duration. Returns once every RPC has ended:
// every call carries a deadline, so a stuck server cannot hold it forever.
RunResult RunClosedLoop(const LoadOptions& options);

// The empty-handler baseline: picker.bench.Echo served by a callback-API
// server inside picker-bench, on a free loopback port.
class EchoServer {
 public:
  // With `like_picker`, the server is built as picker-server's are: it also
  // serves grpc.health.v1 and reflection, and a second grpc::Server (picker's
  // admin listener) runs next to it, so that only the handlers differ.
  // With `overlap`, the stream handler re-arms its read before its write
  // completes, as picker's PickStream does (otherwise: read, write, read).
  EchoServer(bool like_picker, bool overlap);
  ~EchoServer();
  const std::string& address() const { return address_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string address_;
};

// A target of the bench upstream, with the weight it was created with.
struct BenchTarget {
  std::string address;
  uint32_t weight;
};

// Flips target weights with PutTarget at a fixed rate (open loop, so a slow
// write does not lower the rate), to measure picks while snapshots are being
// rebuilt and published. A flip swaps a weight of 100 for 50 and back: the
// targets, in turn, leave their created weight and then return to it.
class AdminWriter {
 public:
  struct Stats {
    uint64_t writes = 0;
    uint64_t errors = 0;
    double seconds = 0;
    Histogram latency;
    std::string first_error;
  };
  // `expected` is the answer a write counts as done with: OK, or NOT_FOUND
  // for writes aimed at an upstream that does not exist on purpose.
  AdminWriter(const std::string& admin_address, std::string upstream,
              std::vector<BenchTarget> targets, double writes_per_sec,
              grpc::StatusCode expected = grpc::StatusCode::OK);
  ~AdminWriter();
  // With `active` false, the writes due are skipped until SetActive(true).
  void Start(bool active = true);
  // Writes are due at the same times either way: an inactive writer skips
  // them (for LoadOptions::phase).
  void SetActive(bool active);
  Stats Stop();  // Waits for the writes in flight.

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sets the strategy named round_robin, least_request, ring_hash, random or
// maglev (with default options); false for another name.
bool SetStrategy(const std::string& strategy, v1::LoadBalancer* lb);

// Admin set-up of the bench upstream: (re)creates it with `strategy` and
// `count` targets, of weight 100, or of weights 100 and 50 in turn when
// `mixed_weights`. Returns the targets, or an error message.
struct SetupResult {
  std::vector<BenchTarget> targets;
  std::string error;
};
SetupResult SetUpUpstream(const std::string& admin_address, const std::string& upstream,
                          const std::string& strategy, int count, bool mixed_weights);

}  // namespace picker::bench

#endif  // PICKER_BENCH_LOAD_LOAD_H_
