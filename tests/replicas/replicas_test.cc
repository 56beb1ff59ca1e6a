// Several picker-server replicas sharing a real etcd (Debian's etcd-server),
// all on loopback: configuration written through any replica is served by
// all, each upstream is served by one owner (so counts are everyone's),
// failover after kill -9 and hand-off on SIGTERM, etcd trouble, and
// concurrent writes through different replicas.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"
#include "tests/health/test_servers.h"
#include "tests/integration/server_process.h"
#include "tests/replicas/etcd_process.h"

namespace picker::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Until `done()` or `timeout`.
template <typename Done>
bool WaitFor(Done done, milliseconds timeout = milliseconds(10000)) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return done();
}

void Deadline(grpc::ClientContext& context, milliseconds within = milliseconds(5000)) {
  context.set_deadline(std::chrono::system_clock::now() + within);
}

class ReplicasTest : public ::testing::Test {
 protected:
  void StartEtcd(int members = 1) {
    std::string error;
    ASSERT_TRUE(etcd_.Start(members, &error)) << error;
  }

  // Starts replica `id` on this test's etcd.
  std::unique_ptr<ServerProcess> StartReplica(const std::string& id,
                                              const std::vector<std::string>& more = {}) {
    ServerOptions options;
    options.extra_args = {"--etcd-endpoints",   etcd_.endpoints(),
                          "--replica-id",       id,
                          "--member-ttl",       "2s",
                          "--drain-timeout-ms", "1000",
                          "--etcd-prefix",      "/t/"};
    options.extra_args.insert(options.extra_args.end(), more.begin(), more.end());
    std::string error;
    std::unique_ptr<ServerProcess> replica = ServerProcess::Start(options, &error);
    EXPECT_NE(replica, nullptr) << error;
    return replica;
  }

  void StartReplicas(int n) {
    for (int i = 0; i < n; ++i) {
      replicas_.push_back(StartReplica("r" + std::to_string(i)));
      ASSERT_NE(replicas_.back(), nullptr);
    }
    ASSERT_TRUE(WaitFor([&] { return Members(0).size() == static_cast<size_t>(n); }));
  }

