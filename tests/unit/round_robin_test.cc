#include "server/core/strategy/round_robin.h"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <queue>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/strategy/edf_scheduler.h"
#include "tests/unit/strategy_test_util.h"

// Counts heap allocations so tests can check that picks do not allocate.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace
void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace picker::core {
namespace {

using testing::PickInputs;
using testing::PickWith;
using testing::Stateful;
using testing::TestHosts;

std::vector<uint32_t> Sequence(const Stateful<RoundRobinStrategy>& lb, int n) {
  std::vector<uint32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(PickWith(lb, PickInputs{}));
  return out;
}

TEST(RoundRobinTest, EqualWeightsRotateFromSeed) {
  // Envoy's round robin test: seed 1 on 3 hosts gives 1, 2, 0, 1.
  TestHosts hosts = TestHosts::Loopback(80, 3);
  Stateful<RoundRobinStrategy> lb(1, hosts.hosts());
  EXPECT_EQ(Sequence(lb, 4), (std::vector<uint32_t>{1, 2, 0, 1}));
}

TEST(RoundRobinTest, LargeSeedWrapsModuloHostCount) {
  TestHosts hosts = TestHosts::Loopback(80, 3);
  Stateful<RoundRobinStrategy> lb(3000000000002ULL, hosts.hosts());  // % 3 == 2
  EXPECT_EQ(Sequence(lb, 3), (std::vector<uint32_t>{2, 0, 1}));
}

TEST(RoundRobinTest, EnvoyEdfVectors) {
  TestHosts a = TestHosts::Loopback(80, 2, {1, 2});
  Stateful<RoundRobinStrategy> seed0(0, a.hosts());
  EXPECT_EQ(Sequence(seed0, 6), (std::vector<uint32_t>{1, 0, 1, 1, 0, 1}));
  Stateful<RoundRobinStrategy> seed1(1, a.hosts());
  EXPECT_EQ(Sequence(seed1, 6), (std::vector<uint32_t>{0, 1, 1, 0, 1, 1}));

  TestHosts b = TestHosts::Loopback(80, 3, {2, 1, 3});
  Stateful<RoundRobinStrategy> lb(0, b.hosts());
  EXPECT_EQ(Sequence(lb, 12), (std::vector<uint32_t>{2, 0, 2, 1, 0, 2, 2, 0, 2, 1, 0, 2}));
}

TEST(EdfSchedulerTest, CreateWithPicksContinuesWherePickingFromEmptyWouldBe) {
  // The defining property of createWithPicks: starting with P pre-picks
  // continues where an unseeded schedule is after P picks. Envoy computes
  // the seeded deadlines as (floor + 1) / w rather than by summing 1 / w,
  // so near-ties may break differently (Envoy's own test compares deadlines
  // within 1e-5): require per-host counts within one and nearly all
  // positions identical.
  const std::vector<double> weights = {1.1, 2.3, 3.7, 5.9, 0.7};
  auto weight = [&](uint32_t i) { return weights[i]; };
  int same = 0, compared = 0;
  for (uint32_t picks = 0; picks < 300; ++picks) {
    EdfScheduler fresh = EdfScheduler::CreateWithPicks(5, weight, 0);
    for (uint32_t i = 0; i < picks; ++i) fresh.PickAndAdd(weight);
    EdfScheduler seeded = EdfScheduler::CreateWithPicks(5, weight, picks);
    std::vector<int> fresh_counts(5, 0), seeded_counts(5, 0);
    for (int i = 0; i < 40; ++i) {
      const uint32_t a = fresh.PickAndAdd(weight);
      const uint32_t b = seeded.PickAndAdd(weight);
      ++fresh_counts[a];
      ++seeded_counts[b];
      same += a == b;
      ++compared;
    }
    for (int h = 0; h < 5; ++h) {
      ASSERT_NEAR(fresh_counts[h], seeded_counts[h], 1) << "picks " << picks << " host " << h;
    }
  }
  EXPECT_GT(same, compared * 97 / 100);
}

// Envoy's scheduler as Envoy writes it: a priority queue that pops the
// earliest (deadline, order) and pushes the host back with a new deadline.
class ReferenceEdf {
 public:
  // Starts where CreateWithPicks(n, weight, 0) does: Envoy's createWithPicks
  // seeds each deadline as 1 / (w + 1e-13).
  explicit ReferenceEdf(const std::vector<double>& weights) {
    for (uint32_t i = 0; i < weights.size(); ++i) {
      queue_.push({1.0 / (weights[i] + 1e-13), order_++, i});
    }
  }
  template <class WeightFn>
  uint32_t PickAndAdd(WeightFn weight) {
    const Entry front = queue_.top();
    queue_.pop();
    queue_.push({front.deadline + 1.0 / weight(front.host), order_++, front.host});
    return front.host;
  }

 private:
  struct Entry {
    double deadline;
    uint64_t order;
    uint32_t host;
    bool operator>(const Entry& other) const {
      return std::tie(deadline, order) > std::tie(other.deadline, other.order);
    }
  };
  uint64_t order_ = 0;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue_;
};

TEST(EdfSchedulerTest, PicksAsEnvoysPopAndPush) {
  // The scheduler sinks the front entry in place instead of popping and
  // pushing; the picks must still be Envoy's, one for one, with static
  // weights (many exact ties among small integers) and with weights that
  // change between picks as LeastRequest's do.
  std::mt19937_64 rng(7);
  for (const uint32_t hosts : {2u, 3u, 10u, 100u, 1000u}) {
    std::vector<double> weights(hosts);
    for (double& w : weights) w = static_cast<double>(1 + rng() % 7);
    std::vector<double> changing = weights;
    auto static_weight = [&](uint32_t i) { return weights[i]; };
    auto changing_weight = [&](uint32_t i) { return changing[i]; };
    EdfScheduler scheduler = EdfScheduler::CreateWithPicks(hosts, static_weight, 0);
    ReferenceEdf reference(weights);
    for (int pick = 0; pick < 20000; ++pick) {
      ASSERT_EQ(scheduler.PickAndAdd(static_weight), reference.PickAndAdd(static_weight))
          << hosts << " hosts, pick " << pick;
    }
    EdfScheduler dynamic = EdfScheduler::CreateWithPicks(hosts, changing_weight, 0);
    ReferenceEdf dynamic_reference(changing);
    for (int pick = 0; pick < 20000; ++pick) {
      changing[rng() % hosts] = weights[rng() % hosts] / static_cast<double>(1 + rng() % 50);
      ASSERT_EQ(dynamic.PickAndAdd(changing_weight), dynamic_reference.PickAndAdd(changing_weight))
          << hosts << " hosts, pick " << pick;
    }
  }
}

TEST(RoundRobinTest, WeightedSharesAreExact) {
  TestHosts hosts = TestHosts::Loopback(80, 3, {1, 3, 6});
  Stateful<RoundRobinStrategy> lb(12345, hosts.hosts());
  std::vector<int> counts(3, 0);
  for (uint32_t h : Sequence(lb, 10000)) ++counts[h];
  EXPECT_NEAR(counts[0], 1000, 2);
  EXPECT_NEAR(counts[1], 3000, 2);
  EXPECT_NEAR(counts[2], 6000, 2);
}

TEST(RoundRobinTest, AvoidSkipsExcludedHosts) {
  TestHosts hosts = TestHosts::Loopback(80, 4);
  Stateful<RoundRobinStrategy> lb(0, hosts.hosts());
  for (int i = 0; i < 20; ++i) {
    const uint32_t h = PickWith(lb, PickInputs{.avoid = [](uint32_t h) { return h == 1; }});
    EXPECT_NE(h, 1u);
  }
  // Only host 2 allowed: always found.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(PickWith(lb, PickInputs{.avoid = [](uint32_t h) { return h != 2; }}), 2u);
  }
}

TEST(RoundRobinTest, AvoidEverythingReturnsTheOriginalPick) {
  TestHosts hosts = TestHosts::Loopback(80, 3);
  Stateful<RoundRobinStrategy> lb(1, hosts.hosts());
  EXPECT_EQ(PickWith(lb, PickInputs{.avoid = [](uint32_t) { return true; }}), 1u);
}

TEST(RoundRobinTest, AvoidWorksWithManyHostsBeyondTheRetryBound) {
  // 50 hosts, all but host 37 avoided: the retries (10) cannot reach it,
  // the scan does.
  TestHosts hosts = TestHosts::Loopback(1000, 50, std::vector<uint32_t>(50, 1));
  Stateful<RoundRobinStrategy> lb(0, hosts.hosts());
  EXPECT_EQ(PickWith(lb, PickInputs{.avoid = [](uint32_t h) { return h != 37; }}), 37u);
  TestHosts weighted = TestHosts::Loopback(1000, 50, [] {
    std::vector<uint32_t> w(50, 1);
    w[0] = 100;
    return w;
  }());
  Stateful<RoundRobinStrategy> wlb(0, weighted.hosts());
  EXPECT_EQ(PickWith(wlb, PickInputs{.avoid = [](uint32_t h) { return h != 37; }}), 37u);
}

TEST(RoundRobinTest, NoHosts) {
  TestHosts none(std::vector<std::string>{});
  Stateful<RoundRobinStrategy> lb(0, none.hosts());
  EXPECT_EQ(PickWith(lb, PickInputs{}), kNoHost);
}

void ConcurrentPicks(const Stateful<RoundRobinStrategy>& lb, size_t host_count, int threads,
                     int per_thread, std::vector<uint64_t>& totals) {
  std::vector<std::vector<uint64_t>> counts(threads, std::vector<uint64_t>(host_count, 0));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto avoid = [](uint32_t) { return false; };
      auto random = [] { return uint64_t{0}; };
      for (int i = 0; i < per_thread; ++i) {
        const uint32_t h = lb.Pick(PickParams{.hash = 0, .avoid = avoid, .random = random});
        ++counts[t][h];
      }
    });
  }
  for (auto& w : workers) w.join();
  totals.assign(host_count, 0);
  for (const auto& c : counts) {
    for (size_t h = 0; h < host_count; ++h) totals[h] += c[h];
  }
}

