// picker::Client against the real picker-server: leases released by RAII,
// outcomes feeding passive health, retries excluding tried targets, and
// release batching over PickStream.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "picker/client.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.pb.h"
#include "tests/integration/server_process.h"

#ifndef PICKER_CLI_PATH
#error "PICKER_CLI_PATH must name the picker-cli binary"
#endif

namespace picker {
namespace {

using ::picker::testing::ServerProcess;
using namespace std::chrono_literals;

// Runs a shell command; its exit status and combined output.
int RunCommand(const std::string& command, std::string* output) {
  output->clear();
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ClientTest : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    std::string error;
    server_ = ServerProcess::Start(::picker::testing::ServerOptions{}, &error).release();
    ASSERT_NE(server_, nullptr) << error;
    auto channel =
        grpc::CreateChannel(server_->admin_address(), grpc::InsecureChannelCredentials());
    admin_ = v1::Admin::NewStub(channel).release();
  }
  static void TearDownTestSuite() {
    delete admin_;
    admin_ = nullptr;
    if (server_ != nullptr) {
      const ::picker::testing::ExitInfo exit = server_->Stop();
      EXPECT_TRUE(exit.exited && exit.code == 0) << exit.ToString() << "\n" << server_->Log();
      delete server_;
      server_ = nullptr;
    }
  }

 protected:
  void SetUp() override { ASSERT_NE(server_, nullptr); }

  void TearDown() override {
    if (HasFailure()) std::cerr << "--- picker-server log ---\n" << server_->Log();
  }

  // A fresh upstream name for this test.
  std::string NewName() {
    static int counter = 0;
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) {
      if (!isalnum(static_cast<unsigned char>(c))) c = '-';
    }
    return name + "-" + std::to_string(++counter);
  }

  // Creates `upstream` with `targets` 10.0.0.1:80, 10.0.0.2:80, ...
  std::vector<std::string> CreateUpstream(v1::Upstream upstream, int targets) {
    grpc::ClientContext context;
    v1::CreateUpstreamRequest request;
    *request.mutable_upstream() = upstream;
    v1::Upstream created;
    grpc::Status status = admin_->CreateUpstream(&context, request, &created);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> addresses;
    for (int i = 1; i <= targets; ++i) {
      grpc::ClientContext put_context;
      v1::PutTargetRequest put;
      put.set_upstream(upstream.name());
      put.mutable_target()->set_address("10.0.0." + std::to_string(i) + ":80");
      v1::Target target;
      status = admin_->PutTarget(&put_context, put, &target);
      EXPECT_TRUE(status.ok()) << status.error_message();
      addresses.push_back(target.address());
    }
    return addresses;
  }

  std::vector<std::string> CreateRoundRobin(const std::string& name, int targets) {
    v1::Upstream upstream;
    upstream.set_name(name);
    upstream.mutable_load_balancer()->mutable_round_robin();
    return CreateUpstream(upstream, targets);
  }

  v1::UpstreamHealth Health(const std::string& name) {
    grpc::ClientContext context;
    v1::GetUpstreamHealthRequest request;
    request.set_name(name);
    v1::UpstreamHealth health;
    grpc::Status status = admin_->GetUpstreamHealth(&context, request, &health);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return health;
  }

  // Active requests by target address.
  std::map<std::string, uint64_t> Active(const std::string& name) {
    std::map<std::string, uint64_t> active;
    const v1::UpstreamHealth health = Health(name);
    for (const v1::TargetHealth& t : health.targets()) active[t.address()] = t.active_requests();
    return active;
  }

  uint64_t TotalActive(const std::string& name) {
    uint64_t total = 0;
    for (const auto& [address, n] : Active(name)) total += n;
    return total;
  }