  std::vector<std::string> Members(int i) {
    auto stub = v1::Picker::NewStub(replicas_[i]->data_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::ListMembersResponse response;
    std::vector<std::string> ids;
    if (!stub->ListMembers(&context, v1::ListMembersRequest(), &response).ok()) return ids;
    for (const v1::Member& m : response.members()) ids.push_back(m.id());
    return ids;
  }

  grpc::Status Create(int i, const std::string& name, const std::string& lb = "least_request") {
    auto stub = v1::Admin::NewStub(replicas_[i]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::CreateUpstreamRequest request;
    request.mutable_upstream()->set_name(name);
    if (lb == "least_request")
      request.mutable_upstream()->mutable_load_balancer()->mutable_least_request();
    if (lb == "ring_hash") request.mutable_upstream()->mutable_load_balancer()->mutable_ring_hash();
    if (lb == "maglev") request.mutable_upstream()->mutable_load_balancer()->mutable_maglev();
    v1::Upstream response;
    return stub->CreateUpstream(&context, request, &response);
  }

  grpc::Status Put(int i, const std::string& upstream, const std::string& address) {
    auto stub = v1::Admin::NewStub(replicas_[i]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::PutTargetRequest request;
    request.set_upstream(upstream);
    request.mutable_target()->set_address(address);
    v1::Target response;
    return stub->PutTarget(&context, request, &response);
  }

  // The addresses replica `i` lists for `upstream`, sorted; empty on error.
  std::vector<std::string> TargetAddresses(int i, const std::string& upstream) {
    auto stub = v1::Admin::NewStub(replicas_[i]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::ListTargetsRequest request;
    request.set_upstream(upstream);
    v1::ListTargetsResponse response;
    std::vector<std::string> addresses;
    if (!stub->ListTargets(&context, request, &response).ok()) return addresses;
    for (const v1::Target& target : response.targets()) addresses.push_back(target.address());
    std::sort(addresses.begin(), addresses.end());
    return addresses;
  }

  size_t TargetCount(int i, const std::string& upstream) {
    return TargetAddresses(i, upstream).size();
  }

  struct Picked {
    grpc::Status status;
    v1::PickResponse pick;
  };
  Picked Pick(int i, const std::string& upstream, std::optional<uint64_t> hash = std::nullopt) {
    auto stub = v1::Picker::NewStub(replicas_[i]->data_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::PickRequest request;
    request.set_upstream(upstream);
    if (hash) request.set_hash(*hash);
    Picked out;
    out.status = stub->Pick(&context, request, &out.pick);
    return out;
  }

  grpc::Status Release(int i, const std::string& upstream, uint64_t lease,
                       v1::ReleaseResponse* response) {
    auto stub = v1::Picker::NewStub(replicas_[i]->data_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::ReleaseRequest request;
    request.set_upstream(upstream);
    request.set_lease_id(lease);
    return stub->Release(&context, request, response);
  }

  // The targets replica `i`'s GetUpstreamHealth says are unhealthy.
  std::set<std::string> Unhealthy(int i, const std::string& upstream) {
    auto stub = v1::Admin::NewStub(replicas_[i]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::GetUpstreamHealthRequest request;
    request.set_name(upstream);
    v1::UpstreamHealth health;
    std::set<std::string> out;
    if (!stub->GetUpstreamHealth(&context, request, &health).ok()) return {"(error)"};
    for (const v1::TargetHealth& t : health.targets()) {
      if (!t.healthy()) out.insert(t.address());
    }
    return out;
  }

  grpc::Status ReleaseWith(int i, const std::string& upstream, uint64_t lease, bool failure) {
    auto stub = v1::Picker::NewStub(replicas_[i]->data_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::ReleaseRequest request;
    request.set_upstream(upstream);
    request.set_lease_id(lease);
    request.set_outcome(failure ? v1::ReleaseRequest::FAILURE : v1::ReleaseRequest::SUCCESS);
    v1::ReleaseResponse response;
    return stub->Release(&context, request, &response);
  }

  // What `command` prints on its standard output.
  static std::string Output(const std::string& command) {
    std::string out;
    if (FILE* pipe = ::popen(command.c_str(), "r")) {
      char buffer[4096];
      size_t n;
      while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
      ::pclose(pipe);
    }
    return out;
  }

  // The value of `key` in this test's etcd, read with etcdctl.
  std::string EtcdGet(const std::string& key) {
    return Output("ETCDCTL_API=3 etcdctl --endpoints=" + etcd_.endpoints() +
                  " get --print-value-only " + key);
  }

  // The mod revision of `key` (etcdctl's JSON), empty when absent.
  std::string EtcdModRevision(const std::string& key) {
    const std::string json =
        Output("ETCDCTL_API=3 etcdctl --endpoints=" + etcd_.endpoints() + " get -w json " + key);
    const size_t at = json.find("\"mod_revision\":");
    if (at == std::string::npos) return "";
    const size_t from = at + std::string("\"mod_revision\":").size();
    return json.substr(from, json.find_first_of(",}", from) - from);
  }

  // picker-cli's standard output and error.
  static std::string RunCli(const std::vector<std::string>& args) {
    std::string command = PICKER_CLI_PATH;
    for (const std::string& a : args) command += " '" + a + "'";
    return Output(command + " 2>&1");
  }

  // Active requests of `upstream` as replica `i`'s GetUpstreamHealth has them.
  uint64_t Active(int i, const std::string& upstream) {
    auto stub = v1::Admin::NewStub(replicas_[i]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::GetUpstreamHealthRequest request;
    request.set_name(upstream);
    v1::UpstreamHealth health;
    if (!stub->GetUpstreamHealth(&context, request, &health).ok()) return ~uint64_t{0};
    uint64_t total = 0;
    for (const v1::TargetHealth& t : health.targets()) total += t.active_requests();
    return total;
  }

  // The replica (index) a pick's lease came from: leases begin with the
  // boot of the replica that issued them, and each replica logs its boot.
  int Issuer(uint64_t lease) {
    const std::string boot = "(boot " + std::to_string(lease >> 40) + ",";
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (replicas_[i] && replicas_[i]->Log().find(boot) != std::string::npos) return i;
    }
    return -1;
  }

  EtcdCluster etcd_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
};

TEST_F(ReplicasTest, AWriteThroughEachReplicaIsServedByAll) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "shared").ok());
  for (int i = 0; i < 3; ++i) {
    const grpc::Status put = Put(i, "shared", "10.0.0." + std::to_string(i + 1) + ":80");
    ASSERT_TRUE(put.ok()) << put.error_message();
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return TargetCount(i, "shared") == 3; })) << "replica " << i;
  }
}

// Each upstream's picks are served by one owner, whichever replica the
// client asks: LeastRequest sees the leases of all of them.
TEST_F(ReplicasTest, LeasesTakenThroughEveryReplicaCountOnTheOwner) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "lr").ok());
  for (int t = 1; t <= 3; ++t)
    ASSERT_TRUE(Put(0, "lr", "10.0.1." + std::to_string(t) + ":80").ok());
  ASSERT_TRUE(WaitFor([&] { return TargetCount(2, "lr") == 3; }));
  std::map<std::string, int> per_target;
  std::set<int> issuers;
  for (int k = 0; k < 30; ++k) {
    Picked picked = Pick(k % 3, "lr");
    ASSERT_TRUE(picked.status.ok()) << picked.status.error_message();
    ++per_target[picked.pick.target()];
    issuers.insert(Issuer(picked.pick.lease_id()));
  }
  EXPECT_EQ(issuers.size(), 1u) << "one replica issued every lease";
  // The least loaded of two random targets: with every count in one place
  // the leases spread about evenly (P2C samples with replacement, so not
  // exactly 10 each).
  for (const auto& [target, n] : per_target) EXPECT_NEAR(n, 10, 3) << target;
  // The owner holds all 30, whichever replica is asked.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Active(i, "lr"), 30u) << "asked r" << i;
}

