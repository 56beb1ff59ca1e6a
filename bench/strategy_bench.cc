// Cost of one pick per strategy, of building rings and Maglev tables, and
// the memory they hold. Run: build/strategy_bench [--benchmark_filter=...]
#include <atomic>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "server/core/config.h"
#include "server/core/hash/hash.h"
#include "server/core/hash/hash_policy.h"
#include "server/core/store.h"
#include "server/core/strategy/strategy.h"
#include "tests/support/fake_request.h"
#include "tests/support/local_picker.h"

namespace picker::core {
namespace {

// Hosts as Envoy's benchmarks name them: 10.0.{i/256}.{i%256}:6379.
struct BenchHosts {
  explicit BenchHosts(int n, bool weighted = false)
      : keys(n), active(std::make_unique<std::atomic<uint64_t>[]>(n)) {
    for (int i = 0; i < n; ++i) {
      keys[i] = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":6379";
      active[i] = 0;
      hosts.push_back(StrategyHost{keys[i], weighted ? uint32_t(1 + i % 7) : 100u, &active[i]});
    }
  }
  std::vector<std::string> keys;
  std::unique_ptr<std::atomic<uint64_t>[]> active;
  std::vector<StrategyHost> hosts;
};

LoadBalancerConfig ConfigFor(StrategyKind kind) {
  LoadBalancerConfig config;
  config.kind = kind;
  return config;
}

void BM_Pick(benchmark::State& state, StrategyKind kind, bool weighted) {
  BenchHosts hosts(static_cast<int>(state.range(0)), weighted);
  const BuiltStrategy strategy = BuildStrategy(ConfigFor(kind), hosts.hosts, 1);
  std::mt19937_64 rng(1);
  auto avoid = [](uint32_t) { return false; };
  auto random = [&rng] { return rng(); };
  uint64_t i = 0;
  for (auto _ : state) {
    // Hash keys as Envoy's ChooseHost benchmark: XXH64 of the counter.
    const uint64_t hash = XxHash64(std::string_view(reinterpret_cast<const char*>(&i), 8));
    ++i;
    benchmark::DoNotOptimize(
        strategy.Pick(PickParams{.hash = hash, .avoid = avoid, .random = random}));
  }
  state.counters["memory_bytes"] = static_cast<double>(strategy.strategy->Stats().memory_bytes);
}

#define PICK_BENCH(name, kind, weighted) \
  BENCHMARK_CAPTURE(BM_Pick, name, kind, weighted)->Arg(10)->Arg(100)->Arg(1000)

PICK_BENCH(round_robin, StrategyKind::kRoundRobin, false);
PICK_BENCH(round_robin_weighted, StrategyKind::kRoundRobin, true);
PICK_BENCH(least_request, StrategyKind::kLeastRequest, false);
PICK_BENCH(least_request_weighted, StrategyKind::kLeastRequest, true);
PICK_BENCH(random, StrategyKind::kRandom, false);
PICK_BENCH(random_weighted, StrategyKind::kRandom, true);
PICK_BENCH(ring_hash, StrategyKind::kRingHash, false);
PICK_BENCH(maglev, StrategyKind::kMaglev, false);

// As BM_Pick, with the request hash computed from an `x-user` header policy
// each time, as a Pick with attributes does: hashing plus picking.
void BM_PickHeaderHash(benchmark::State& state, StrategyKind kind) {
  BenchHosts hosts(static_cast<int>(state.range(0)));
  const BuiltStrategy strategy = BuildStrategy(ConfigFor(kind), hosts.hosts, 1);
  std::vector<HashPolicy> policies(1);
  policies[0].kind = HashPolicy::Kind::kHeader;
  policies[0].name = "x-user";
  // A request with a few headers, one of which the hash policy names.
  testing::FakeRequest request;
  request.headers = {{":authority", "api.example.com"}, {"user-agent", "bench/1.0"}};
  std::string& user = request.headers["x-user"];
  user = "user-0";
  request.source_ip = "192.0.2.7";
  std::mt19937_64 rng(1);
  auto avoid = [](uint32_t) { return false; };
  auto random = [&rng] { return rng(); };
  uint64_t i = 0;
  for (auto _ : state) {
    // A different user each time; the digits are rewritten in place.
    user.replace(5, std::string::npos, std::to_string(i++ % 100000));
    const std::optional<uint64_t> hash = ComputeRequestHash(policies, request, "bench", nullptr);
    benchmark::DoNotOptimize(
        strategy.Pick(PickParams{.hash = hash.value_or(rng()), .avoid = avoid, .random = random}));
  }
}

#define HEADER_HASH_BENCH(name, kind) \
  BENCHMARK_CAPTURE(BM_PickHeaderHash, name, kind)->Arg(10)->Arg(100)->Arg(1000)

HEADER_HASH_BENCH(round_robin, StrategyKind::kRoundRobin);
HEADER_HASH_BENCH(least_request, StrategyKind::kLeastRequest);
HEADER_HASH_BENCH(random, StrategyKind::kRandom);
HEADER_HASH_BENCH(ring_hash, StrategyKind::kRingHash);
HEADER_HASH_BENCH(maglev, StrategyKind::kMaglev);

void BM_BuildRing(benchmark::State& state) {
  BenchHosts hosts(static_cast<int>(state.range(0)));
  LoadBalancerConfig config = ConfigFor(StrategyKind::kRingHash);
  config.min_ring_size = static_cast<uint64_t>(state.range(1));
  StrategyStats stats;
  for (auto _ : state) {
    const BuiltStrategy built = BuildStrategy(config, hosts.hosts, 1);
    stats = built.strategy->Stats();
    benchmark::DoNotOptimize(built.strategy.get());
  }
  state.counters["entries"] = static_cast<double>(stats.entries);
  state.counters["memory_bytes"] = static_cast<double>(stats.memory_bytes);
}
BENCHMARK(BM_BuildRing)
    ->ArgsProduct({{100, 500}, {1024, 65536, 256000}})
    ->Unit(benchmark::kMillisecond);

void BM_BuildMaglev(benchmark::State& state) {
  BenchHosts hosts(static_cast<int>(state.range(0)));
  LoadBalancerConfig config = ConfigFor(StrategyKind::kMaglev);
  config.table_size = static_cast<uint64_t>(state.range(1));
  StrategyStats stats;
  for (auto _ : state) {
    const BuiltStrategy built = BuildStrategy(config, hosts.hosts, 1);
    stats = built.strategy->Stats();
    benchmark::DoNotOptimize(built.strategy.get());
  }
  state.counters["memory_bytes"] = static_cast<double>(stats.memory_bytes);
}
BENCHMARK(BM_BuildMaglev)
    ->ArgsProduct({{100, 500}, {65537, 5000011}})
    ->Unit(benchmark::kMillisecond);

// The whole core pick path on 1 or 2 threads: find the upstream, choose a
// target, open the lease, release it. Each strategy has one upstream the
// threads share and one upstream per thread, 100 targets each, so the
// figures show what threads contend on and how close to 2x picks on
// separate upstreams come.
class PickPath {
 public:
  static PickPath& Get() {
    static PickPath* path = new PickPath();
    return *path;
  }
  // One pick and its release on `upstream`; `i` seeds the request hash.
  void PickAndRelease(const std::string& upstream, uint64_t i) {
    picker::testing::PickInput input;
    input.upstream = upstream;
    input.hash = XxHash64(std::string_view(reinterpret_cast<const char*>(&i), 8));
    absl::StatusOr<picker::testing::PickOutput> out = registry_->Pick(input);
    if (out.ok()) {
      benchmark::DoNotOptimize(
          registry_->Release(upstream, out->lease_id, picker::testing::Outcome::kSuccess, {}));
    }
  }