  // Polls until the upstream has no active request (releases in stream mode
  // arrive after the flush interval). True if it got there.
  bool WaitForNoActive(const std::string& name, std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (TotalActive(name) != 0) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  // picker_releases_total{upstream=name,outcome=outcome}, -1 if absent.
  double Releases(const std::string& name, const std::string& outcome) {
    std::string error;
    std::optional<std::string> body = server_->GetMetrics(&error);
    EXPECT_TRUE(body.has_value()) << "cannot scrape " << server_->metrics_address() << ": "
                                  << error;
    if (!body) return -1;
    std::istringstream lines(*body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("picker_releases_total{", 0) != 0) continue;
      if (line.find("upstream=\"" + name + "\"") == std::string::npos) continue;
      if (line.find("outcome=\"" + outcome + "\"") == std::string::npos) continue;
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
    return -1;
  }

  std::unique_ptr<Client> NewClient(ClientOptions options = {}) {
    auto client = Client::Create(server_->data_address(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  static ServerProcess* server_;
  static v1::Admin::Stub* admin_;
};

ServerProcess* ClientTest::server_ = nullptr;
v1::Admin::Stub* ClientTest::admin_ = nullptr;

TEST_F(ClientTest, CreateRejectsBadArguments) {
  EXPECT_EQ(Client::Create("").status().code(), absl::StatusCode::kInvalidArgument);
  ClientOptions options;
  options.max_attempts = 0;
  EXPECT_EQ(Client::Create("127.0.0.1:1", options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.deadline = 0ms;
  EXPECT_EQ(Client::Create("127.0.0.1:1", options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, PickErrorsAreTheServers) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    ClientOptions options;
    options.use_stream = stream;
    auto client = NewClient(options);
    ASSERT_NE(client, nullptr);
    absl::StatusOr<Lease> lease = client->Pick({.upstream = "no-such-upstream"});
    EXPECT_EQ(lease.status().code(), absl::StatusCode::kNotFound) << lease.status();
    // An upstream without targets: UNAVAILABLE. The stream keeps working.
    const std::string name = NewName();
    CreateRoundRobin(name, 0);
    EXPECT_EQ(client->Pick({.upstream = name}).status().code(), absl::StatusCode::kUnavailable);
  }
}

TEST_F(ClientTest, UnreachableServerFailsWithinTheDeadline) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    ClientOptions options;
    options.use_stream = stream;
    options.deadline = 500ms;
    // Port 1 on loopback: nothing listens there.
    auto client = Client::Create("127.0.0.1:1", options);
    ASSERT_TRUE(client.ok());
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Lease> lease = (*client)->Pick({.upstream = "demo"});
    EXPECT_FALSE(lease.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  }
}

TEST_F(ClientTest, LeaseIsReleasedWhenItGoesOutOfScope) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    const std::string name = NewName();
    CreateRoundRobin(name, 2);
    ClientOptions options;
    options.use_stream = stream;
    auto client = NewClient(options);
    ASSERT_NE(client, nullptr);
    {
      absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
      ASSERT_TRUE(lease.ok()) << lease.status();
      EXPECT_TRUE(lease->valid());
      EXPECT_NE(lease->lease_id(), 0u);
      EXPECT_EQ(lease->upstream(), name);
      EXPECT_EQ(Active(name)[lease->target()], 1u);
      EXPECT_EQ(TotalActive(name), 1u);
      // Moving keeps one lease: the moved-from one releases nothing.
      Lease moved = *std::move(lease);
      EXPECT_FALSE(lease->valid());
      EXPECT_TRUE(moved.valid());
      EXPECT_EQ(TotalActive(name), 1u);
    }
    // Stream mode: while the client lives, the flush interval sends the release.
    EXPECT_TRUE(WaitForNoActive(name)) << "active requests stay above 0";
    EXPECT_EQ(Releases(name, "success"), 1);
    EXPECT_EQ(Releases(name, "abandoned"), 0);
  }
}

TEST_F(ClientTest, ExplicitReleaseReportsTheState) {
  const std::string name = NewName();
  CreateRoundRobin(name, 2);
  auto client = NewClient();
  ASSERT_NE(client, nullptr);
  absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
  ASSERT_TRUE(lease.ok()) << lease.status();
  const uint64_t id = lease->lease_id();
  absl::StatusOr<ReleaseState> state = lease->Release();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, ReleaseState::kReleased);
  EXPECT_FALSE(lease->valid());
  EXPECT_EQ(lease->lease_id(), id);
  EXPECT_EQ(*lease->Release(), ReleaseState::kAlreadyReleased);
  EXPECT_EQ(*client->Release(name, id), ReleaseState::kAlreadyReleased);
  EXPECT_EQ(TotalActive(name), 0u);

  // A detached lease stays open until released by id.
  absl::StatusOr<Lease> detached = client->Pick({.upstream = name});
  ASSERT_TRUE(detached.ok());
  const uint64_t detached_id = detached->Detach();
  detached = Lease();
  EXPECT_EQ(TotalActive(name), 1u);
  EXPECT_EQ(*client->Release(name, detached_id, Outcome::kSuccess, 5ms), ReleaseState::kReleased);
  EXPECT_EQ(TotalActive(name), 0u);
  EXPECT_EQ(client->Release(name, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, LatencyIsMeasuredUnlessSet) {
  const std::string name = NewName();
  CreateRoundRobin(name, 1);
  auto client = NewClient();
  absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
  ASSERT_TRUE(lease.ok());
  std::this_thread::sleep_for(20ms);
  EXPECT_GE(lease->latency(), 20ms);
  lease->set_latency(3ms);
  EXPECT_EQ(lease->latency(), 3ms);
}

// A backend's ORCA report handed to the lease reaches the server's
// weighted_round_robin: the busy target's weight falls, in both modes.
TEST_F(ClientTest, LoadReportsArePassedOnWithTheRelease) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    const std::string name = NewName();
    v1::Upstream upstream;
    upstream.set_name(name);
    v1::WeightedRoundRobin* wrr = upstream.mutable_load_balancer()->mutable_weighted_round_robin();
    wrr->mutable_blackout_period();  // 0s: no blackout.
    wrr->mutable_weight_update_period()->set_nanos(100000000);
    const std::vector<std::string> targets = CreateUpstream(upstream, 3);
    auto client = NewClient({.use_stream = stream});
    auto pick_all = [&](int n) {
      std::map<std::string, int> counts;
      for (int i = 0; i < n; ++i) {
        absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
        if (!lease.ok()) {
          ADD_FAILURE() << lease.status();
          break;
        }
        ++counts[lease->target()];
        v1::OrcaLoadReport report;  // The bytes of an endpoint-load-metrics-bin trailer.
        report.set_cpu_utilization(lease->target() == targets[2] ? 0.9 : 0.1);
        report.set_rps_fractional(90);
        EXPECT_TRUE(lease->set_load_report(report.SerializeAsString()).ok());
      }
      EXPECT_TRUE(client->Flush().ok());
      return counts;
    };
    pick_all(300);
    std::this_thread::sleep_for(500ms);  // A few refreshes of the weights.
    EXPECT_NEAR(pick_all(1900)[targets[2]], 100, 10);
  }
}

// ClientOptions' client_service and client_tags go with every pick, unary
// and streamed, and select the upstream's per-client configuration; a
// pick's own PickOptions take precedence.
TEST_F(ClientTest, ClientServiceAndTagsSelectAPerClientConfiguration) {
  const std::string name = NewName();
  v1::Upstream upstream;
  upstream.set_name(name);
  v1::ClientConfig* web = upstream.add_client_configs();
  web->mutable_client()->set_service("web");
  (*web->mutable_client()->mutable_tags())["kuma.io/zone"] = "east";
  web->mutable_load_balancer()
      ->mutable_ring_hash()
      ->add_hash_policies()
      ->mutable_header()
      ->set_name("x-user");
  const std::vector<std::string> targets = CreateUpstream(upstream, 4);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    ClientOptions options;
    options.use_stream = stream;
    options.client_service = "web";
    options.client_tags = {{"kuma.io/zone", "east"}};
    auto client = NewClient(options);
    auto picks = [&](PickOptions pick) {
      std::set<std::string> seen;
      bool hashed = true;
      pick.upstream = name;
      pick.headers = {{"x-user", "42"}};
      for (int i = 0; i < 8; ++i) {
        absl::StatusOr<Lease> lease = client->Pick(pick);
        if (!lease.ok()) {
          ADD_FAILURE() << lease.status();
          break;
        }
        seen.insert(lease->target());
        hashed = hashed && lease->hash().has_value();
      }
      return std::pair{seen.size(), hashed};
    };
    EXPECT_EQ(picks({}), std::pair(size_t{1}, true));
    // Tags come from client_zone too; a pick's service replaces the client's.
    EXPECT_EQ(picks({.client_zone = "east"}), std::pair(size_t{1}, true));
    EXPECT_EQ(picks({.client_tags = {{"kuma.io/zone", "west"}}}), std::pair(size_t{4}, false));
    EXPECT_EQ(picks({.client_service = "api"}), std::pair(size_t{4}, false));
  }
}

TEST_F(ClientTest, ALoadReportThatDoesNotParseIsRefused) {
  const std::string name = NewName();
  CreateRoundRobin(name, 1);
  auto client = NewClient();
  absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->set_load_report("\xff\xff\xff").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, FailureOutcomesEjectTheTarget) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    const std::string name = NewName();
    v1::Upstream upstream;
    upstream.set_name(name);
    upstream.mutable_load_balancer()->mutable_round_robin();
    auto* passive = upstream.mutable_health_checks()->mutable_passive();
    passive->set_consecutive_failures(3);
    passive->mutable_base_ejection_time()->set_seconds(60);
    passive->set_max_ejection_percent(50);
    std::vector<std::string> targets = CreateUpstream(upstream, 2);
    const std::string bad = targets[0];
    ClientOptions options;
    options.use_stream = stream;
    auto client = NewClient(options);
    ASSERT_NE(client, nullptr);