// A PickStream opened on a replica that does not own the upstream: each
// pick is served (and counted) by the owner, and releases riding on the
// stream reach it too.
TEST_F(ReplicasTest, AStreamThroughAnotherReplicaIsServedByTheOwner) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "s").ok());
  for (int t = 1; t <= 2; ++t) ASSERT_TRUE(Put(0, "s", "10.0.3." + std::to_string(t) + ":80").ok());
  ASSERT_TRUE(WaitFor([&] { return TargetCount(1, "s") == 2 && TargetCount(2, "s") == 2; }));
  Picked first = Pick(0, "s");
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  const int owner = Issuer(first.pick.lease_id());
  ASSERT_GE(owner, 0);
  v1::ReleaseResponse released;
  ASSERT_TRUE(Release(0, "s", first.pick.lease_id(), &released).ok());
  const int other = (owner + 1) % 3;

  auto stub = v1::Picker::NewStub(replicas_[other]->data_channel());
  grpc::ClientContext context;
  Deadline(context, milliseconds(20000));
  auto stream = stub->PickStream(&context);
  std::vector<uint64_t> leases;
  for (uint64_t id = 1; id <= 5; ++id) {
    v1::PickStreamRequest request;
    request.set_request_id(id);
    request.mutable_pick()->set_upstream("s");
    ASSERT_TRUE(stream->Write(request));
    v1::PickStreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_EQ(response.code(), 0) << response.message();
    EXPECT_EQ(response.request_id(), id);
    EXPECT_FALSE(response.pick().target().empty());
    EXPECT_EQ(Issuer(response.pick().lease_id()), owner) << "the owner issued the lease";
    leases.push_back(response.pick().lease_id());
  }
  EXPECT_EQ(Active(owner, "s"), 5u);
  v1::PickStreamRequest releases;
  for (uint64_t lease : leases) {
    v1::ReleaseRequest* release = releases.add_releases();
    release->set_upstream("s");
    release->set_lease_id(lease);
  }
  ASSERT_TRUE(stream->Write(releases));
  stream->WritesDone();
  v1::PickStreamResponse ignored;
  while (stream->Read(&ignored)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(WaitFor([&] { return Active(owner, "s") == 0; }));
}

// GetUpstreamHealth through any replica answers the owner's counts.
TEST_F(ReplicasTest, UpstreamHealthThroughAnyReplicaIsTheOwners) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "h").ok());
  ASSERT_TRUE(Put(0, "h", "10.0.4.1:80").ok());
  ASSERT_TRUE(WaitFor([&] { return TargetCount(1, "h") == 1 && TargetCount(2, "h") == 1; }));
  for (int k = 0; k < 6; ++k) ASSERT_TRUE(Pick(k % 3, "h").status.ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Active(i, "h"), 6u) << "asked r" << i;
}

