// The prober against the real control and data planes (in-memory store)
// and real servers on loopback: transitions after the configured counts, what
// picks see, timeouts, overrides, and checks turned off.
#include "server/health/prober.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/store.h"
#include "tests/health/test_servers.h"
#include "tests/support/local_picker.h"

namespace picker::health {
namespace {

using ::picker::health::testing::GrpcHealthServer;
using ::picker::health::testing::HttpServer;
using ::picker::health::testing::TcpListener;
using ::picker::health::testing::WaitFor;
using std::chrono::milliseconds;
using Type = core::ActiveHealthConfig::Type;

class ProberTest : public ::testing::Test {
 protected:
  void SetUp() override { registry_ = std::make_unique<::picker::testing::LocalPicker>(store_); }
  void TearDown() override {
    if (prober_) {
      registry_->control().RemoveListener(prober_.get());
      prober_->Stop();
    }
  }

  // An upstream checked every 20 ms; panic off so an unhealthy target is
  // never picked.
  core::UpstreamConfig Config(const std::string& name, Type type) {
    core::UpstreamConfig config;
    config.name = name;
    config.panic_threshold_percent = 0;
    config.passive.consecutive_failures = 0;
    config.active.type = type;
    config.active.interval = milliseconds(20);
    config.active.timeout = milliseconds(500);
    config.active.unhealthy_failures = 3;
    config.active.healthy_successes = 2;
    config.active.http_path = "/health";
    return config;
  }

  void Create(const core::UpstreamConfig& config, const std::vector<std::string>& addresses) {
    ASSERT_TRUE(registry_->CreateUpstream(config).ok());
    for (const std::string& address : addresses) {
      core::TargetPatch patch;
      patch.address = address;
      ASSERT_TRUE(registry_->PutTarget(config.name, patch).ok());
    }
  }

  void StartProber(int threads = 4) {
    if (prober_) registry_->control().RemoveListener(prober_.get());
    prober_ = std::make_unique<Prober>(registry_->control(), Prober::Options{.threads = threads});
    prober_->Start();
    registry_->control().AddListener(prober_.get());
  }

  // The target as the current snapshot has it.
  const core::SnapshotTarget& Target(const std::string& upstream, const std::string& address) {
    snapshot_ = registry_->Find(upstream);
    std::optional<uint32_t> index = snapshot_->Find(address);
    EXPECT_TRUE(index.has_value()) << address;
    return snapshot_->targets()[index.value_or(0)];
  }
  bool Healthy(const std::string& upstream, const std::string& address) {
    return Target(upstream, address).healthy;
  }

  // Addresses that `n` picks returned.
  std::set<std::string> Picked(const std::string& upstream, int n = 20) {
    std::set<std::string> picked;
    for (int i = 0; i < n; ++i) {
      ::picker::testing::PickInput input;
      input.upstream = upstream;
      absl::StatusOr<::picker::testing::PickOutput> pick = registry_->Pick(input);
      if (!pick.ok()) {
        picked.insert("error: " + pick.status().ToString());
        continue;
      }
      picked.insert(pick->target->config.address);
      (void)registry_->Release(upstream, pick->lease_id, ::picker::testing::Outcome::kSuccess,
                               std::nullopt);
    }
    return picked;
  }

  UpstreamCheckStats StatsOf(const std::string& upstream) {
    std::map<std::string, UpstreamCheckStats> stats = prober_->Stats();
    auto it = stats.find(upstream);
    return it == stats.end() ? UpstreamCheckStats{} : it->second;
  }

  core::MemoryStore store_;
  std::unique_ptr<::picker::testing::LocalPicker> registry_;
  std::unique_ptr<Prober> prober_;
  std::shared_ptr<const core::UpstreamSnapshot> snapshot_;
};

TEST_F(ProberTest, HttpTargetLeavesAfterFailuresAndReturnsAfterSuccesses) {
  HttpServer good, bad;
  Create(Config("u", Type::kHttp), {good.address(), bad.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return bad.requests() >= 3; }));
  EXPECT_TRUE(Healthy("u", bad.address()));
  EXPECT_EQ(bad.last_path(), "/health");