    int failures = 0;
    for (int i = 0; i < 20 && failures < 3; ++i) {
      absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
      ASSERT_TRUE(lease.ok()) << lease.status();
      if (lease->target() == bad) {
        lease->set_outcome(i % 2 == 0 ? Outcome::kFailure : Outcome::kTimeout);
        ++failures;
      }
    }
    ASSERT_EQ(failures, 3);
    ASSERT_TRUE(client->Flush().ok());
    // The outcomes reach the server (at once, or with the next flush).
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    v1::TargetHealth bad_health;
    do {
      const v1::UpstreamHealth health = Health(name);
      for (const v1::TargetHealth& t : health.targets()) {
        if (t.address() == bad) bad_health = t;
      }
      if (!bad_health.healthy() && !bad_health.address().empty()) break;
      std::this_thread::sleep_for(10ms);
    } while (std::chrono::steady_clock::now() < deadline);
    EXPECT_FALSE(bad_health.healthy()) << bad_health.DebugString();
    EXPECT_EQ(bad_health.ejections(), 1u);
    EXPECT_TRUE(std::find(bad_health.reasons().begin(), bad_health.reasons().end(),
                          v1::TargetHealth::PASSIVE) != bad_health.reasons().end())
        << bad_health.DebugString();
    // Picks now avoid the ejected target.
    for (int i = 0; i < 6; ++i) {
      absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
      ASSERT_TRUE(lease.ok()) << lease.status();
      EXPECT_EQ(lease->target(), targets[1]);
    }
  }
}

