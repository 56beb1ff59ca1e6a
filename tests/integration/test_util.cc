#include "tests/integration/test_util.h"

#include <cctype>
#include <iostream>
#include <thread>

namespace picker::testing {

std::unique_ptr<ServerProcess> PickerServerTest::server_;
std::unique_ptr<v1::Admin::Stub> PickerServerTest::admin_;
std::unique_ptr<v1::Picker::Stub> PickerServerTest::picker_;
std::string PickerServerTest::start_error_;
int PickerServerTest::counter_ = 0;

std::string StatusString(const grpc::Status& status) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = status.error_code();
  std::string name = (code >= 0 && code <= 16) ? kNames[code] : std::to_string(code);
  return name + ": \"" + status.error_message() + "\"";
}

::testing::AssertionResult ProtoEqual(const google::protobuf::Message& a,
                                      const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer differ;
  std::string diff;
  differ.ReportDifferencesToString(&diff);
  if (differ.Compare(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "protos differ:\n"
                                       << diff << "--- first:\n"
                                       << a.DebugString() << "--- second:\n"
                                       << b.DebugString();
}

void SetMillis(google::protobuf::Duration* d, int64_t ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

int64_t Millis(const google::protobuf::Duration& d) {
  return d.seconds() * 1000 + d.nanos() / 1000000;
}

v1::Target MakeTarget(const std::string& address, std::optional<uint32_t> weight,
                      const std::string& zone) {
  v1::Target target;
  target.set_address(address);
  if (weight) target.set_weight(*weight);
  target.set_zone(zone);
  return target;
}

void PickerServerTest::SetUpTestSuite() { StartServer(ServerOptions{}); }

void PickerServerTest::TearDownTestSuite() { StopServer(); }

void PickerServerTest::StartServer(const ServerOptions& options) {
  start_error_.clear();
  server_ = ServerProcess::Start(options, &start_error_);
  if (!server_) return;
  admin_ = v1::Admin::NewStub(server_->admin_channel());
  picker_ = v1::Picker::NewStub(server_->data_channel());
}

void PickerServerTest::StopServer() {
  admin_.reset();
  picker_.reset();
  if (!server_) return;
  const ExitInfo info = server_->Stop();
  if (!info.exited || info.code != 0 || info.killed_by_us) {
    ADD_FAILURE() << "picker-server did not exit 0 on SIGTERM: " << info.ToString()
                  << "\n--- picker-server log ---\n"
                  << server_->Log();
  }
  server_.reset();
}

void PickerServerTest::SetUp() {
  ASSERT_NE(server_, nullptr) << "picker-server failed to start: " << start_error_;
}

void PickerServerTest::TearDown() {
  if (HasFailure() && server_) {
    std::string log = server_->Log();
    constexpr size_t kTail = 8000;
    if (log.size() > kTail) log = "...\n" + log.substr(log.size() - kTail);
    std::cerr << "--- picker-server log (tail) ---\n" << log << "--- end of log ---\n";
  }
}

std::string PickerServerTest::NewName(const std::string& prefix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = prefix + "-" + (info ? info->name() : "t") + "-" + std::to_string(++counter_);
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  if (name.size() > 120) name = name.substr(name.size() - 120);
  return name;
}

std::unique_ptr<grpc::ClientContext> PickerServerTest::Ctx(std::chrono::milliseconds timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

Result<v1::Upstream> PickerServerTest::CreateUpstream(const v1::Upstream& upstream) {
  v1::CreateUpstreamRequest request;
  *request.mutable_upstream() = upstream;
  Result<v1::Upstream> result;
  result.status = admin_->CreateUpstream(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::Upstream> PickerServerTest::CreateUpstreamText(const std::string& text) {
  return CreateUpstream(ParseText<v1::Upstream>(text));
}

Result<v1::Upstream> PickerServerTest::GetUpstream(const std::string& name) {
  v1::GetUpstreamRequest request;
  request.set_name(name);
  Result<v1::Upstream> result;
  result.status = admin_->GetUpstream(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::ListUpstreamsResponse> PickerServerTest::ListUpstreams() {
  Result<v1::ListUpstreamsResponse> result;
  result.status = admin_->ListUpstreams(Ctx().get(), v1::ListUpstreamsRequest(), &result.value);
  return result;
}

Result<v1::Upstream> PickerServerTest::UpdateUpstream(const v1::Upstream& upstream) {
  v1::UpdateUpstreamRequest request;
  *request.mutable_upstream() = upstream;
  Result<v1::Upstream> result;
  result.status = admin_->UpdateUpstream(Ctx().get(), request, &result.value);
  return result;
}

grpc::Status PickerServerTest::DeleteUpstream(const std::string& name) {
  v1::DeleteUpstreamRequest request;
  request.set_name(name);
  v1::DeleteUpstreamResponse response;
  return admin_->DeleteUpstream(Ctx().get(), request, &response);
}

Result<v1::Target> PickerServerTest::PutTarget(const std::string& upstream,
                                               const v1::Target& target) {
  v1::PutTargetRequest request;
  request.set_upstream(upstream);
  *request.mutable_target() = target;
  Result<v1::Target> result;
  result.status = admin_->PutTarget(Ctx().get(), request, &result.value);
  return result;
}

grpc::Status PickerServerTest::DeleteTarget(const std::string& upstream,
                                            const std::string& address) {
  v1::DeleteTargetRequest request;
  request.set_upstream(upstream);
  request.set_address(address);
  v1::DeleteTargetResponse response;
  return admin_->DeleteTarget(Ctx().get(), request, &response);
}

Result<v1::ReplaceTargetsResponse> PickerServerTest::ReplaceTargets(
    const std::string& upstream, const std::vector<v1::Target>& targets) {
  v1::ReplaceTargetsRequest request;
  request.set_upstream(upstream);
  for (const auto& t : targets) *request.add_targets() = t;
  Result<v1::ReplaceTargetsResponse> result;
  result.status = admin_->ReplaceTargets(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::ListTargetsResponse> PickerServerTest::ListTargets(const std::string& upstream) {
  v1::ListTargetsRequest request;
  request.set_upstream(upstream);
  Result<v1::ListTargetsResponse> result;
  result.status = admin_->ListTargets(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::SetTargetHealthResponse> PickerServerTest::SetTargetHealth(
    const std::string& upstream, const std::string& address,
    v1::SetTargetHealthRequest::Override override_value) {
  v1::SetTargetHealthRequest request;
  request.set_upstream(upstream);
  request.set_address(address);
  request.set_override(override_value);
  Result<v1::SetTargetHealthResponse> result;
  result.status = admin_->SetTargetHealth(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::UpstreamHealth> PickerServerTest::GetUpstreamHealth(const std::string& name) {
  v1::GetUpstreamHealthRequest request;
  request.set_name(name);
  Result<v1::UpstreamHealth> result;
  result.status = admin_->GetUpstreamHealth(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::PickResponse> PickerServerTest::Pick(const v1::PickRequest& request) {
  Result<v1::PickResponse> result;
  result.status = picker_->Pick(Ctx().get(), request, &result.value);
  return result;
}

Result<v1::PickResponse> PickerServerTest::Pick(const std::string& upstream) {
  v1::PickRequest request;
  request.set_upstream(upstream);
  return Pick(request);
}

Result<v1::ReleaseResponse> PickerServerTest::Release(const std::string& upstream,
                                                      uint64_t lease_id,
                                                      v1::ReleaseRequest::Outcome outcome) {
  v1::ReleaseRequest request;
  request.set_upstream(upstream);
  request.set_lease_id(lease_id);
  request.set_outcome(outcome);
  Result<v1::ReleaseResponse> result;
  result.status = picker_->Release(Ctx().get(), request, &result.value);
  return result;
}

std::string PickerServerTest::MakeUpstream(const std::string& lb_text,
                                           const std::vector<v1::Target>& targets,
                                           const std::string& extra_text) {
  const std::string name = NewName();
  v1::Upstream upstream =
      ParseText<v1::Upstream>("load_balancer { " + lb_text + " } " + extra_text);
  upstream.set_name(name);
  auto created = CreateUpstream(upstream);
  EXPECT_TRUE(created.ok()) << "CreateUpstream " << upstream.ShortDebugString() << ": "
                            << StatusString(created.status);
  for (const auto& target : targets) {
    auto put = PutTarget(name, target);
    EXPECT_TRUE(put.ok()) << "PutTarget " << target.ShortDebugString() << ": "
                          << StatusString(put.status);
  }
  return name;
}

std::map<std::string, int> PickerServerTest::PickAndReleaseCounts(const v1::PickRequest& request,
                                                                  int n) {
  std::map<std::string, int> counts;
  for (int i = 0; i < n; ++i) {
    auto pick = Pick(request);
    if (!pick.ok()) {
      ADD_FAILURE() << "Pick #" << i << ": " << StatusString(pick.status);
      return counts;
    }
    ++counts[pick.value.target()];
    auto release = Release(request.upstream(), pick.value.lease_id());
    if (!release.ok()) {
      ADD_FAILURE() << "Release #" << i << ": " << StatusString(release.status);
      return counts;
    }
  }
  return counts;
}

int64_t PickerServerTest::TotalActive(const std::string& upstream) {
  auto health = GetUpstreamHealth(upstream);
  if (!health.ok()) return -1;
  int64_t total = 0;
  for (const auto& t : health.value.targets()) total += static_cast<int64_t>(t.active_requests());
  return total;
}

std::map<std::string, uint64_t> PickerServerTest::ActiveByTarget(const std::string& upstream) {
  std::map<std::string, uint64_t> active;
  auto health = GetUpstreamHealth(upstream);
  EXPECT_TRUE(health.ok()) << StatusString(health.status);
  for (const auto& t : health.value.targets()) active[t.address()] = t.active_requests();
  return active;
}

bool PickerServerTest::WaitForActive(const std::string& upstream, int64_t want,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (TotalActive(upstream) == want) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string PickerServerTest::StoredState(const std::string& upstream) {
  std::string state;
  auto got = GetUpstream(upstream);
  state += "GetUpstream " + StatusString(got.status) + "\n" + got.value.DebugString();
  auto targets = ListTargets(upstream);
  state += "ListTargets " + StatusString(targets.status) + "\n" + targets.value.DebugString();
  auto health = GetUpstreamHealth(upstream);
  state += "GetUpstreamHealth " + StatusString(health.status) + "\n";
  for (const auto& t : health.value.targets()) {
    state += t.address() + " healthy=" + (t.healthy() ? "1" : "0") + " reasons=";
    for (int r : t.reasons()) state += std::to_string(r) + ",";
    state += "\n";
  }
  return state;
}

}  // namespace picker::testing
