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
#include "server/core/strategy/strategy.h"
#include "tests/support/fake_request.h"

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
  std::unique_ptr<Strategy> strategy = BuildStrategy(ConfigFor(kind), hosts.hosts, 1);
  std::mt19937_64 rng(1);
  auto avoid = [](uint32_t) { return false; };
  auto random = [&rng] { return rng(); };
  uint64_t i = 0;
  for (auto _ : state) {
    // Hash keys as Envoy's ChooseHost benchmark: XXH64 of the counter.
    const uint64_t hash = XxHash64(std::string_view(reinterpret_cast<const char*>(&i), 8));
    ++i;
    benchmark::DoNotOptimize(
        strategy->Pick(PickParams{.hash = hash, .avoid = avoid, .random = random}));
  }
  state.counters["memory_bytes"] = static_cast<double>(strategy->Stats().memory_bytes);
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
  std::unique_ptr<Strategy> strategy = BuildStrategy(ConfigFor(kind), hosts.hosts, 1);
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
        strategy->Pick(PickParams{.hash = hash.value_or(rng()), .avoid = avoid, .random = random}));
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
    std::unique_ptr<Strategy> strategy = BuildStrategy(config, hosts.hosts, 1);
    stats = strategy->Stats();
    benchmark::DoNotOptimize(strategy.get());
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
    std::unique_ptr<Strategy> strategy = BuildStrategy(config, hosts.hosts, 1);
    stats = strategy->Stats();
    benchmark::DoNotOptimize(strategy.get());
  }
  state.counters["memory_bytes"] = static_cast<double>(stats.memory_bytes);
}
BENCHMARK(BM_BuildMaglev)
    ->ArgsProduct({{100, 500}, {65537, 5000011}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace picker::core

BENCHMARK_MAIN();
