// SIGTERM drain (DESIGN.md "Lifecycle"): health turns NOT_SERVING, the
// listeners stop taking new calls, in-flight calls finish within
// --drain-timeout-ms, the process exits 0 and logs the drain.
#include <signal.h>

#include <thread>

#include "tests/fault/fault_util.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using Clock = std::chrono::steady_clock;

std::chrono::system_clock::time_point In(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

std::unique_ptr<ServerProcess> StartWithDrain(int drain_ms, std::string* error) {
  ServerOptions options;
  options.extra_args = {"--drain-timeout-ms=" + std::to_string(drain_ms)};
  return ServerProcess::Start(options, error);
}

// Creates upstream `name` with one target over `admin`.
void MakeUpstream(v1::Admin::Stub& admin, const std::string& name) {
  v1::CreateUpstreamRequest create;
  create.mutable_upstream()->set_name(name);
  v1::Upstream created;
  grpc::ClientContext c1;
  c1.set_deadline(In(std::chrono::seconds(10)));
  const grpc::Status s1 = admin.CreateUpstream(&c1, create, &created);
  ASSERT_OK(s1);
  v1::PutTargetRequest put;
  put.set_upstream(name);
  put.mutable_target()->set_address("10.0.0.1:80");
  v1::Target target;
  grpc::ClientContext c2;
  c2.set_deadline(In(std::chrono::seconds(10)));
  const grpc::Status s2 = admin.PutTarget(&c2, put, &target);
  ASSERT_OK(s2);
}

// A server of the test's own (not the suite's: each case ends it) with
// upstream `upstream` of one target, and channels to both listeners that
// stay open as long as this does.
struct Running {
  std::unique_ptr<ServerProcess> server;
  std::shared_ptr<grpc::Channel> data_channel;
  std::shared_ptr<grpc::Channel> admin_channel;
  std::unique_ptr<v1::Admin::Stub> admin;
  std::unique_ptr<v1::Picker::Stub> picker;
};

void StartWithUpstream(int drain_ms, const std::string& upstream, Running* running) {
  std::string error;
  running->server = StartWithDrain(drain_ms, &error);
  ASSERT_NE(running->server, nullptr) << error;
  running->data_channel = NewChannel(running->server->data_address());
  running->admin_channel = NewChannel(running->server->admin_address());
  running->admin = v1::Admin::NewStub(running->admin_channel);
  running->picker = v1::Picker::NewStub(running->data_channel);
  MakeUpstream(*running->admin, upstream);
}

// Waits for the child to exit on its own within `timeout` (Stop would send
// another SIGTERM first, which is harmless, and SIGKILL after the timeout).
ExitInfo WaitExit(ServerProcess& server, std::chrono::milliseconds timeout) {
  return server.Stop(timeout);
}

grpc::Status PickOnce(v1::Picker::Stub& stub, const std::string& upstream,
                      std::chrono::milliseconds deadline, v1::PickResponse* response) {
  v1::PickRequest request;
  request.set_upstream(upstream);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(deadline));
  return stub.Pick(&ctx, request, response);
}