 private:
  PickPath() {
    registry_ = std::make_unique<picker::testing::LocalPicker>(store_);
    for (const char* strategy : {"round_robin", "round_robin_weighted", "least_request",
                                 "least_request_weighted", "random", "ring_hash", "maglev"}) {
      for (const char* suffix : {"shared", "own-0", "own-1"}) Create(strategy, suffix);
    }
  }
  void Create(std::string strategy, const char* suffix) {
    UpstreamConfig config;
    config.name = strategy + "-" + suffix;
    const bool weighted = strategy.ends_with("_weighted");
    if (weighted) strategy.resize(strategy.size() - 9);
    for (StrategyKind kind :
         {StrategyKind::kRoundRobin, StrategyKind::kLeastRequest, StrategyKind::kRingHash,
          StrategyKind::kRandom, StrategyKind::kMaglev}) {
      if (strategy == StrategyName(kind)) config.load_balancer.kind = kind;
    }
    (void)registry_->CreateUpstream(config);
    std::vector<TargetConfig> targets(100);
    for (int i = 0; i < 100; ++i) {
      targets[i].address = "10.0.0." + std::to_string(i) + ":8080";
      targets[i].weight = weighted ? 1 + i % 7 : 100;
    }
    (void)registry_->ReplaceTargets(config.name, targets);
  }

  MemoryStore store_;
  std::unique_ptr<picker::testing::LocalPicker> registry_;
};

void BM_PickPath(benchmark::State& state, const char* strategy, bool shared) {
  PickPath& path = PickPath::Get();
  const std::string upstream =
      std::string(strategy) +
      (shared ? std::string("-shared") : "-own-" + std::to_string(state.thread_index()));
  uint64_t i = static_cast<uint64_t>(state.thread_index()) << 32;
  for (auto _ : state) path.PickAndRelease(upstream, i++);
  state.SetItemsProcessed(state.iterations());
}

#define PICK_PATH_BENCH(strategy)                                       \
  BENCHMARK_CAPTURE(BM_PickPath, strategy##_shared, #strategy, true)    \
      ->Threads(1)                                                      \
      ->Threads(2)                                                      \
      ->UseRealTime();                                                  \
  BENCHMARK_CAPTURE(BM_PickPath, strategy##_separate, #strategy, false) \
      ->Threads(1)                                                      \
      ->Threads(2)                                                      \
      ->UseRealTime()

PICK_PATH_BENCH(round_robin);
PICK_PATH_BENCH(round_robin_weighted);
PICK_PATH_BENCH(least_request);
PICK_PATH_BENCH(least_request_weighted);
PICK_PATH_BENCH(random);
PICK_PATH_BENCH(ring_hash);
PICK_PATH_BENCH(maglev);

}  // namespace
}  // namespace picker::core

BENCHMARK_MAIN();
