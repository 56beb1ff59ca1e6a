// picker::Client with ClientOptions::route_to_owner against three real
// picker-server replicas sharing a real etcd: picks go straight to each
// upstream's owner (no replica forwards them), the client's owner is the
// servers' owner, and after kill -9 of the owner the client's picks succeed
// again through the next replica. Also a single server, which routing must
// leave as it was.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "picker/client.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"
#include "tests/integration/server_process.h"
#include "tests/replicas/etcd_process.h"

namespace picker {
namespace {

using ::picker::testing::EtcdCluster;
using ::picker::testing::ServerOptions;
using ::picker::testing::ServerProcess;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

template <typename Done>
bool WaitFor(Done done, std::chrono::milliseconds timeout = 10s) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// The sum of a metric's samples whose line starts with `prefix` (a name, or
// a name and the start of its labels); nullopt when /metrics cannot be read.
std::optional<double> MetricSum(ServerProcess& server, const std::string& prefix) {
  std::string error;
  std::optional<std::string> text = server.GetMetrics(&error);
  if (!text) return std::nullopt;
  std::istringstream lines(*text);
  double sum = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

class RouteToOwnerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure()) return;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (replicas_[i]) std::cerr << "--- replica r" << i << " ---\n" << replicas_[i]->Log();
    }
  }

  void StartReplicas(int n) {
    std::string error;
    ASSERT_TRUE(etcd_.Start(1, &error)) << error;
    for (int i = 0; i < n; ++i) {
      ServerOptions options;
      options.extra_args = {"--etcd-endpoints",   etcd_.endpoints(),
                            "--replica-id",       "r" + std::to_string(i),
                            "--member-ttl",       "2s",
                            "--drain-timeout-ms", "1000"};
      replicas_.push_back(ServerProcess::Start(options, &error));
      ASSERT_NE(replicas_.back(), nullptr) << error;
    }
  }

  std::unique_ptr<Client> NewClient(bool use_stream = false) {
    ClientOptions options;
    options.route_to_owner = true;
    options.use_stream = use_stream;
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::Create(replicas_[0]->data_address(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  // An upstream name that the rule gives to a member other than r0 (the
  // client's configured address), created with one target and applied by
  // every live replica.
  std::string CreateUpstreamNotOwnedByR0(const std::vector<Member>& members) {
    std::string name;
    for (int i = 0; name.empty(); ++i) {
      const std::string candidate = "routed-" + std::to_string(i);
      if (OwnerOf(members, candidate)->id != "r0") name = candidate;
    }
    auto admin = v1::Admin::NewStub(replicas_[0]->admin_channel());
    grpc::ClientContext create_context;
    create_context.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::CreateUpstreamRequest create;
    create.mutable_upstream()->set_name(name);
    v1::Upstream upstream;
    EXPECT_TRUE(admin->CreateUpstream(&create_context, create, &upstream).ok());
    grpc::ClientContext put_context;
    put_context.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::PutTargetRequest put;
    put.set_upstream(name);
    put.mutable_target()->set_address("10.0.9.1:80");
    v1::Target target;
    EXPECT_TRUE(admin->PutTarget(&put_context, put, &target).ok());
    EXPECT_TRUE(WaitFor([&] {
      for (auto& replica : replicas_) {
        if (replica && TargetCount(*replica, name) != 1) return false;
      }
      return true;
    }));
    return name;
  }

  static int TargetCount(ServerProcess& replica, const std::string& upstream) {
    auto admin = v1::Admin::NewStub(replica.admin_channel());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::ListTargetsRequest request;
    request.set_upstream(upstream);
    v1::ListTargetsResponse response;
    if (!admin->ListTargets(&context, request, &response).ok()) return -1;
    return response.targets_size();
  }

  // The replica (index) that says it owns the one upstream there is, once
  // the live replicas agree: picker_owned_upstreams is 1 there, 0 elsewhere.
  int ServersOwner() {
    int owner = -1;
    WaitFor([&] {
      owner = -1;
      int owners = 0;
      for (size_t i = 0; i < replicas_.size(); ++i) {
        if (!replicas_[i]) continue;
        std::optional<double> owned = MetricSum(*replicas_[i], "picker_owned_upstreams ");
        if (!owned) return false;
        if (*owned == 1) owner = static_cast<int>(i);
        owners += static_cast<int>(*owned);
      }
      return owners == 1;
    });
    return owner;
  }

  // Calls forwarded by all live replicas (every method).
  double Forwarded() {
    double total = 0;
    for (auto& replica : replicas_) {
      if (replica) total += MetricSum(*replica, "picker_forwarded_total{").value_or(1e9);
    }
    return total;
  }

  EtcdCluster etcd_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
};

TEST_F(RouteToOwnerTest, PicksGoStraightToTheOwner) {
  StartReplicas(3);
  std::unique_ptr<Client> client = NewClient();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(WaitFor([&] { return client->Members().size() == 3; }));
  const std::string upstream = CreateUpstreamNotOwnedByR0(client->Members());
  const int owner = ServersOwner();
  ASSERT_GE(owner, 0) << "the replicas do not agree on one owner";
  EXPECT_EQ(client->OwnerOf(upstream)->id, "r" + std::to_string(owner));
  EXPECT_NE(owner, 0);

  // Unary picks and releases, then picks and batched releases on streams.
  for (int k = 0; k < 10; ++k) {
    absl::StatusOr<Lease> lease = client->Pick({.upstream = upstream});
    ASSERT_TRUE(lease.ok()) << lease.status();
    absl::StatusOr<ReleaseState> released = lease->Release();
    ASSERT_TRUE(released.ok()) << released.status();
    EXPECT_EQ(*released, ReleaseState::kReleased);
  }
  // A release by id goes to the owner too.
  absl::StatusOr<Lease> detached = client->Pick({.upstream = upstream});
  ASSERT_TRUE(detached.ok()) << detached.status();
  absl::StatusOr<ReleaseState> by_id = client->Release(upstream, detached->Detach());
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(*by_id, ReleaseState::kReleased);
  std::unique_ptr<Client> streaming = NewClient(/*use_stream=*/true);
  ASSERT_NE(streaming, nullptr);
  for (int k = 0; k < 10; ++k) {
    absl::StatusOr<Lease> lease = streaming->Pick({.upstream = upstream});
    ASSERT_TRUE(lease.ok()) << lease.status();
  }
  ASSERT_TRUE(streaming->Flush().ok());
  streaming.reset();
  EXPECT_EQ(Forwarded(), 0) << "a replica forwarded a routed call";

  // The same pick through r0 without routing is forwarded: the metric sees it.
  absl::StatusOr<std::unique_ptr<Client>> plain = Client::Create(replicas_[0]->data_address());
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE((*plain)->Pick({.upstream = upstream}).ok());
  EXPECT_EQ(MetricSum(*replicas_[0], "picker_forwarded_total{method=\"Pick\"}"), 1);
}

TEST_F(RouteToOwnerTest, AfterKillNineOfTheOwnerPicksSucceedThroughTheNextReplica) {
  StartReplicas(3);
  std::unique_ptr<Client> client = NewClient();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(WaitFor([&] { return client->Members().size() == 3; }));
  const std::string upstream = CreateUpstreamNotOwnedByR0(client->Members());
  const int owner = ServersOwner();
  ASSERT_GE(owner, 1);
  ASSERT_TRUE(client->Pick({.upstream = upstream}).ok());

  ::kill(replicas_[owner]->pid(), SIGKILL);
  const auto killed = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return client->Pick({.upstream = upstream}).ok(); }, 15s));
  std::cerr << "picks succeed again after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count()
            << " ms\n";
  replicas_[owner].reset();

  // The client has read the new membership, and its owner is the servers'.
  ASSERT_TRUE(WaitFor([&] { return client->Members().size() == 2; }));
  const int new_owner = ServersOwner();
  ASSERT_GE(new_owner, 0);
  EXPECT_EQ(client->OwnerOf(upstream)->id, "r" + std::to_string(new_owner));
  const double forwarded = Forwarded();
  for (int k = 0; k < 10; ++k) {
    absl::StatusOr<Lease> lease = client->Pick({.upstream = upstream});
    ASSERT_TRUE(lease.ok()) << lease.status();
  }
  EXPECT_EQ(Forwarded(), forwarded) << "picks after the refresh were forwarded";
}