// A consistent-hash upstream sends one hash to one target: without exclude,
// every retry would land on the same target. (For hash strategies exclusion
// is best effort, as Envoy's: the server walks the ring a bounded number of
// steps. With 8 targets and this fixed hash it escapes every tried target;
// the server is deterministic, so this holds on every run.)
TEST_F(ClientTest, RetryExcludesTriedTargets) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    const std::string name = NewName();
    v1::Upstream upstream;
    upstream.set_name(name);
    upstream.mutable_load_balancer()->mutable_ring_hash();
    upstream.mutable_health_checks()->mutable_passive()->set_consecutive_failures(0);
    CreateUpstream(upstream, 8);
    ClientOptions options;
    options.use_stream = stream;
    options.max_attempts = 3;
    auto client = NewClient(options);
    ASSERT_NE(client, nullptr);
    const PickOptions pick{.upstream = name, .hash = 12345};

    // Control: the same hash always picks the same target.
    std::set<std::string> plain;
    for (int i = 0; i < 5; ++i) {
      absl::StatusOr<Lease> lease = client->Pick(pick);
      ASSERT_TRUE(lease.ok()) << lease.status();
      plain.insert(lease->target());
    }
    EXPECT_EQ(plain.size(), 1u);

    // Every attempt fails: three attempts, on three different targets.
    std::vector<std::string> seen;
    absl::StatusOr<RetryResult> result = client->PickWithRetry(pick, [&](const Lease& lease) {
      seen.push_back(lease.target());
      return Outcome::kFailure;
    });
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->attempts, 3);
    EXPECT_EQ(result->outcome, Outcome::kFailure);
    EXPECT_EQ(result->tried, seen);
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 3u);
    EXPECT_EQ(seen[0], *plain.begin());

    // The second attempt succeeds: two attempts, and they stop there.
    seen.clear();
    result = client->PickWithRetry(pick, [&](const Lease& lease) {
      seen.push_back(lease.target());
      return seen.size() == 1 ? Outcome::kFailure : Outcome::kSuccess;
    });
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->attempts, 2);
    EXPECT_EQ(result->outcome, Outcome::kSuccess);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_NE(seen[0], seen[1]);

    // The Retry object: the same, step by step, and a limit.
    Retry retry = client->NewRetry(pick);
    std::set<std::string> stepped;
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<Lease> lease = retry.Next();
      ASSERT_TRUE(lease.ok()) << lease.status();
      lease->set_outcome(Outcome::kFailure);
      stepped.insert(lease->target());
    }
    EXPECT_EQ(stepped.size(), 3u);
    EXPECT_EQ(retry.Next().status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(WaitForNoActive(name));
  }
}