// ExplainPick through any replica is the owner's: its round-robin cursor
// is the one the next pick meets (another replica's has never moved).
TEST_F(ReplicasTest, ExplainPickThroughAnyReplicaIsTheOwners) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "x", "round_robin").ok());
  for (int t = 1; t <= 5; ++t) {
    ASSERT_TRUE(WaitFor([&] { return Put(0, "x", "10.0.9." + std::to_string(t) + ":80").ok(); }));
  }
  ASSERT_TRUE(WaitFor([&] { return TargetCount(1, "x") == 5 && TargetCount(2, "x") == 5; }));
  for (int k = 0; k < 7; ++k) ASSERT_TRUE(Pick(0, "x").status.ok());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3; ++i) {
      auto stub = v1::Admin::NewStub(replicas_[i]->admin_channel());
      grpc::ClientContext context;
      Deadline(context);
      v1::PickRequest request;
      request.set_upstream("x");
      v1::PickExplanation why;
      ASSERT_TRUE(stub->ExplainPick(&context, request, &why).ok()) << "r" << i;
      ASSERT_TRUE(why.deterministic());
      Picked next = Pick(i, "x");
      ASSERT_TRUE(next.status.ok());
      EXPECT_EQ(next.pick.target(), why.target()) << "explained through r" << i;
    }
  }
}

// Upstreams of one configuration, owned by different replicas, send the
// same keys to the same targets: rings and tables are built alike.
TEST_F(ReplicasTest, RingsAndTablesAreBuiltAlikeOnEveryReplica) {
  StartEtcd();
  StartReplicas(3);
  std::vector<std::unique_ptr<v1::Picker::Stub>> stubs;
  for (const auto& replica : replicas_)
    stubs.push_back(v1::Picker::NewStub(replica->data_channel()));
  for (const char* lb : {"ring_hash", "maglev"}) {
    std::vector<std::string> names;
    for (int u = 0; u < 4; ++u) {
      const std::string name = std::string(lb) + std::to_string(u);
      names.push_back(name);
      ASSERT_TRUE(Create(0, name, lb).ok());
      for (int t = 1; t <= 5; ++t)
        ASSERT_TRUE(Put(0, name, "10.0.2." + std::to_string(t) + ":80").ok());
    }
    ASSERT_TRUE(WaitFor([&] { return TargetCount(2, names.back()) == 5; }));
    // Each key through a different replica each time; hashing ignores
    // active requests, so the leases are left to expire.
    std::set<int> owners;
    for (uint64_t key = 0; key < 1000; ++key) {
      std::set<std::string> targets;
      for (size_t u = 0; u < names.size(); ++u) {
        grpc::ClientContext context;
        Deadline(context);
        v1::PickRequest request;
        request.set_upstream(names[u]);
        request.set_hash(key * 0x9e3779b97f4a7c15ULL);
        v1::PickResponse pick;
        const grpc::Status status = stubs[(key + u) % 3]->Pick(&context, request, &pick);
        ASSERT_TRUE(status.ok()) << status.error_message();
        targets.insert(pick.target());
        if (key == 0) owners.insert(Issuer(pick.lease_id()));
      }
      ASSERT_EQ(targets.size(), 1u) << lb << " key " << key;
    }
    EXPECT_GT(owners.size(), 1u) << "the upstreams of " << lb << " have different owners";
  }
}

// picker_health_checks_total{upstream, result="success"} on replica `i`.
double SuccessfulChecks(ServerProcess& replica, const std::string& upstream) {
  std::string error;
  std::optional<std::string> metrics = replica.GetMetrics(&error);
  if (!metrics) return -1;
  const std::string series =
      "picker_health_checks_total{upstream=\"" + upstream + "\",result=\"success\"} ";
  const size_t at = metrics->find(series);
  if (at == std::string::npos) return 0;
  return std::stod(metrics->substr(at + series.size()));
}

TEST_F(ReplicasTest, OnlyTheOwnerRunsActiveChecks) {
  StartEtcd();
  StartReplicas(3);
  for (int i = 1; i < 3; ++i) ASSERT_TRUE(WaitFor([&] { return Members(i).size() == 3; }));
  health::testing::TcpListener target;
  auto stub = v1::Admin::NewStub(replicas_[0]->admin_channel());
  grpc::ClientContext context;
  Deadline(context);
  v1::CreateUpstreamRequest request;
  request.mutable_upstream()->set_name("checked");
  v1::HealthChecks::Active* active =
      request.mutable_upstream()->mutable_health_checks()->mutable_active();
  active->set_type(v1::HealthChecks::Active::TCP);
  active->mutable_interval()->set_nanos(100000000);
  v1::Upstream created;
  ASSERT_TRUE(stub->CreateUpstream(&context, request, &created).ok());
  ASSERT_TRUE(Put(1, "checked", target.address()).ok());
  ASSERT_TRUE(WaitFor([&] { return target.accepts() >= 10; }));
  const int owner = Issuer(Pick(2, "checked").pick.lease_id());
  ASSERT_GE(owner, 0);
  for (int i = 0; i < 3; ++i) {
    if (i == owner) {
      EXPECT_GE(SuccessfulChecks(*replicas_[i], "checked"), 1) << "the owner r" << i;
    } else {
      EXPECT_EQ(SuccessfulChecks(*replicas_[i], "checked"), 0) << "r" << i << " is not the owner";
    }
  }
}

