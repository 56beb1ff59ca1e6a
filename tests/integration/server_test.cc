// The server as a process: listeners and which services each serves, health,
// metrics, start-up failures, SIGTERM and restarts.
#include <set>
#include <sstream>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

class ServerTest : public PickerServerTest {};

TEST_F(ServerTest, HealthServingOnDataAndAdminPorts) {
  for (auto channel : {server()->data_channel(), server()->admin_channel()}) {
    auto stub = Health::NewStub(channel);
    HealthCheckRequest request;
    request.set_service("");
    HealthCheckResponse response;
    auto status = stub->Check(Ctx().get(), request, &response);
    ASSERT_OK(status);
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
}

TEST_F(ServerTest, AdminNotServedOnDataPort) {
  auto admin_on_data = v1::Admin::NewStub(server()->data_channel());
  v1::ListUpstreamsResponse response;
  auto status = admin_on_data->ListUpstreams(Ctx().get(), v1::ListUpstreamsRequest(), &response);
  EXPECT_CODE(status, UNIMPLEMENTED);
  v1::CreateUpstreamRequest create;
  create.mutable_upstream()->set_name(NewName());
  v1::Upstream created;
  status = admin_on_data->CreateUpstream(Ctx().get(), create, &created);
  EXPECT_CODE(status, UNIMPLEMENTED);
  EXPECT_CODE(GetUpstream(create.upstream().name()).status, NOT_FOUND);
}

TEST_F(ServerTest, PickerNotServedOnAdminPort) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto picker_on_admin = v1::Picker::NewStub(server()->admin_channel());
  v1::PickRequest request;
  request.set_upstream(name);
  v1::PickResponse response;
  auto status = picker_on_admin->Pick(Ctx().get(), request, &response);
  EXPECT_CODE(status, UNIMPLEMENTED);
  EXPECT_EQ(TotalActive(name), 0);
}

// Services listed by server reflection on `channel`.
std::set<std::string> ReflectedServices(std::shared_ptr<grpc::Channel> channel,
                                        std::string* error) {
  namespace refl = ::grpc::reflection::v1alpha;
  auto stub = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest request;
  request.set_list_services("*");
  std::set<std::string> services;
  refl::ServerReflectionResponse response;
  if (!stream->Write(request) || !stream->Read(&response)) {
    stream->WritesDone();
    *error = StatusString(stream->Finish());
    return services;
  }
  for (const auto& s : response.list_services_response().service()) services.insert(s.name());
  // The Picker/Admin descriptors resolve too (what grpcurl needs).
  refl::ServerReflectionRequest file_request;
  file_request.set_file_containing_symbol("grpc.health.v1.Health");
  refl::ServerReflectionResponse file_response;
  if (!stream->Write(file_request) || !stream->Read(&file_response) ||
      file_response.has_error_response()) {
    *error = "file_containing_symbol grpc.health.v1.Health failed: " +
             file_response.error_response().error_message();
  }
  stream->WritesDone();
  stream->Finish();
  return services;
}

TEST_F(ServerTest, ReflectionListsEachListenersServices) {
  std::string error;
  auto data = ReflectedServices(server()->data_channel(), &error);
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_TRUE(data.count("picker.v1.Picker")) << ::testing::PrintToString(data);
  EXPECT_TRUE(data.count("grpc.health.v1.Health")) << ::testing::PrintToString(data);
  EXPECT_FALSE(data.count("picker.v1.Admin")) << ::testing::PrintToString(data);
  error.clear();
  auto admin = ReflectedServices(server()->admin_channel(), &error);
  EXPECT_TRUE(error.empty()) << error;
  EXPECT_TRUE(admin.count("picker.v1.Admin")) << ::testing::PrintToString(admin);
  EXPECT_TRUE(admin.count("grpc.health.v1.Health")) << ::testing::PrintToString(admin);
  EXPECT_FALSE(admin.count("picker.v1.Picker")) << ::testing::PrintToString(admin);
}