// Everything of the contract in one run: a health watcher on each listener
// sees NOT_SERVING, an open PickStream keeps picking during the drain and
// then finishes cleanly, new calls are refused, exit 0, drain lines logged.
TEST(DrainTest, HealthNotServingStreamFinishesNewCallsRefusedExitZero) {
  constexpr int kDrainMs = 2500;
  Running running;
  StartWithUpstream(kDrainMs, "drain", &running);
  ASSERT_FALSE(::testing::Test::HasFailure());
  ServerProcess* server = running.server.get();
  v1::Admin::Stub* admin = running.admin.get();
  v1::Picker::Stub* picker = running.picker.get();
  auto& data_channel = running.data_channel;
  auto& admin_channel = running.admin_channel;

  // Health watchers, one per gRPC listener.
  struct Watcher {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader;
    std::unique_ptr<Health::Stub> stub;
  };
  Watcher watchers[2];
  std::shared_ptr<grpc::Channel> channels[2] = {data_channel, admin_channel};
  for (int i = 0; i < 2; ++i) {
    watchers[i].stub = Health::NewStub(channels[i]);
    watchers[i].ctx.set_deadline(In(std::chrono::seconds(20)));
    watchers[i].reader = watchers[i].stub->Watch(&watchers[i].ctx, HealthCheckRequest());
    HealthCheckResponse first;
    ASSERT_TRUE(watchers[i].reader->Read(&first)) << "watch " << i;
    EXPECT_EQ(first.status(), HealthCheckResponse::SERVING) << "watch " << i;
  }

  // An open stream with one lease.
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(In(std::chrono::seconds(20)));
  auto stream = picker->PickStream(&stream_ctx);
  v1::PickStreamRequest request;
  request.set_request_id(1);
  request.mutable_pick()->set_upstream("drain");
  v1::PickStreamResponse response;
  ASSERT_TRUE(stream->Write(request) && stream->Read(&response));
  ASSERT_EQ(response.code(), 0) << response.message();
  const uint64_t lease = response.pick().lease_id();

  const auto sigterm = Clock::now();
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);

  // 1. Health turns NOT_SERVING on both listeners, seen by the watchers.
  for (int i = 0; i < 2; ++i) {
    HealthCheckResponse next;
    ASSERT_TRUE(watchers[i].reader->Read(&next))
        << "watch " << i
        << " ended without reporting NOT_SERVING: " << StatusString(watchers[i].reader->Finish());
    EXPECT_EQ(next.status(), HealthCheckResponse::NOT_SERVING) << "watch " << i;
  }
  EXPECT_LT(Clock::now() - sigterm, std::chrono::seconds(2));
  ASSERT_TRUE(WaitUntil([&] { return !LinesWith(server->Log(), {"draining"}).empty(); },
                        std::chrono::seconds(5)));
  // The watchers have what they need; they let go of their calls.
  for (auto& w : watchers) {
    w.ctx.TryCancel();
    w.reader->Finish();
  }

  // 2. New calls are refused on both listeners, over fresh connections and
  // over the connections that were already open.
  for (const std::string& address : {server->data_address(), server->admin_address()}) {
    auto health = Health::NewStub(NewChannel(address));
    grpc::ClientContext ctx;
    ctx.set_deadline(In(std::chrono::milliseconds(1000)));
    HealthCheckResponse answer;
    const grpc::Status status = health->Check(&ctx, HealthCheckRequest(), &answer);
    EXPECT_CODE(status, UNAVAILABLE)
        << " new Health.Check on " << address << " while draining answered " << answer.status();
  }
  {
    // (Statuses in variables: EXPECT_CODE evaluates its argument twice.)
    v1::PickResponse picked;
    const grpc::Status pick = PickOnce(*picker, "drain", std::chrono::milliseconds(1000), &picked);
    EXPECT_CODE(pick, UNAVAILABLE) << " new Pick on an open connection while draining";
    v1::ListUpstreamsResponse list;
    grpc::ClientContext ctx;
    ctx.set_deadline(In(std::chrono::milliseconds(1000)));
    const grpc::Status listed = admin->ListUpstreams(&ctx, v1::ListUpstreamsRequest(), &list);
    EXPECT_CODE(listed, UNAVAILABLE) << " new admin call while the data listener drains";
  }

  // 3. The in-flight stream still works during the drain window.
  request.set_request_id(2);
  v1::ReleaseRequest* release = request.add_releases();
  release->set_upstream("drain");
  release->set_lease_id(lease);
  ASSERT_TRUE(stream->Write(request)) << "stream cut before the drain timeout";
  ASSERT_TRUE(stream->Read(&response)) << "stream cut before the drain timeout";
  EXPECT_EQ(response.code(), 0) << response.message();
  EXPECT_EQ(response.request_id(), 2u);
  EXPECT_LT(Clock::now() - sigterm, std::chrono::milliseconds(kDrainMs))
      << "the checks above took too long to prove anything about the drain window";
  // Its last lease is released in-stream; the client closes its side.
  v1::PickStreamRequest last;
  last.set_request_id(3);
  v1::ReleaseRequest* final_release = last.add_releases();
  final_release->set_upstream("drain");
  final_release->set_lease_id(response.pick().lease_id());
  EXPECT_TRUE(stream->Write(last));
  stream->WritesDone();
  const grpc::Status finished = stream->Finish();
  EXPECT_OK(finished);

  // 4. The process exits 0 within the drain bound (the channels stay open:
  // IdleConnectionsDoNotHoldTheDrain below shows they do not hold it).
  const ExitInfo exit = WaitExit(*server, std::chrono::milliseconds(kDrainMs + 5000));
  const auto took = Clock::now() - sigterm;
  EXPECT_TRUE(exit.exited && exit.code == 0 && !exit.killed_by_us) << exit.ToString();
  EXPECT_LT(took, std::chrono::milliseconds(kDrainMs + 3000));

  // 5. The log tells the story, in order.
  const std::string log = server->Log();
  const auto draining = log.find("received SIGTERM, draining");
  const auto drained = log.find("drain: ");
  const auto stopped = log.find("] stopped");
  EXPECT_NE(draining, std::string::npos) << log;
  EXPECT_NE(drained, std::string::npos) << log;
  EXPECT_NE(stopped, std::string::npos) << log;
  EXPECT_LT(draining, drained) << log;
  EXPECT_LT(drained, stopped) << log;
}

