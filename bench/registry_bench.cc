// Cost of one admin write (a PutTarget weight flip) through the control
// plane: the hand-off to its writer, validation, the store record and its
// commit, the change coming back through the feed, the snapshot build and
// the publication, with the in-memory store and with the file store. Run:
//   build/registry_bench [--benchmark_filter=...]
// The file store writes under $PICKER_BENCH_DIR (default /dev/shm when it
// exists, else the system's temporary directory), so that the figure is
// the CPU of a write rather than the disk's flush.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/core/config.h"
#include "server/core/store.h"
#include "server/store/file_store.h"
#include "tests/support/local_picker.h"

namespace picker::core {
namespace {

std::filesystem::path BenchDir() {
  if (const char* dir = std::getenv("PICKER_BENCH_DIR")) return dir;
  if (std::filesystem::is_directory("/dev/shm")) return "/dev/shm";
  return std::filesystem::temp_directory_path();
}

std::string Address(int i) {
  return "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080";
}

// One upstream of `targets` targets with weights 100 and 50 in turn, then
// flips of one target's weight at a time (as picker-bench's +admin modes),
// each one a batch of its own, as the writer makes them when writes come
// one at a time.
void RunWeightFlips(benchmark::State& state, Store* store, StrategyKind kind) {
  auto registry = std::make_unique<picker::testing::LocalPicker>(*store);
  UpstreamConfig config;
  config.name = "bench";
  config.load_balancer.kind = kind;
  if (!registry->CreateUpstream(config).ok()) {
    state.SkipWithError("CreateUpstream failed");
    return;
  }
  const int n = static_cast<int>(state.range(0));
  std::vector<TargetConfig> targets(n);
  for (int i = 0; i < n; ++i) {
    targets[i].address = Address(i);
    targets[i].weight = i % 2 == 0 ? 100 : 50;
  }
  if (!registry->ReplaceTargets("bench", targets).ok()) {
    state.SkipWithError("ReplaceTargets failed");
    return;
  }
  uint64_t i = 0;
  for (auto _ : state) {
    const int target = static_cast<int>(i % n);
    TargetPatch patch;
    patch.address = targets[target].address;
    // Flip between the two weights of its parity so weights stay unequal.
    patch.weight = (i / n) % 2 == 0 ? targets[target].weight + 1 : targets[target].weight;
    ++i;
    if (!registry->PutTarget("bench", patch).ok()) {
      state.SkipWithError("PutTarget failed");
      return;
    }
  }
}

void BM_PutTargetMemoryStore(benchmark::State& state, StrategyKind kind) {
  MemoryStore store;
  RunWeightFlips(state, &store, kind);
}

void BM_PutTargetFileStore(benchmark::State& state, StrategyKind kind) {
  const std::filesystem::path dir =
      BenchDir() / ("picker-registry-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    absl::StatusOr<std::unique_ptr<store::FileStore>> store = store::FileStore::Open(dir.string());
    if (!store.ok()) {
      state.SkipWithError(std::string(store.status().message()).c_str());
    } else {
      RunWeightFlips(state, store->get(), kind);
    }
  }
  std::filesystem::remove_all(dir);
}

BENCHMARK_CAPTURE(BM_PutTargetMemoryStore, RoundRobin, StrategyKind::kRoundRobin)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000);
BENCHMARK_CAPTURE(BM_PutTargetFileStore, RoundRobin, StrategyKind::kRoundRobin)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000);
BENCHMARK_CAPTURE(BM_PutTargetMemoryStore, Maglev, StrategyKind::kMaglev)->Arg(100);
BENCHMARK_CAPTURE(BM_PutTargetFileStore, Maglev, StrategyKind::kMaglev)->Arg(100);

}  // namespace
}  // namespace picker::core

BENCHMARK_MAIN();