// The samples of `metric` whose labels contain every one of `labels` (e.g.
// `upstream="x"`; none for a metric without labels), summed.
double SumSamples(const std::string& text, const std::string& metric,
                  const std::vector<std::string>& labels, int* matches) {
  std::istringstream in(text);
  std::string line;
  double sum = 0;
  *matches = 0;
  while (std::getline(in, line)) {
    std::string label_text;
    size_t value_at;
    if (line.rfind(metric + "{", 0) == 0) {
      const auto close = line.rfind('}');
      if (close == std::string::npos) continue;
      label_text = line.substr(metric.size(), close - metric.size() + 1);
      value_at = close + 1;
    } else if (line.rfind(metric + " ", 0) == 0) {
      value_at = metric.size();
    } else {
      continue;
    }
    bool all = true;
    for (const auto& l : labels) all = all && label_text.find(l) != std::string::npos;
    if (!all) continue;
    ++*matches;
    sum += std::stod(line.substr(value_at));
  }
  return sum;
}

TEST_F(ServerTest, MetricsAfterPicks) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  const std::string label = "upstream=\"" + name + "\"";
  for (int i = 0; i < 3; ++i) {
    auto pick = Pick(name);
    ASSERT_OK(pick.status);
    v1::ReleaseRequest release;
    release.set_upstream(name);
    release.set_lease_id(pick.value.lease_id());
    SetMillis(release.mutable_latency(), 12);
    v1::ReleaseResponse response;
    ASSERT_OK(picker_->Release(Ctx().get(), release, &response));
  }
  auto held = Pick(name);
  ASSERT_OK(held.status);

  std::string error;
  auto text = server()->GetMetrics(&error);
  ASSERT_TRUE(text.has_value()) << error;
  int matches = 0;
  const double picks = SumSamples(*text, "picker_picks_total", {label}, &matches);
  EXPECT_GT(matches, 0) << "no picker_picks_total{" << label << "...}\n" << *text;
  EXPECT_EQ(picks, 4);
  const double releases = SumSamples(*text, "picker_releases_total", {label}, &matches);
  EXPECT_GT(matches, 0) << "no picker_releases_total{" << label << "...}";
  EXPECT_EQ(releases, 3);
  const double active = SumSamples(*text, "picker_active_requests", {label}, &matches);
  EXPECT_GT(matches, 0) << "no picker_active_requests{" << label << "...}";
  EXPECT_EQ(active, 1);
  EXPECT_THAT(*text, HasSubstr("picker_build_info{"));
  EXPECT_THAT(*text, HasSubstr("picker_pick_duration_seconds"));
  EXPECT_THAT(*text, HasSubstr("picker_request_duration_seconds"));
  // MakeUpstream's two admin writes, each answered by a store commit.
  EXPECT_GE(SumSamples(*text, "picker_store_commit_duration_seconds_count", {}, &matches), 2);
  EXPECT_EQ(matches, 1) << *text;
  EXPECT_GE(SumSamples(*text, "picker_store_commit_writes_sum", {}, &matches), 2);
  EXPECT_EQ(matches, 1) << *text;
  // No per-target series without --metrics-per-target.
  EXPECT_THAT(*text, ::testing::Not(HasSubstr("10.0.0.1:80")));
  ASSERT_OK(Release(name, held.value.lease_id()).status);
}

TEST_F(ServerTest, MetricsCountAbandonedStreamLeases) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  {
    auto ctx = Ctx();
    auto stream = picker_->PickStream(ctx.get());
    v1::PickStreamRequest request;
    request.set_request_id(1);
    request.mutable_pick()->set_upstream(name);
    ASSERT_TRUE(stream->Write(request));
    v1::PickStreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_EQ(response.code(), 0) << response.message();
    stream->WritesDone();
    stream->Finish();
  }
  ASSERT_TRUE(WaitForActive(name, 0));
  std::string error;
  auto text = server()->GetMetrics(&error);
  ASSERT_TRUE(text.has_value()) << error;
  int matches = 0;
  SumSamples(*text, "picker_releases_total", {"upstream=\"" + name + "\"", "abandoned"}, &matches);
  EXPECT_GT(matches, 0) << "picker_releases_total has an abandoned outcome";
}