  bad.set_status(503);
  // Never before the third failing answer.
  ASSERT_TRUE(WaitFor([&] {
    const int failures_seen = bad.bad_answers();
    if (Healthy("u", bad.address())) return false;
    EXPECT_GE(failures_seen, 3);
    return true;
  }));
  const core::SnapshotTarget& target = Target("u", bad.address());
  EXPECT_EQ(target.reasons, core::kReasonActive);
  EXPECT_TRUE(target.live->active_unhealthy.load());
  EXPECT_EQ(Picked("u"), std::set<std::string>{good.address()});
  EXPECT_EQ(StatsOf("u").turned_unhealthy, 1u);
  EXPECT_EQ(StatsOf("u").unhealthy_targets, 1u);
  EXPECT_GE(StatsOf("u").failures, 3u);

  bad.set_status(200);
  const int requests_before = bad.requests();
  ASSERT_TRUE(WaitFor([&] {
    const int successes_seen = bad.requests() - requests_before;
    if (!Healthy("u", bad.address())) return false;
    // One in-flight 503 may land after the switch; two 200s are needed.
    EXPECT_GE(successes_seen, 2);
    return true;
  }));
  EXPECT_EQ(Target("u", bad.address()).reasons, 0u);
  EXPECT_EQ(Picked("u"), (std::set<std::string>{good.address(), bad.address()}));
  EXPECT_EQ(StatsOf("u").turned_healthy, 1u);
  EXPECT_EQ(StatsOf("u").unhealthy_targets, 0u);
}

TEST_F(ProberTest, FlappingTargetKeepsItsState) {
  HttpServer flapping, good;
  core::UpstreamConfig config = Config("u", Type::kHttp);
  config.active.unhealthy_failures = 2;
  config.active.healthy_successes = 2;
  Create(config, {flapping.address(), good.address()});
  flapping.set_mode(HttpServer::Mode::kFlap);
  StartProber();
  // Alternating answers never make two failures in a row.
  ASSERT_TRUE(WaitFor([&] {
    EXPECT_TRUE(Healthy("u", flapping.address()));
    return flapping.requests() >= 20;
  }));
  EXPECT_EQ(StatsOf("u").turned_unhealthy, 0u);
  EXPECT_GE(StatsOf("u").failures, 9u);

  // Once unhealthy, alternating answers never make two successes in a row.
  flapping.set_status(500);
  ASSERT_TRUE(WaitFor([&] { return !Healthy("u", flapping.address()); }));
  flapping.set_status(200);
  const int from = flapping.requests();
  ASSERT_TRUE(WaitFor([&] {
    EXPECT_FALSE(Healthy("u", flapping.address()));
    return flapping.requests() >= from + 20;
  }));
  EXPECT_EQ(StatsOf("u").turned_healthy, 0u);
}

TEST_F(ProberTest, TimeoutIsHonouredAndDoesNotHoldUpOtherTargets) {
  HttpServer silent;
  silent.set_mode(HttpServer::Mode::kHang);
  TcpListener other;
  core::UpstreamConfig slow = Config("slow", Type::kHttp);
  slow.active.timeout = milliseconds(150);
  slow.active.unhealthy_failures = 2;
  Create(slow, {silent.address()});
  Create(Config("fast", Type::kTcp), {other.address()});
  // Two workers: the silent target holds one for its timeout at a time.
  StartProber(/*threads=*/2);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return !Healthy("slow", silent.address()); }));
  const auto took = std::chrono::steady_clock::now() - start;
  // Two checks, each waited out for its whole timeout, and not much more.
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_GE(StatsOf("slow").timeouts, 2u);
  EXPECT_EQ(StatsOf("slow").failures, 0u);
  // Meanwhile the other target was checked every 20 ms or so.
  EXPECT_GE(other.accepts(), 6);
  EXPECT_TRUE(Healthy("fast", other.address()));
}

