// --log-format json through the real binary: every line picker-server writes
// to stderr, from start to SIGTERM, is one JSON object with the time (and its
// zone), the level and the message, and audit lines carry their fields as
// JSON fields, escapes undone. An unknown format stops start-up.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include "absl/strings/str_split.h"
#include "picker/version.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::google::protobuf::Struct;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class LogFormatJsonTest : public PickerServerTest {
 public:
  static void SetUpTestSuite() {
    ServerOptions options;
    options.extra_args = {"--log-format", "json"};
    StartServer(options);
  }
};

// 2026-12-05T04:50:11.883828+00:00: RFC 3339, microseconds, the zone's offset.
bool IsTimeWithZone(const std::string& time) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddddd+dd:dd";
  if (time.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == 'd'   ? std::isdigit(static_cast<unsigned char>(time[i])) != 0
                    : shape[i] == '+' ? (time[i] == '+' || time[i] == '-')
                                      : time[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

std::string Field(const Struct& record, const std::string& key) {
  auto it = record.fields().find(key);
  return it == record.fields().end() ? "<absent>" : it->second.string_value();
}

// Every line of the log, parsed; fails the test on a line that is not JSON.
std::vector<Struct> ParseLog(const std::string& log) {
  std::vector<Struct> records;
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    Struct record;
    const auto status = google::protobuf::util::JsonStringToMessage(std::string(line), &record);
    EXPECT_TRUE(status.ok()) << "not a JSON object: " << line << " (" << status.ToString() << ")";
    if (status.ok()) records.push_back(record);
  }
  return records;
}

const Struct* FindAudit(const std::vector<Struct>& records, const std::string& method,
                        const std::string& upstream) {
  for (const Struct& r : records) {
    if (Field(r, "event") == "audit" && Field(r, "method") == method &&
        Field(r, "upstream") == upstream) {
      return &r;
    }
  }
  return nullptr;
}

TEST_F(LogFormatJsonTest, EveryLineIsJsonAndAuditLinesHaveTheirFields) {
  ASSERT_NE(server(), nullptr) << start_error_;
  const std::string name = NewName();
  ASSERT_OK(CreateUpstream(ParseText<Upstream>("name: '" + name + "'")).status);
  // A refused write whose message holds quotes and a newline.
  const Result<v1::Target> bad = PutTarget(name, MakeTarget("bad\"\n"));
  ASSERT_CODE(bad.status, INVALID_ARGUMENT);
  // Stopped here, so that the drain and stop lines are checked too (the
  // suite's teardown then finds it stopped).
  const ExitInfo stopped = server()->Stop();
  EXPECT_TRUE(stopped.exited && stopped.code == 0) << stopped.ToString();
  const std::string log = server()->Log();
  const std::vector<Struct> records = ParseLog(log);
  ASSERT_GE(records.size(), 4u) << log;

  for (const Struct& r : records) {
    EXPECT_TRUE(IsTimeWithZone(Field(r, "time"))) << Field(r, "time");
    EXPECT_NE(Field(r, "level"), "<absent>");
    EXPECT_NE(Field(r, "msg"), "<absent>");
  }
  EXPECT_TRUE(std::any_of(records.begin(), records.end(), [](const Struct& r) {
    return Field(r, "msg").find("listening data=") != std::string::npos;
  })) << log;
  EXPECT_EQ(Field(records.back(), "msg"), "stopped");

  const Struct* created = FindAudit(records, "CreateUpstream", name);
  ASSERT_NE(created, nullptr) << log;
  EXPECT_EQ(Field(*created, "result"), "OK");
  EXPECT_EQ(Field(*created, "level"), "info");
  EXPECT_THAT(Field(*created, "peer"), StartsWith("ipv4:127.0.0.1:"));
  EXPECT_EQ(Field(*created, "error"), "<absent>");
  EXPECT_THAT(Field(*created, "msg"), StartsWith("audit method=CreateUpstream"));

  const Struct* refused = FindAudit(records, "PutTarget", name);
  ASSERT_NE(refused, nullptr) << log;
  EXPECT_EQ(Field(*refused, "result"), "INVALID_ARGUMENT");
  EXPECT_EQ(Field(*refused, "error"), bad.status.error_message())
      << "the error field is the status message, escapes undone";
}

TEST(LogFormatTest, UnknownFormatStopsStartUp) {
  ServerOptions options;
  options.extra_args = {"--log-format", "xml"};
  std::string log;
  const ExitInfo info = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(info.exited && info.code == 1) << info.ToString() << "\n" << log;
  EXPECT_THAT(log, HasSubstr("--log-format: must be text or json, got \"xml\""));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("listening data=")));
}

// An unknown --log-level used to turn every log line off, audit lines
// included; it now stops start-up, as an unknown --log-format does.
TEST(LogFormatTest, UnknownLevelStopsStartUp) {
  ServerOptions options;
  options.extra_args = {"--log-level", "verbose"};
  std::string log;
  const ExitInfo info = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(info.exited && info.code == 1) << info.ToString() << "\n" << log;
  EXPECT_THAT(log, HasSubstr("--log-level: must be trace, debug, info, warn, error, critical or "
                             "off, got \"verbose\""));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("listening data=")));
}

// --version prints the version CMake's project() sets, and --check-config
// validates a file without starting.
TEST(LogFormatTest, VersionAndCheckConfigExitWithoutStarting) {
  ServerOptions options;
  options.extra_args = {"--version"};
  std::string log;
  ExitInfo info = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(info.exited && info.code == 0) << info.ToString() << "\n" << log;
  EXPECT_THAT(log, StartsWith("picker-server " PICKER_VERSION "\n"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("build")));

  const std::string good = ::testing::TempDir() + "/check-good.yaml";
  const std::string bad = ::testing::TempDir() + "/check-bad.yaml";
  std::ofstream(good) << "upstreams:\n- name: u\n  targets:\n  - target: 10.0.0.1:80\n";
  std::ofstream(bad) << "upstreams:\n- name: u\n  leaseTtl: soon\n";
  options.extra_args = {"--check-config", good};
  info = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(info.exited && info.code == 0) << info.ToString() << "\n" << log;
  EXPECT_THAT(log, HasSubstr(good + ": valid, 1 upstreams"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("listening data=")));
  options.extra_args = {"--check-config", bad};
  info = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(info.exited && info.code == 1) << info.ToString() << "\n" << log;
  EXPECT_THAT(log, HasSubstr("check-bad.yaml:3: upstreams[0].leaseTtl: must be a duration"));
}

}  // namespace
}  // namespace picker::testing