// A single server (no etcd) answers one member: routing changes nothing.
TEST(RouteToOwnerSingleServerTest, BehavesAsWithoutRouting) {
  std::string error;
  std::unique_ptr<ServerProcess> server = ServerProcess::Start(ServerOptions{}, &error);
  ASSERT_NE(server, nullptr) << error;
  auto admin = v1::Admin::NewStub(server->admin_channel());
  {
    grpc::ClientContext context;
    v1::CreateUpstreamRequest create;
    create.mutable_upstream()->set_name("solo");
    v1::Upstream upstream;
    ASSERT_TRUE(admin->CreateUpstream(&context, create, &upstream).ok());
  }
  {
    grpc::ClientContext context;
    v1::PutTargetRequest put;
    put.set_upstream("solo");
    put.mutable_target()->set_address("10.0.8.1:80");
    v1::Target target;
    ASSERT_TRUE(admin->PutTarget(&context, put, &target).ok());
  }
  ClientOptions options;
  options.route_to_owner = true;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(server->data_address(), options);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<Lease> lease = (*client)->Pick({.upstream = "solo"});
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->target(), "10.0.8.1:80");
  EXPECT_EQ(*lease->Release(), ReleaseState::kReleased);
  ASSERT_EQ((*client)->Members().size(), 1u);
  EXPECT_EQ((*client)->OwnerOf("solo"), (*client)->Members()[0]);
}

// A server older than ListMembers answers UNIMPLEMENTED: the configured
// address serves everything. (This server implements Pick alone, as a
// server of a release before ListMembers would lack it.)
class PickOnlyService final : public v1::Picker::Service {
  grpc::Status Pick(grpc::ServerContext*, const v1::PickRequest* request,
                    v1::PickResponse* response) override {
    response->set_target("10.0.7.1:80");
    response->set_lease_id(7);
    return grpc::Status::OK;
  }
};

TEST(RouteToOwnerOldServerTest, UnimplementedListMembersFallsBackToTheConfiguredAddress) {
  PickOnlyService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ClientOptions options;
  options.route_to_owner = true;
  absl::StatusOr<std::unique_ptr<Client>> client =
      Client::Create("127.0.0.1:" + std::to_string(port), options);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<Lease> lease = (*client)->Pick({.upstream = "old"});
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->target(), "10.0.7.1:80");
  EXPECT_TRUE((*client)->Members().empty());
  lease->Detach();
  server->Shutdown();
}

}  // namespace
}  // namespace picker