TEST_F(ReplicasTest, KillNineOfAnOwnerFailsOverWithinTheTtl) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "fo").ok());
  // Replica 1 applies the create from its watch, a few milliseconds later.
  ASSERT_TRUE(WaitFor([&] { return Put(1, "fo", "10.0.3.1:80").ok(); }));
  ASSERT_TRUE(WaitFor([&] { return TargetCount(2, "fo") == 1; }));
  Picked first = Pick(0, "fo");
  ASSERT_TRUE(first.status.ok());
  const int owner = Issuer(first.pick.lease_id());
  ASSERT_GE(owner, 0);
  const int other = (owner + 1) % 3;
  ::kill(replicas_[owner]->pid(), SIGKILL);
  const auto killed = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return Pick(other, "fo").status.ok(); }, milliseconds(8000)));
  const auto failover = std::chrono::duration_cast<milliseconds>(Clock::now() - killed);
  std::cerr << "failover after kill -9: " << failover.count() << " ms\n";
  EXPECT_LT(failover.count(), 2000 + 1000 + 1500) << "about the TTL (2 s) plus a second";
  // A lease of the replica that is gone has ended with it.
  v1::ReleaseResponse released;
  ASSERT_TRUE(Release(other, "fo", first.pick.lease_id(), &released).ok());
  EXPECT_EQ(released.state(), v1::ReleaseResponse::EXPIRED);
  // Every acknowledged write is still there, and the two left agree on the owner.
  EXPECT_EQ(TargetCount(other, "fo"), 1u);
  const int third = 3 - owner - other;
  ASSERT_TRUE(
      WaitFor([&] { return Members(other) == Members(third) && Members(other).size() == 2; }));
  EXPECT_EQ(Issuer(Pick(other, "fo").pick.lease_id()), Issuer(Pick(third, "fo").pick.lease_id()));
}

TEST_F(ReplicasTest, SigtermHandsOwnershipOverAtOnce) {
  StartEtcd();
  // A member TTL of 20 s: a replica that did not leave would stay a member
  // that long. (A 2 s TTL made this a race against a loaded machine.)
  for (int i = 0; i < 3; ++i) {
    replicas_.push_back(StartReplica("r" + std::to_string(i), {"--member-ttl", "20s"}));
    ASSERT_NE(replicas_.back(), nullptr);
  }
  ASSERT_TRUE(WaitFor([&] { return Members(0).size() == 3; }));
  replicas_[1]->Stop();
  // Well before the TTL: the replica left before it drained.
  EXPECT_TRUE(WaitFor([&] { return Members(0).size() == 2; }, milliseconds(10000)));
}

TEST_F(ReplicasTest, ConcurrentPutTargetsThroughDifferentReplicasAreAllKept) {
  StartEtcd();
  StartReplicas(3);
  ASSERT_TRUE(Create(0, "busy").ok());
  ASSERT_TRUE(WaitFor(
      [&] { return Pick(2, "busy").status.error_code() == grpc::StatusCode::UNAVAILABLE; }));
  std::vector<std::thread> writers;
  for (int i = 0; i < 3; ++i) {
    writers.emplace_back([&, i] {
      for (int t = 0; t < 10; ++t) {
        const grpc::Status s =
            Put(i, "busy", "10." + std::to_string(i) + ".0." + std::to_string(t + 1) + ":80");
        EXPECT_TRUE(s.ok()) << s.error_message();
      }
    });
  }
  for (std::thread& w : writers) w.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return TargetCount(i, "busy") == 30; })) << TargetCount(i, "busy");
  }
}