TEST_F(ProberTest, HttpStatusNotInTheListIsAFailure) {
  HttpServer server;
  core::UpstreamConfig config = Config("u", Type::kHttp);
  config.active.healthy_http_statuses = {204};
  Create(config, {server.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return !Healthy("u", server.address()); }));
  EXPECT_GE(StatsOf("u").failures, 3u);
  EXPECT_EQ(StatsOf("u").successes, 0u);
  server.set_status(204);
  ASSERT_TRUE(WaitFor([&] { return Healthy("u", server.address()); }));
}

TEST_F(ProberTest, GrpcNotServingIsAFailure) {
  GrpcHealthServer flipping, good;
  Create(Config("u", Type::kGrpc), {flipping.address(), good.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return StatsOf("u").successes >= 4; }));
  EXPECT_TRUE(Healthy("u", flipping.address()));
  flipping.SetServing(false);
  ASSERT_TRUE(WaitFor([&] { return !Healthy("u", flipping.address()); }));
  EXPECT_EQ(Picked("u"), std::set<std::string>{good.address()});
  flipping.SetServing(true);
  ASSERT_TRUE(WaitFor([&] { return Healthy("u", flipping.address()); }));
  EXPECT_EQ(StatsOf("u").turned_unhealthy, 1u);
  EXPECT_EQ(StatsOf("u").turned_healthy, 1u);
}

TEST_F(ProberTest, TcpTargetClosedThenReopened) {
  TcpListener listener, good;
  Create(Config("u", Type::kTcp), {listener.address(), good.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return listener.accepts() >= 2; }));
  listener.Close();
  ASSERT_TRUE(WaitFor([&] { return !Healthy("u", listener.address()); }));
  EXPECT_EQ(Picked("u"), std::set<std::string>{good.address()});
  listener.Open();
  ASSERT_TRUE(WaitFor([&] { return Healthy("u", listener.address()); }));
}

TEST_F(ProberTest, ManualOverrideWinsOverAFailingCheck) {
  HttpServer failing, good;
  failing.set_status(500);
  Create(Config("u", Type::kHttp), {failing.address(), good.address()});
  ASSERT_TRUE(
      registry_->SetTargetHealth("u", failing.address(), core::HealthOverride::kHealthy).ok());
  StartProber();
  // The check's verdict is in...
  ASSERT_TRUE(WaitFor([&] { return StatsOf("u").turned_unhealthy == 1; }));
  // ...and the override still decides.
  const core::SnapshotTarget& target = Target("u", failing.address());
  EXPECT_TRUE(target.healthy);
  EXPECT_EQ(target.reasons, core::kReasonManual);
  EXPECT_TRUE(target.live->active_unhealthy.load());
  EXPECT_EQ(Picked("u"), (std::set<std::string>{failing.address(), good.address()}));

  // Clearing the override lets the check's verdict count.
  ASSERT_TRUE(registry_->SetTargetHealth("u", failing.address(), core::HealthOverride::kNone).ok());
  EXPECT_FALSE(Healthy("u", failing.address()));
  EXPECT_EQ(Target("u", failing.address()).reasons, core::kReasonActive);
}

TEST_F(ProberTest, IntervalZeroMeansNoProbes) {
  HttpServer unchecked, checked;
  core::UpstreamConfig off = Config("off", Type::kHttp);
  off.active.interval = milliseconds(0);
  Create(off, {unchecked.address()});
  Create(Config("on", Type::kHttp), {checked.address()});
  StartProber();
  // Several rounds of checks have run...
  ASSERT_TRUE(WaitFor([&] { return checked.requests() >= 5; }));
  // ...and none of them went to the upstream without checks.
  EXPECT_EQ(unchecked.requests(), 0);
  EXPECT_EQ(prober_->Stats().count("off"), 0u);
  EXPECT_EQ(prober_->Stats().count("on"), 1u);
}