TEST_F(ClientTest, RetryStopsOnPickError) {
  auto client = NewClient();
  absl::StatusOr<RetryResult> result = client->PickWithRetry(
      {.upstream = "no-such-upstream"}, [](const Lease&) { return Outcome::kSuccess; });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, StreamBatchesReleasesFromManyThreads) {
  const std::string name = NewName();
  CreateRoundRobin(name, 3);
  constexpr int kThreads = 4;
  constexpr int kPicksPerThread = 150;
  {
    ClientOptions options;
    options.use_stream = true;
    // A long interval: releases ride along with picks, and the rest go when
    // the client is destroyed.
    options.release_flush_interval = 10s;
    auto client = NewClient(options);
    ASSERT_NE(client, nullptr);
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<Lease> held;
        for (int i = 0; i < kPicksPerThread; ++i) {
          absl::StatusOr<Lease> lease =
              client->Pick({.upstream = name, .headers = {{"x-thread", std::to_string(t)}}});
          if (!lease.ok()) {
            ++errors;
            continue;
          }
          if (i % 3 == 2) lease->set_outcome(Outcome::kFailure);
          held.push_back(*std::move(lease));
          // Hold a few at a time; the oldest are released (queued) as we go.
          if (held.size() > 4) held.erase(held.begin());
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(errors.load(), 0);
    // The last releases are still queued (10 s interval): the server counts
    // them active until the client goes.
    EXPECT_GT(TotalActive(name), 0u);
  }
  // Destroying the client flushed the queue before closing the stream: every
  // release arrived with its outcome, none was abandoned.
  EXPECT_EQ(TotalActive(name), 0u);
  const double success = Releases(name, "success");
  const double failure = Releases(name, "failure");
  EXPECT_EQ(success + failure, kThreads * kPicksPerThread);
  EXPECT_EQ(failure, kThreads * (kPicksPerThread / 3));
  EXPECT_EQ(Releases(name, "abandoned"), 0);
}

TEST_F(ClientTest, StreamFlushIntervalSendsReleasesWithoutPicks) {
  const std::string name = NewName();
  CreateRoundRobin(name, 2);
  ClientOptions options;
  options.use_stream = true;
  options.release_flush_interval = 20ms;
  auto client = NewClient(options);
  ASSERT_NE(client, nullptr);
  std::vector<Lease> leases;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<Lease> lease = client->Pick({.upstream = name});
    ASSERT_TRUE(lease.ok()) << lease.status();
    leases.push_back(*std::move(lease));
  }
  EXPECT_EQ(TotalActive(name), 10u);
  for (Lease& lease : leases) EXPECT_EQ(*lease.Release(), ReleaseState::kQueued);
  // No pick follows: the flusher sends them.
  EXPECT_TRUE(WaitForNoActive(name, 2s));
  EXPECT_EQ(Releases(name, "success"), 10);
}