TEST_F(ServerTest, MetricsCountReleaseErrorsByCode) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto errors = [&](const std::string& code) {
    std::string error;
    auto text = server()->GetMetrics(&error);
    EXPECT_TRUE(text.has_value()) << error;
    int matches = 0;
    return text ? SumSamples(*text, "picker_release_errors_total", {"\"" + code + "\""}, &matches)
                : -1;
  };
  const double not_found = errors("NOT_FOUND"), invalid = errors("INVALID_ARGUMENT");
  EXPECT_EQ(Release("no-such-upstream", 12345).status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Release(name, 0).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Release(name, 0).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(errors("NOT_FOUND") - not_found, 1);
  EXPECT_EQ(errors("INVALID_ARGUMENT") - invalid, 2);
}

TEST_F(ServerTest, MetricsUnknownPathIsNot200) {
  std::string error;
  auto text = server()->GetMetrics(&error, "/definitely-not-here");
  EXPECT_FALSE(text.has_value());
}

TEST_F(ServerTest, StatusPageIsOffWithoutTheFlag) {
  // The page shows every target: it is served only with --status-page.
  for (const char* path : {"/status", "/status.json"}) {
    std::string error;
    EXPECT_FALSE(server()->GetMetrics(&error, path).has_value()) << path;
    EXPECT_NE(error.find("404"), std::string::npos) << path << ": " << error;
  }
}

// --- Process-level tests: each starts its own servers. ---

TEST(ServerProcessTest, StopsWithExitZeroOnSigterm) {
  std::string error;
  auto server = ServerProcess::Start(ServerOptions{}, &error);
  ASSERT_NE(server, nullptr) << error;
  const auto started = std::chrono::steady_clock::now();
  const ExitInfo info = server->Stop(std::chrono::seconds(10));
  EXPECT_TRUE(info.exited && info.code == 0 && !info.killed_by_us)
      << info.ToString() << "\n--- log ---\n"
      << server->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(7));
}

void ExpectStartFailsNaming(const ServerOptions& options, const std::string& address) {
  std::string log;
  const ExitInfo info = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(info.exited && info.code != 0 && !info.killed_by_us)
      << "expected a non-zero exit, got: " << info.ToString() << "\n--- log ---\n"
      << log;
  EXPECT_THAT(log, HasSubstr(address)) << "the message names the address";
  EXPECT_THAT(log, ::testing::Not(HasSubstr("listening data=")));
}

TEST(ServerProcessTest, DataPortTakenFailsToStart) {
  BoundSocket busy;
  ASSERT_TRUE(busy.ok());
  ServerOptions options;
  options.listen = busy.address();
  ExpectStartFailsNaming(options, busy.address());
}

TEST(ServerProcessTest, AdminPortTakenFailsToStart) {
  BoundSocket busy;
  ASSERT_TRUE(busy.ok());
  ServerOptions options;
  options.admin_listen = busy.address();
  ExpectStartFailsNaming(options, busy.address());
}

TEST(ServerProcessTest, MetricsPortTakenFailsToStart) {
  BoundSocket busy;
  ASSERT_TRUE(busy.ok());
  ServerOptions options;
  options.metrics_listen = busy.address();
  ExpectStartFailsNaming(options, busy.address());
}

TEST(ServerProcessTest, SecondServerOnSamePortFailsToStart) {
  // gRPC sets SO_REUSEPORT by default; a second picker must still not share
  // the first one's port.
  std::string error;
  auto first = ServerProcess::Start(ServerOptions{}, &error);
  ASSERT_NE(first, nullptr) << error;
  for (int which = 0; which < 2; ++which) {
    ServerOptions options;
    std::string address;
    if (which == 0) {
      address = options.listen = first->data_address();
    } else {
      address = options.admin_listen = first->admin_address();
    }
    SCOPED_TRACE("taken: " + address);
    ExpectStartFailsNaming(options, address);
  }
  const ExitInfo info = first->Stop();
  EXPECT_TRUE(info.exited && info.code == 0) << info.ToString();
}