// A write through another replica right after a create finds the upstream:
// it asks etcd and waits for its watch, instead of answering NOT_FOUND.
TEST_F(ReplicasTest, AWriteRightAfterACreateThroughAnotherReplicaFindsTheUpstream) {
  StartEtcd();
  StartReplicas(2);
  for (int i = 0; i < 40; ++i) {
    const std::string name = "fresh" + std::to_string(i);
    // r1 stopped while the create commits: its watch and the write then
    // reach it at once, and the write may well come first.
    ::kill(replicas_[1]->pid(), SIGSTOP);
    const grpc::Status created = Create(0, name);
    ::kill(replicas_[1]->pid(), SIGCONT);
    ASSERT_TRUE(created.ok()) << created.error_message();
    const grpc::Status put = Put(1, name, "10.0.8.1:80");
    EXPECT_TRUE(put.ok()) << name << ": " << put.error_message();
  }
  EXPECT_EQ(Put(1, "never-created", "10.0.8.1:80").error_code(), grpc::StatusCode::NOT_FOUND);
}

// A write over etcd's request limit (1.5 MiB by default) is refused as
// RESOURCE_EXHAUSTED naming the etcd setting, and changes nothing.
TEST_F(ReplicasTest, AWriteOverEtcdsLimitNamesTheSetting) {
  StartEtcd();
  StartReplicas(1);
  ASSERT_TRUE(Create(0, "big").ok());
  ASSERT_TRUE(Put(0, "big", "10.0.10.1:80").ok());
  auto stub = v1::Admin::NewStub(replicas_[0]->admin_channel());
  grpc::ClientContext context;
  Deadline(context, milliseconds(60000));
  v1::ReplaceTargetsRequest request;
  request.set_upstream("big");
  for (int i = 0; i < 100000; ++i) {  // About 2 MiB stored.
    request.add_targets()->set_address("10.0.11." + std::to_string(1 + i / 50000) + ":" +
                                       std::to_string(1 + i % 50000));
  }
  v1::ReplaceTargetsResponse response;
  const grpc::Status refused = stub->ReplaceTargets(&context, request, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("--max-request-bytes"));
  EXPECT_EQ(TargetAddresses(0, "big"), std::vector<std::string>{"10.0.10.1:80"});
}