TEST_F(ClientTest, LeaseMayOutliveItsClient) {
  const std::string name = NewName();
  CreateRoundRobin(name, 2);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "unary");
    Lease lease;
    {
      ClientOptions options;
      options.use_stream = stream;
      auto client = NewClient(options);
      absl::StatusOr<Lease> picked = client->Pick({.upstream = name});
      ASSERT_TRUE(picked.ok());
      lease = *std::move(picked);
    }
    // Released with a unary call. Stream mode: the stream's end also releases
    // it on the server (abandoned), whichever comes first.
    absl::StatusOr<ReleaseState> state = lease.Release();
    ASSERT_TRUE(state.ok()) << state.status();
    if (stream) {
      EXPECT_TRUE(*state == ReleaseState::kAlreadyReleased || *state == ReleaseState::kReleased)
          << ReleaseStateName(*state);
    } else {
      EXPECT_EQ(*state, ReleaseState::kReleased);
    }
    EXPECT_TRUE(WaitForNoActive(name));
  }
}

TEST_F(ClientTest, AttributesReachTheHashPolicies) {
  const std::string name = NewName();
  v1::Upstream upstream;
  upstream.set_name(name);
  upstream.mutable_load_balancer()
      ->mutable_ring_hash()
      ->add_hash_policies()
      ->mutable_header()
      ->set_name("x-user");
  CreateUpstream(upstream, 4);
  auto client = NewClient();
  std::set<std::string> for_one_user;
  std::set<uint64_t> hashes;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Lease> lease = client->Pick({.upstream = name, .headers = {{"x-user", "42"}}});
    ASSERT_TRUE(lease.ok()) << lease.status();
    for_one_user.insert(lease->target());
    ASSERT_TRUE(lease->hash().has_value());
    hashes.insert(*lease->hash());
  }
  EXPECT_EQ(for_one_user.size(), 1u);
  EXPECT_EQ(hashes.size(), 1u);
  absl::StatusOr<Lease> other = client->Pick({.upstream = name, .headers = {{"x-user", "43"}}});
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other->hash(), *hashes.begin());
}

TEST_F(ClientTest, CliPicksAndReleases) {
  const std::string name = NewName();
  std::vector<std::string> targets = CreateRoundRobin(name, 2);
  const std::string cli = std::string(PICKER_CLI_PATH) + " ";
  const std::string addr = " --addr " + server_->data_address() + " --upstream " + name;
  std::string out;
  EXPECT_EQ(RunCommand(cli + "pick" + addr + " --header x-user=1 --release", &out), 0) << out;
  EXPECT_TRUE(out.find("target=" + targets[0] + " ") != std::string::npos ||
              out.find("target=" + targets[1] + " ") != std::string::npos)
      << out;
  EXPECT_NE(out.find("state=RELEASED"), std::string::npos) << out;
  EXPECT_EQ(TotalActive(name), 0u);

  // Without --release the lease stays open; release it by id.
  ASSERT_EQ(RunCommand(cli + "pick" + addr, &out), 0) << out;
  EXPECT_EQ(TotalActive(name), 1u);
  const auto at = out.find("lease_id=");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string id = out.substr(at + 9, out.find(' ', at) - at - 9);
  ASSERT_EQ(RunCommand(cli + "release" + addr + " --lease-id " + id + " --outcome failure", &out),
            0)
      << out;
  EXPECT_NE(out.find("state=RELEASED"), std::string::npos) << out;
  EXPECT_EQ(TotalActive(name), 0u);

  EXPECT_EQ(RunCommand(cli + "pick --stream --count 5 --release" + addr, &out), 0) << out;
  EXPECT_TRUE(WaitForNoActive(name));
  EXPECT_EQ(
      RunCommand(cli + "pick --addr " + server_->data_address() + " --upstream no-such-upstream",
                 &out),
      5 * 8)
      << "NOT_FOUND (5) times 8: " << out;
  EXPECT_NE(out.find("NOT_FOUND"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(cli + "pick --addr " + server_->data_address(), &out), 2) << out;
  // A lease picked on a stream ends with the stream: --stream needs --release.
  EXPECT_EQ(RunCommand(cli + "pick --stream" + addr, &out), 2) << out;
  EXPECT_NE(out.find("--release"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(cli + "pick" + addr + " --outcome maybe", &out), 2) << out;
}

}  // namespace
}  // namespace picker