// Clients keep their channels open after their calls (most do). The drain
// ends once no call is left, not at --drain-timeout-ms: gRPC alone would
// wait for those clients to close their connections, which they do not do.
TEST(DrainTest, IdleConnectionsDoNotHoldTheDrain) {
  constexpr int kDrainMs = 20000;
  // Its channels stay open, idle, when SIGTERM comes.
  Running running;
  StartWithUpstream(kDrainMs, "idle", &running);
  ASSERT_FALSE(::testing::Test::HasFailure());
  ServerProcess* server = running.server.get();
  v1::PickResponse picked;
  const grpc::Status pick =
      PickOnce(*running.picker, "idle", std::chrono::milliseconds(5000), &picked);
  ASSERT_OK(pick);

  const auto sigterm = Clock::now();
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  const ExitInfo exit = WaitExit(*server, std::chrono::milliseconds(kDrainMs + 5000));
  const auto took = Clock::now() - sigterm;
  EXPECT_TRUE(exit.exited && exit.code == 0 && !exit.killed_by_us) << exit.ToString();
  // It takes about 150 ms; a quarter of the bound leaves room for a loaded
  // machine.
  EXPECT_LT(took, std::chrono::milliseconds(kDrainMs / 4)) << server->Log();
  EXPECT_NE(server->Log().find("drain: in-flight calls finished in"), std::string::npos)
      << server->Log();
  EXPECT_NE(server->Log().find("drain: no call in flight after"), std::string::npos)
      << server->Log();
  EXPECT_EQ(server->Log().find("drain: timeout"), std::string::npos) << server->Log();
}

// A client that never closes its stream cannot hold the process: at the
// drain timeout the call is cut and the process still exits 0.
TEST(DrainTest, StuckStreamIsCutAtDrainTimeout) {
  constexpr int kDrainMs = 1000;
  Running running;
  StartWithUpstream(kDrainMs, "stuck", &running);
  ASSERT_FALSE(::testing::Test::HasFailure());
  ServerProcess* server = running.server.get();
  v1::Picker::Stub* picker = running.picker.get();

  grpc::ClientContext ctx;
  ctx.set_deadline(In(std::chrono::seconds(30)));
  auto stream = picker->PickStream(&ctx);
  v1::PickStreamRequest request;
  request.set_request_id(1);
  request.mutable_pick()->set_upstream("stuck");
  v1::PickStreamResponse response;
  ASSERT_TRUE(stream->Write(request) && stream->Read(&response));
  ASSERT_EQ(response.code(), 0) << response.message();

  const auto sigterm = Clock::now();
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  // The stream is cut by the server, not by its own 30 s deadline.
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << StatusString(status);
  const auto cut = Clock::now() - sigterm;
  // The call had its drain window, and not much more.
  EXPECT_GE(cut, std::chrono::milliseconds(kDrainMs * 8 / 10));
  EXPECT_LT(cut, std::chrono::milliseconds(kDrainMs + 3000));

  const ExitInfo exit = WaitExit(*server, std::chrono::milliseconds(kDrainMs + 5000));
  EXPECT_TRUE(exit.exited && exit.code == 0 && !exit.killed_by_us) << exit.ToString();
  EXPECT_LT(Clock::now() - sigterm, std::chrono::milliseconds(kDrainMs + 4000));
  EXPECT_NE(server->Log().find("drain: timeout of 1000 ms reached"), std::string::npos)
      << server->Log();
  EXPECT_NE(server->Log().find("] stopped"), std::string::npos) << server->Log();
}

// A health watcher (a call that never ends by itself) learns NOT_SERVING and
// cannot hold the process past the drain bound.
TEST(DrainTest, HealthWatcherToldNotServingAndCutAtDrainBound) {
  constexpr int kDrainMs = 1500;
  std::string error;
  auto server = StartWithDrain(kDrainMs, &error);
  ASSERT_NE(server, nullptr) << error;
  auto health = Health::NewStub(NewChannel(server->data_address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(std::chrono::seconds(30)));
  auto reader = health->Watch(&ctx, HealthCheckRequest());
  HealthCheckResponse answer;
  ASSERT_TRUE(reader->Read(&answer));
  EXPECT_EQ(answer.status(), HealthCheckResponse::SERVING);

  const auto sigterm = Clock::now();
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  ASSERT_TRUE(reader->Read(&answer)) << StatusString(reader->Finish());
  EXPECT_EQ(answer.status(), HealthCheckResponse::NOT_SERVING);
  // The watcher keeps its call open; the server ends it by the drain bound.
  while (reader->Read(&answer)) {
  }
  reader->Finish();
  const ExitInfo exit = WaitExit(*server, std::chrono::milliseconds(kDrainMs + 5000));
  EXPECT_TRUE(exit.exited && exit.code == 0 && !exit.killed_by_us) << exit.ToString();
  EXPECT_LT(Clock::now() - sigterm, std::chrono::milliseconds(kDrainMs + 3000));
}

}  // namespace
}  // namespace picker::testing