// Health the owner could not write while etcd was out of reach is written
// once etcd is back, with no new event to prompt it.
TEST_F(ReplicasTest, HealthRefusedWhileEtcdWasDownIsWrittenWhenItIsBack) {
  StartEtcd();
  StartReplicas(1);
  v1::CreateUpstreamRequest request;
  request.mutable_upstream()->set_name("later");
  v1::HealthChecks::Passive* passive =
      request.mutable_upstream()->mutable_health_checks()->mutable_passive();
  passive->set_consecutive_failures(1);
  passive->mutable_base_ejection_time()->set_seconds(120);
  passive->set_max_ejection_percent(100);
  {
    auto stub = v1::Admin::NewStub(replicas_[0]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::Upstream created;
    ASSERT_TRUE(stub->CreateUpstream(&context, request, &created).ok());
  }
  ASSERT_TRUE(Put(0, "later", "10.0.12.1:80").ok());
  ASSERT_TRUE(Put(0, "later", "10.0.12.2:80").ok());
  etcd_.Pause(0);
  Picked picked = Pick(0, "later");
  ASSERT_TRUE(picked.status.ok()) << picked.status.error_message();
  ASSERT_TRUE(ReleaseWith(0, "later", picked.pick.lease_id(), /*failure=*/true).ok());
  // The control plane rebuilds the snapshot a moment after the ejection.
  ASSERT_TRUE(WaitFor([&] { return Unhealthy(0, "later") == std::set{picked.pick.target()}; }));
  ASSERT_TRUE(WaitFor([&] {
    return replicas_[0]->Log().find("cannot share the health of upstream later") !=
           std::string::npos;
  }));
  etcd_.Resume(0);
  EXPECT_TRUE(WaitFor(
      [&] { return EtcdGet("/t/health/later").find(picked.pick.target()) != std::string::npos; }));
}

// While etcd is out of reach the replicas keep serving their last
// configuration; writes say etcd is the trouble; when it is back, writes
// work again and every replica follows.
TEST_F(ReplicasTest, EtcdDownThenBack) {
  StartEtcd();
  StartReplicas(2);
  ASSERT_TRUE(Create(0, "steady").ok());
  ASSERT_TRUE(Put(0, "steady", "10.0.4.1:80").ok());
  ASSERT_TRUE(WaitFor([&] { return TargetCount(1, "steady") == 1; }));
  etcd_.Pause(0);
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(Pick(i, "steady").status.ok()) << "replica " << i;
  const grpc::Status refused = Put(1, "steady", "10.0.4.2:80");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_THAT(refused.error_message(), ::testing::HasSubstr("etcd"));
  etcd_.Resume(0);
  ASSERT_TRUE(WaitFor([&] { return Put(1, "steady", "10.0.4.3:80").ok(); }));
  // The refused write's outcome is unknown, as with any etcd client whose
  // request timed out: a stopped etcd still has it in its socket buffer and
  // may apply it when it resumes. So both replicas must agree, and hold the
  // acknowledged writes, with or without 10.0.4.2.
  const auto settled = [&] {
    const std::vector<std::string> seen = TargetAddresses(0, "steady");
    const bool acknowledged = std::count(seen.begin(), seen.end(), "10.0.4.1:80") == 1 &&
                              std::count(seen.begin(), seen.end(), "10.0.4.3:80") == 1;
    return acknowledged && seen.size() <= 3 && seen == TargetAddresses(1, "steady");
  };
  EXPECT_TRUE(WaitFor(settled)) << ::testing::PrintToString(TargetAddresses(0, "steady")) << " / "
                                << ::testing::PrintToString(TargetAddresses(1, "steady"));
}

// The health no admin write makes moves with the upstream: a new owner
// starts with the last owner's passive ejections and active verdicts, not
// with every target healthy (its own checks, every 30 s here, would take
// that long to find the dead target again).
TEST_F(ReplicasTest, ANewOwnerKeepsTheLastOwnersEjectionsAndVerdicts) {
  StartEtcd();
  StartReplicas(3);
  for (int i = 1; i < 3; ++i) ASSERT_TRUE(WaitFor([&] { return Members(i).size() == 3; }));
  health::testing::TcpListener up, ejected, down;
  down.Close();
  v1::CreateUpstreamRequest request;
  v1::Upstream* upstream = request.mutable_upstream();
  upstream->set_name("kept");
  upstream->set_panic_threshold_percent(0);  // One healthy target of three is no panic.
  v1::HealthChecks* checks = upstream->mutable_health_checks();
  checks->mutable_passive()->set_consecutive_failures(1);
  checks->mutable_passive()->mutable_base_ejection_time()->set_seconds(120);
  checks->mutable_passive()->set_max_ejection_percent(100);
  checks->mutable_active()->set_type(v1::HealthChecks::Active::TCP);
  checks->mutable_active()->mutable_interval()->set_seconds(30);
  checks->mutable_active()->set_unhealthy_failures(1);
  {
    auto stub = v1::Admin::NewStub(replicas_[0]->admin_channel());
    grpc::ClientContext context;
    Deadline(context);
    v1::Upstream created;
    ASSERT_TRUE(stub->CreateUpstream(&context, request, &created).ok());
  }
  for (const auto* target : {&up, &ejected, &down}) {
    ASSERT_TRUE(WaitFor([&] { return Put(1, "kept", target->address()).ok(); }));
  }
  // The first check, at once, finds `down` refusing; a failed request
  // ejects `ejected`.
  ASSERT_TRUE(WaitFor([&] { return Unhealthy(2, "kept") == std::set{down.address()}; }));
  int owner = -1;
  for (int n = 0; n < 10 && owner < 0; ++n) {
    Picked picked = Pick(0, "kept");
    ASSERT_TRUE(picked.status.ok()) << picked.status.error_message();
    const bool fail = picked.pick.target() == ejected.address();
    ASSERT_TRUE(ReleaseWith(0, "kept", picked.pick.lease_id(), fail).ok());
    if (fail) owner = Issuer(picked.pick.lease_id());
  }
  ASSERT_GE(owner, 0) << "no pick chose " << ejected.address();
  const std::set<std::string> unhealthy = {ejected.address(), down.address()};
  ASSERT_TRUE(WaitFor([&] { return Unhealthy(owner, "kept") == unhealthy; }));
  // The owner shares it through etcd by its own thread, a moment later.
  ASSERT_TRUE(WaitFor(
      [&] { return EtcdGet("/t/health/kept").find(ejected.address()) != std::string::npos; }));
  ::kill(replicas_[owner]->pid(), SIGKILL);
  const int other = (owner + 1) % 3;
  ASSERT_TRUE(WaitFor([&] { return Pick(other, "kept").status.ok(); }, milliseconds(8000)));
  // It reads the shared health as it takes over, a moment after it serves.
  EXPECT_TRUE(WaitFor([&] { return Unhealthy(other, "kept") == unhealthy; }));
  for (int n = 0; n < 12; ++n) {
    Picked picked = Pick(other, "kept");
    ASSERT_TRUE(picked.status.ok()) << picked.status.error_message();
    EXPECT_EQ(picked.pick.target(), up.address());
    ASSERT_TRUE(ReleaseWith(other, "kept", picked.pick.lease_id(), false).ok());
  }
}

// --config, SIGHUP and picker-cli apply all write to the shared state, and
// applying what is already there writes nothing: replicas that start (or
// reload) with one file converge without churn.
TEST_F(ReplicasTest, TheSameConfigEverywhereWritesOnce) {
  StartEtcd();
  const std::string file = ::testing::TempDir() + "/replicas-config.yaml";
  const auto write = [&](int targets) {
    std::ofstream out(file);
    out << "upstreams:\n  - name: declared\n    loadBalancer: {type: RingHash}\n    targets:\n";
    for (int t = 1; t <= targets; ++t) out << "      - {target: '10.0.7." << t << ":80'}\n";
  };
  write(2);
  for (const char* id : {"r0", "r1"}) {
    replicas_.push_back(StartReplica(id, {"--config", file}));
    ASSERT_NE(replicas_.back(), nullptr);
  }
  ASSERT_TRUE(WaitFor([&] { return Members(0).size() == 2; }));
  const std::string key = "/t/upstreams/declared";
  const std::string revision = EtcdModRevision(key);
  ASSERT_FALSE(revision.empty());
  EXPECT_EQ(TargetCount(1, "declared"), 2u);

  // SIGHUP and apply with the same file: nothing written.
  ::kill(replicas_[1]->pid(), SIGHUP);
  ASSERT_TRUE(
      WaitFor([&] { return replicas_[1]->Log().find("SIGHUP: applied") != std::string::npos; }));
  const std::string applied =
      RunCli({"--admin-addr", replicas_[0]->admin_address(), "apply", file});
  EXPECT_THAT(applied, ::testing::HasSubstr("no changes"));
  EXPECT_EQ(EtcdModRevision(key), revision) << "the same file wrote again";

  // A changed file through one replica is served by the other.
  write(3);
  ::kill(replicas_[0]->pid(), SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return TargetCount(1, "declared") == 3; }));
  EXPECT_NE(EtcdModRevision(key), revision);
}

