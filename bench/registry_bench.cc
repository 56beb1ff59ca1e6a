// Cost of one admin write (a PutTarget weight flip) on the writer thread:
// validation, the snapshot build, the store record, and the publication,
// with the in-memory store and with the file store. Run:
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
#include "server/core/registry.h"
#include "server/core/store.h"
#include "server/store/file_store.h"

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
// each one batch of its own as the admin writer makes them.
void RunWeightFlips(benchmark::State& state, Store* store, StrategyKind kind) {
  absl::StatusOr<std::unique_ptr<Registry>> registry = Registry::Open(store, Registry::Options{});
  if (!registry.ok()) {
    state.SkipWithError(std::string(registry.status().message()).c_str());
    return;
  }
  UpstreamConfig config;
  config.name = "bench";
  config.load_balancer.kind = kind;
  if (!(*registry)->CreateUpstream(config).ok()) {
    state.SkipWithError("CreateUpstream failed");
    return;
  }
  const int n = static_cast<int>(state.range(0));
  std::vector<TargetConfig> targets(n);
  for (int i = 0; i < n; ++i) {
    targets[i].address = Address(i);
    targets[i].weight = i % 2 == 0 ? 100 : 50;
  }
  if (!(*registry)->ReplaceTargets("bench", targets).ok()) {
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
    (*registry)->BeginStoreBatch();
    benchmark::DoNotOptimize((*registry)->PutTarget("bench", patch));
    if (!(*registry)->CommitStoreBatch().ok()) {
      state.SkipWithError("commit failed");
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