TEST(RoundRobinTest, ConcurrentEqualPicksSpreadExactly) {
  TestHosts hosts = TestHosts::Loopback(80, 5);
  Stateful<RoundRobinStrategy> lb(7, hosts.hosts());
  std::vector<uint64_t> totals;
  ConcurrentPicks(lb, 5, 4, 50000, totals);
  // The shared atomic cursor hands out consecutive positions: 200000 picks
  // over 5 hosts are exactly 40000 each.
  for (uint64_t c : totals) EXPECT_EQ(c, 40000u);
}

TEST(RoundRobinTest, ConcurrentWeightedPicksFollowWeights) {
  TestHosts hosts = TestHosts::Loopback(80, 3, {1, 2, 5});
  Stateful<RoundRobinStrategy> lb(7, hosts.hosts());
  std::vector<uint64_t> totals;
  ConcurrentPicks(lb, 3, 4, 40000, totals);
  EXPECT_NEAR(totals[0], 20000, 3);
  EXPECT_NEAR(totals[1], 40000, 3);
  EXPECT_NEAR(totals[2], 100000, 3);
}

TEST(RoundRobinTest, PicksDoNotAllocate) {
  TestHosts equal = TestHosts::Loopback(80, 4);
  TestHosts weighted = TestHosts::Loopback(80, 4, {1, 2, 3, 4});
  Stateful<RoundRobinStrategy> a(0, equal.hosts()), b(0, weighted.hosts());
  auto avoid = [](uint32_t h) { return h == 0; };
  auto random = [] { return uint64_t{0}; };
  const PickParams params{.hash = 0, .avoid = avoid, .random = random};
  const uint64_t before = g_allocations.load();
  uint64_t sink = 0;
  for (int i = 0; i < 1000; ++i) sink += a.Pick(params) + b.Pick(params);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_GT(sink, 0u);
}

}  // namespace
}  // namespace picker::core