TEST_F(ReplicasTest, AThreeMemberEtcdThatLosesOneChangesNothing) {
  StartEtcd(3);
  StartReplicas(2);
  ASSERT_TRUE(Create(0, "quorum").ok());
  etcd_.Kill(0);
  ASSERT_TRUE(WaitFor([&] { return Put(1, "quorum", "10.0.5.1:80").ok(); }));
  EXPECT_TRUE(WaitFor([&] { return TargetCount(0, "quorum") == 1; }));
  EXPECT_TRUE(WaitFor([&] { return Pick(0, "quorum").status.ok(); }));
}

// A replica that joins while leases are held: releases still reach the
// replica that issued them, and its counts go back to zero.
TEST_F(ReplicasTest, AReplicaJoiningWhileLeasesAreHeld) {
  StartEtcd();
  StartReplicas(2);
  ASSERT_TRUE(Create(0, "join").ok());
  ASSERT_TRUE(Put(0, "join", "10.0.6.1:80").ok());
  ASSERT_TRUE(WaitFor([&] { return TargetCount(1, "join") == 1; }));
  std::vector<uint64_t> leases;
  for (int k = 0; k < 10; ++k) {
    Picked picked = Pick(k % 2, "join");
    ASSERT_TRUE(picked.status.ok());
    leases.push_back(picked.pick.lease_id());
  }
  const int issuer = Issuer(leases[0]);
  replicas_.push_back(StartReplica("r2"));
  ASSERT_TRUE(WaitFor([&] { return Members(0).size() == 3; }));
  for (size_t k = 0; k < leases.size(); ++k) {
    v1::ReleaseResponse released;
    ASSERT_TRUE(Release(static_cast<int>(k % 3), "join", leases[k], &released).ok());
    EXPECT_EQ(released.state(), v1::ReleaseResponse::RELEASED);
  }
  EXPECT_EQ(Active(issuer, "join"), 0u);
}

}  // namespace
}  // namespace picker::testing
