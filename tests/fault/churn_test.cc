// Load with target churn (issue #8 point 5): clients pick over unary Pick and
// PickStream while an admin thread adds and removes targets. A pick that
// starts after the removal of a target was acknowledged must never return
// that target, and once every lease is released no count is left behind.
#include <atomic>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tests/fault/fault_util.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kChurnFor = std::chrono::milliseconds(2500);
// Leases a client holds at most before releasing the oldest; holding some
// makes removed targets carry leases across their removal.
constexpr size_t kMaxHeld = 8;

struct PickRecord {
  Clock::time_point start;
  std::string target;
};

// What every client thread reports back.
struct ClientReport {
  std::vector<PickRecord> picks;
  std::vector<std::string> errors;
};

class ChurnTest : public PickerServerTest {
 public:
  // A short drain: the suite's SIGTERM at the end need not wait 5 s for
  // client connections to go away.
  static void SetUpTestSuite() {
    ServerOptions options;
    options.extra_args = {"--drain-timeout-ms=1000"};
    StartServer(options);
  }

 protected:
  // Removal acknowledgements: address -> when the admin call returned OK.
  void RecordRemoval(const std::string& address, Clock::time_point acked) {
    std::lock_guard lock(mu_);
    removed_at_.emplace(address, acked);
  }
  std::map<std::string, Clock::time_point> Removals() {
    std::lock_guard lock(mu_);
    return removed_at_;
  }

  std::mutex mu_;
  std::map<std::string, Clock::time_point> removed_at_;
};

// Unary Pick + Release, holding up to kMaxHeld leases.
void UnaryClient(v1::Picker::Stub* stub, const std::string& upstream, const std::atomic<bool>* stop,
                 ClientReport* report) {
  std::deque<uint64_t> held;
  std::mt19937 rng(std::random_device{}());
  auto release = [&](uint64_t lease) {
    v1::ReleaseRequest request;
    request.set_upstream(upstream);
    request.set_lease_id(lease);
    v1::ReleaseResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status status = stub->Release(&ctx, request, &response);
    if (!status.ok()) {
      report->errors.push_back("Release: " + StatusString(status));
    } else if (response.state() != v1::ReleaseResponse::RELEASED) {
      report->errors.push_back("Release state " + std::to_string(response.state()));
    }
  };
  while (!stop->load()) {
    v1::PickRequest request;
    request.set_upstream(upstream);
    v1::PickResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const auto start = Clock::now();
    const grpc::Status status = stub->Pick(&ctx, request, &response);
    if (!status.ok()) {
      report->errors.push_back("Pick: " + StatusString(status));
      continue;
    }
    report->picks.push_back({start, response.target()});
    held.push_back(response.lease_id());
    if (held.size() > kMaxHeld || rng() % 2 == 0) {
      release(held.front());
      held.pop_front();
    }
  }
  for (uint64_t lease : held) release(lease);
}

// One PickStream, one request in flight at a time; releases ride on the
// next pick request, the rest go out in a final release-only message.
void StreamClient(v1::Picker::Stub* stub, const std::string& upstream,
                  const std::atomic<bool>* stop, ClientReport* report) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->PickStream(&ctx);
  std::deque<uint64_t> held;
  std::mt19937 rng(std::random_device{}());
  uint64_t request_id = 0;
  while (!stop->load()) {
    v1::PickStreamRequest request;
    request.set_request_id(++request_id);
    request.mutable_pick()->set_upstream(upstream);
    if (held.size() > kMaxHeld || (!held.empty() && rng() % 2 == 0)) {
      v1::ReleaseRequest* release = request.add_releases();
      release->set_upstream(upstream);
      release->set_lease_id(held.front());
      held.pop_front();
    }
    const auto start = Clock::now();
    v1::PickStreamResponse response;
    if (!stream->Write(request) || !stream->Read(&response)) {
      report->errors.push_back("PickStream broke");
      break;
    }
    if (response.request_id() != request_id) {
      report->errors.push_back("PickStream answered request " +
                               std::to_string(response.request_id()) + " for " +
                               std::to_string(request_id));
    }
    if (response.code() != 0) {
      report->errors.push_back("PickStream pick: code " + std::to_string(response.code()) + " " +
                               response.message());
      continue;
    }
    report->picks.push_back({start, response.pick().target()});
    held.push_back(response.pick().lease_id());
  }
  v1::PickStreamRequest last;
  last.set_request_id(++request_id);
  for (uint64_t lease : held) {
    v1::ReleaseRequest* release = last.add_releases();
    release->set_upstream(upstream);
    release->set_lease_id(lease);
  }
  if (!stream->Write(last)) report->errors.push_back("PickStream final release write failed");
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) report->errors.push_back("PickStream finish: " + StatusString(status));
}

