// Shared fixture and helpers of the integration tests: one real picker-server
// per test suite, fresh upstream names per test, thin RPC wrappers.
#ifndef PICKER_TESTS_INTEGRATION_TEST_UTIL_H_
#define PICKER_TESTS_INTEGRATION_TEST_UTIL_H_

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"
#include "tests/integration/server_process.h"

namespace picker::testing {

using ::picker::v1::Upstream;

// Prints a gRPC status for assertion messages.
std::string StatusString(const grpc::Status& status);

// A status and, when OK, the response.
template <typename T>
struct Result {
  grpc::Status status;
  T value;
  bool ok() const { return status.ok(); }
};

// Parses a text-format proto or fails the test.
template <typename T>
T ParseText(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message))
      << "bad text proto: " << text;
  return message;
}

// Messages equal field by field; prints both on failure.
::testing::AssertionResult ProtoEqual(const google::protobuf::Message& a,
                                      const google::protobuf::Message& b);

// Sets a duration in milliseconds.
void SetMillis(google::protobuf::Duration* d, int64_t ms);
int64_t Millis(const google::protobuf::Duration& d);

v1::Target MakeTarget(const std::string& address, std::optional<uint32_t> weight = std::nullopt,
                      const std::string& zone = "");

// Base fixture: a picker-server started once per suite.
class PickerServerTest : public ::testing::Test {
 public:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

 protected:
  // Extra server flags of a suite: override in a derived fixture by defining
  // a static ServerOptions SuiteOptions() and calling StartServer() from its
  // own SetUpTestSuite.
  static void StartServer(const ServerOptions& options);
  static void StopServer();

  void SetUp() override;
  void TearDown() override;

  static ServerProcess* server() { return server_.get(); }

  // A fresh upstream name: "<prefix>-<test name>-<counter>", valid chars only.
  std::string NewName(const std::string& prefix = "u");

  // --- Admin ---
  Result<v1::Upstream> CreateUpstream(const v1::Upstream& upstream);
  Result<v1::Upstream> CreateUpstreamText(const std::string& text);
  Result<v1::Upstream> GetUpstream(const std::string& name);
  Result<v1::ListUpstreamsResponse> ListUpstreams();
  Result<v1::Upstream> UpdateUpstream(const v1::Upstream& upstream);
  grpc::Status DeleteUpstream(const std::string& name);
  Result<v1::Target> PutTarget(const std::string& upstream, const v1::Target& target);
  grpc::Status DeleteTarget(const std::string& upstream, const std::string& address);
  Result<v1::ReplaceTargetsResponse> ReplaceTargets(const std::string& upstream,
                                                    const std::vector<v1::Target>& targets);
  Result<v1::ListTargetsResponse> ListTargets(const std::string& upstream);
  Result<v1::SetTargetHealthResponse> SetTargetHealth(
      const std::string& upstream, const std::string& address,
      v1::SetTargetHealthRequest::Override override_value);
  Result<v1::UpstreamHealth> GetUpstreamHealth(const std::string& name);

  // --- Picker ---
  Result<v1::PickResponse> Pick(const v1::PickRequest& request);
  Result<v1::PickResponse> Pick(const std::string& upstream);
  Result<v1::ReleaseResponse> Release(
      const std::string& upstream, uint64_t lease_id,
      v1::ReleaseRequest::Outcome outcome = v1::ReleaseRequest::SUCCESS);

  // Creates an upstream from text proto (name filled in) and puts targets in
  // order; fails the test (fatally) on any error. Returns the name.
  std::string MakeUpstream(const std::string& lb_text, const std::vector<v1::Target>& targets,
                           const std::string& extra_text = "");

  // Picks `n` times, releasing each lease at once; returns picks per target.
  std::map<std::string, int> PickAndReleaseCounts(const v1::PickRequest& request, int n);

  // Sum of active_requests over the upstream's targets (-1 on error).
  int64_t TotalActive(const std::string& upstream);
  // active_requests per target address.
  std::map<std::string, uint64_t> ActiveByTarget(const std::string& upstream);
  // Polls until TotalActive(upstream) == want or the deadline passes.
  bool WaitForActive(const std::string& upstream, int64_t want,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Snapshot of everything stored about an upstream (config + targets +
  // health overrides visible through GetUpstreamHealth reasons), for
  // "nothing changed" checks.
  std::string StoredState(const std::string& upstream);

  static std::unique_ptr<grpc::ClientContext> Ctx(
      std::chrono::milliseconds timeout = std::chrono::seconds(10));

  static std::unique_ptr<ServerProcess> server_;
  static std::unique_ptr<v1::Admin::Stub> admin_;
  static std::unique_ptr<v1::Picker::Stub> picker_;
  static std::string start_error_;

 private:
  static int counter_;
};

// Matches a status code, printing the message on mismatch.
#define EXPECT_CODE(status, code_value)                          \
  EXPECT_EQ((status).error_code(), grpc::StatusCode::code_value) \
      << "status: " << ::picker::testing::StatusString(status)
#define ASSERT_CODE(status, code_value)                          \
  ASSERT_EQ((status).error_code(), grpc::StatusCode::code_value) \
      << "status: " << ::picker::testing::StatusString(status)
#define ASSERT_OK(status) ASSERT_CODE(status, OK)
#define EXPECT_OK(status) EXPECT_CODE(status, OK)

}  // namespace picker::testing

#endif  // PICKER_TESTS_INTEGRATION_TEST_UTIL_H_