TEST(ServerProcessTest, StatePersistsAcrossRestart) {
  ServerOptions options;
  std::string error;
  auto first = ServerProcess::Start(options, &error);
  ASSERT_NE(first, nullptr) << error;
  // The second server reuses the first one's directory (removed when
  // `first` is destroyed, at the end of the test).
  options.data_dir = first->data_dir();

  auto admin = v1::Admin::NewStub(first->admin_channel());
  auto picker = v1::Picker::NewStub(first->data_channel());
  const std::string name = "persist-upstream";
  {
    v1::CreateUpstreamRequest create;
    *create.mutable_upstream() = ParseText<v1::Upstream>(
        "name: 'persist-upstream' load_balancer { maglev { table_size: 131 } } "
        "panic_threshold_percent: 20");
    v1::Upstream created;
    grpc::ClientContext ctx;
    ASSERT_OK(admin->CreateUpstream(&ctx, create, &created));
    for (const char* address : {"10.0.0.3:80", "10.0.0.1:80", "10.0.0.2:80"}) {
      v1::PutTargetRequest put;
      put.set_upstream(name);
      put.mutable_target()->set_address(address);
      put.mutable_target()->set_weight(address[7] == '1' ? 7 : 100);
      v1::Target target;
      grpc::ClientContext c;
      ASSERT_OK(admin->PutTarget(&c, put, &target));
    }
    v1::SetTargetHealthRequest set;
    set.set_upstream(name);
    set.set_address("10.0.0.2:80");
    set.set_override(v1::SetTargetHealthRequest::UNHEALTHY);
    v1::SetTargetHealthResponse set_response;
    grpc::ClientContext c;
    ASSERT_OK(admin->SetTargetHealth(&c, set, &set_response));
  }
  v1::Upstream before_upstream;
  v1::ListTargetsResponse before_targets;
  uint64_t first_lease = 0;
  {
    grpc::ClientContext c1, c2, c3;
    v1::GetUpstreamRequest get;
    get.set_name(name);
    ASSERT_OK(admin->GetUpstream(&c1, get, &before_upstream));
    v1::ListTargetsRequest list;
    list.set_upstream(name);
    ASSERT_OK(admin->ListTargets(&c2, list, &before_targets));
    v1::PickRequest pick;
    pick.set_upstream(name);
    v1::PickResponse picked;
    ASSERT_OK(picker->Pick(&c3, pick, &picked));
    first_lease = picked.lease_id();
  }
  admin.reset();
  picker.reset();
  const ExitInfo stopped = first->Stop();
  ASSERT_TRUE(stopped.exited && stopped.code == 0) << stopped.ToString();

  auto second = ServerProcess::Start(options, &error);
  ASSERT_NE(second, nullptr) << error;
  admin = v1::Admin::NewStub(second->admin_channel());
  picker = v1::Picker::NewStub(second->data_channel());
  {
    grpc::ClientContext c1, c2, c3, c4;
    v1::GetUpstreamRequest get;
    get.set_name(name);
    v1::Upstream after_upstream;
    ASSERT_OK(admin->GetUpstream(&c1, get, &after_upstream));
    EXPECT_TRUE(ProtoEqual(after_upstream, before_upstream));
    v1::ListTargetsRequest list;
    list.set_upstream(name);
    v1::ListTargetsResponse after_targets;
    ASSERT_OK(admin->ListTargets(&c2, list, &after_targets));
    EXPECT_TRUE(ProtoEqual(after_targets, before_targets)) << "targets and order persist";
    v1::GetUpstreamHealthRequest health_request;
    health_request.set_name(name);
    v1::UpstreamHealth health;
    ASSERT_OK(admin->GetUpstreamHealth(&c3, health_request, &health));
    ASSERT_EQ(health.targets_size(), 3);
    EXPECT_EQ(health.targets(2).address(), "10.0.0.2:80");
    EXPECT_FALSE(health.targets(2).healthy()) << "health overrides persist";
    v1::PickRequest pick;
    pick.set_upstream(name);
    v1::PickResponse picked;
    ASSERT_OK(picker->Pick(&c4, pick, &picked));
    EXPECT_NE(picked.lease_id(), first_lease) << "lease ids are unique across restarts";
  }
  const ExitInfo info = second->Stop();
  EXPECT_TRUE(info.exited && info.code == 0) << info.ToString();
}

}  // namespace
}  // namespace picker::testing