TEST_F(ChurnTest, RemovedTargetNeverPickedAfterAckAndCountsReturnToZero) {
  // Two stable targets keep every pick answerable; churned targets get a
  // high weight so that clients meet them often while they exist.
  const std::vector<v1::Target> stable = {MakeTarget("10.0.0.1:80", 10),
                                          MakeTarget("10.0.0.2:80", 10)};
  const std::string name = MakeUpstream("round_robin {}", stable);
  ASSERT_FALSE(HasFailure());

  std::atomic<bool> stop{false};
  std::vector<ClientReport> reports(4);
  std::vector<std::thread> clients;
  // Each client its own channel: the admin thread's calls and the clients'
  // calls then do not queue behind each other on one connection.
  std::vector<std::unique_ptr<v1::Picker::Stub>> stubs;
  for (int i = 0; i < 4; ++i) {
    stubs.push_back(v1::Picker::NewStub(NewChannel(server()->data_address())));
  }
  clients.emplace_back(UnaryClient, stubs[0].get(), name, &stop, &reports[0]);
  clients.emplace_back(UnaryClient, stubs[1].get(), name, &stop, &reports[1]);
  clients.emplace_back(StreamClient, stubs[2].get(), name, &stop, &reports[2]);
  clients.emplace_back(StreamClient, stubs[3].get(), name, &stop, &reports[3]);

  // Admin churn: every churned address is used once, so "picked after its
  // removal" needs no bookkeeping of re-additions.
  int next = 0;
  auto fresh = [&] {
    ++next;
    return MakeTarget(
        "10.1." + std::to_string(next / 250) + "." + std::to_string(next % 250 + 1) + ":8080",
        1000);
  };
  std::vector<std::string> live;  // churned targets currently present
  int deletes = 0, replaces = 0, puts = 0;
  const auto churn_until = Clock::now() + kChurnFor;
  for (int step = 0; Clock::now() < churn_until; ++step) {
    switch (step % 4) {
      case 0:
      case 1: {
        const v1::Target t = fresh();
        ASSERT_OK(PutTarget(name, t).status);
        live.push_back(t.address());
        ++puts;
        break;
      }
      case 2: {
        // DeleteTarget of the oldest churned target.
        ASSERT_FALSE(live.empty());
        const std::string victim = live.front();
        const grpc::Status deleted = DeleteTarget(name, victim);
        ASSERT_OK(deleted);
        RecordRemoval(victim, Clock::now());
        live.erase(live.begin());
        ++deletes;
        break;
      }
      case 3: {
        // ReplaceTargets: keep the stable ones, drop every churned target,
        // bring in a fresh one.
        std::vector<v1::Target> next_set = stable;
        const v1::Target t = fresh();
        next_set.push_back(t);
        ASSERT_OK(ReplaceTargets(name, next_set).status);
        const auto acked = Clock::now();
        for (const auto& address : live) RecordRemoval(address, acked);
        live = {t.address()};
        ++replaces;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop = true;
  for (auto& c : clients) c.join();

  const auto removals = Removals();
  size_t picks = 0, churned_picks = 0, violations = 0;
  std::string first_violation;
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_TRUE(reports[i].errors.empty()) << "client " << i << ": " << reports[i].errors.size()
                                           << " errors, first: " << reports[i].errors.front();
    for (const PickRecord& pick : reports[i].picks) {
      ++picks;
      if (pick.target.rfind("10.1.", 0) == 0) ++churned_picks;
      auto it = removals.find(pick.target);
      if (it != removals.end() && pick.start > it->second) {
        if (violations++ == 0) {
          first_violation =
              pick.target + " picked " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::microseconds>(pick.start - it->second)
                      .count()) +
              " us after its removal was acknowledged (client " + std::to_string(i) + ")";
        }
      }
    }
  }
  EXPECT_EQ(violations, 0u) << first_violation;
  std::cerr << "churn: " << picks << " picks (" << churned_picks << " of churned targets), " << puts
            << " PutTarget, " << deletes << " DeleteTarget, " << replaces << " ReplaceTargets\n";
  // The test means something only if the churn met the load.
  EXPECT_GT(deletes, 5);
  EXPECT_GT(replaces, 5);
  EXPECT_GT(picks, 200u);
  EXPECT_GT(churned_picks, 20u) << "churned targets were hardly ever picked";
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_GT(reports[i].picks.size(), 10u) << "client " << i << " barely ran";
  }

  // Every lease was released (by Release or in-stream): nothing is active,
  // neither on the targets still present nor on the upstream as a whole
  // (which also covers leases of removed targets).
  auto health = GetUpstreamHealth(name);
  ASSERT_OK(health.status);
  for (const auto& t : health.value.targets()) {
    EXPECT_EQ(t.active_requests(), 0u) << t.address();
  }
  std::string error;
  const std::string label = "upstream=\"" + name + "\"";
  auto active = ScrapeMetric(*server(), "picker_active_requests", {label}, &error);
  ASSERT_TRUE(active.has_value()) << error;
  EXPECT_EQ(*active, 0);
  // Released, not abandoned or expired: each stream sent its releases
  // before it closed.
  auto abandoned =
      ScrapeMetric(*server(), "picker_releases_total", {label, "outcome=\"abandoned\""}, &error);
  EXPECT_EQ(abandoned.value_or(0), 0);
  auto released =
      ScrapeMetric(*server(), "picker_releases_total", {label, "outcome=\"success\""}, &error);
  ASSERT_TRUE(released.has_value()) << error;
  EXPECT_EQ(*released, static_cast<double>(picks));
}

}  // namespace
}  // namespace picker::testing