TEST_F(ProberTest, OnlyTheUpstreamsThisReplicaOwnsAreProbed) {
  TcpListener mine, theirs;
  Create(Config("mine", Type::kTcp), {mine.address()});
  Create(Config("theirs", Type::kTcp), {theirs.address()});
  std::atomic<bool> moved_here{false};
  prober_ = std::make_unique<Prober>(
      registry_->control(), Prober::Options{.threads = 2, .owns = [&](const std::string& upstream) {
                                              return upstream == "mine" || moved_here.load();
                                            }});
  prober_->Start();
  registry_->control().AddListener(prober_.get());
  ASSERT_TRUE(WaitFor([&] { return mine.accepts() >= 5; }));
  EXPECT_EQ(theirs.accepts(), 0) << "another replica checks the upstreams it owns";
  // Ownership moves here: the checks start within about an interval.
  moved_here = true;
  ASSERT_TRUE(WaitFor([&] { return theirs.accepts() >= 2; }));
}

TEST_F(ProberTest, TurningChecksOffReturnsTargetsToHealth) {
  HttpServer failing, good, elsewhere;
  failing.set_status(500);
  core::UpstreamConfig config = Config("u", Type::kHttp);
  Create(config, {failing.address(), good.address()});
  Create(Config("other", Type::kHttp), {elsewhere.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return !Healthy("u", failing.address()); }));
  config.active.interval = milliseconds(0);
  ASSERT_TRUE(registry_->UpdateUpstream(config).ok());
  ASSERT_TRUE(WaitFor([&] { return Healthy("u", failing.address()); }));
  EXPECT_EQ(Target("u", failing.address()).reasons, 0u);
  EXPECT_FALSE(Target("u", failing.address()).live->active_unhealthy.load());
  EXPECT_EQ(prober_->Stats().count("u"), 0u);
  // Checks go on elsewhere but no longer reach this upstream (one check
  // that was already running may land).
  const int requests = failing.requests();
  const int elsewhere_requests = elsewhere.requests();
  ASSERT_TRUE(WaitFor([&] { return elsewhere.requests() >= elsewhere_requests + 5; }));
  EXPECT_LE(failing.requests(), requests + 1);
}

TEST_F(ProberTest, DeletedTargetsAndUpstreamsAreForgotten) {
  HttpServer a, b;
  Create(Config("u", Type::kHttp), {a.address(), b.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return b.requests() >= 2; }));
  ASSERT_TRUE(registry_->DeleteTarget("u", b.address()).ok());
  // Allow one check that was already running.
  ASSERT_TRUE(WaitFor([&] { return a.requests() >= 10; }));
  const int b_requests = b.requests();
  ASSERT_TRUE(WaitFor([&] { return a.requests() >= 20; }));
  EXPECT_EQ(b.requests(), b_requests);
  ASSERT_TRUE(registry_->DeleteUpstream("u").ok());
  ASSERT_TRUE(WaitFor([&] { return prober_->Stats().empty(); }));
}

TEST_F(ProberTest, StopIsPromptAndKeepsTheVerdict) {
  HttpServer failing, good;
  failing.set_status(500);
  Create(Config("u", Type::kHttp), {failing.address(), good.address()});
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return !Healthy("u", failing.address()); }));
  const auto start = std::chrono::steady_clock::now();
  prober_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(600));
  const int requests = failing.requests();
  EXPECT_FALSE(Healthy("u", failing.address()));
  // A new prober picks the verdict up and needs successes to undo it.
  failing.set_status(200);
  StartProber();
  ASSERT_TRUE(WaitFor([&] { return Healthy("u", failing.address()); }));
  EXPECT_GE(failing.requests(), requests + 2);
}

}  // namespace
}  // namespace picker::health
