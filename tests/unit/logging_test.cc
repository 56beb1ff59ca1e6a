// The JSON log format's pieces on crafted input: escaping (bytes that are
// not UTF-8 included), audit-line parsing, the time's zone, bad formats.
#include "server/program/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <string>

namespace picker::program {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
using ::testing::Optional;

std::string Escaped(const std::string& text) {
  std::string out;
  AppendJsonEscaped(text, out);
  return out;
}

TEST(AppendJsonEscapedTest, QuotesBackslashesAndControlBytes) {
  EXPECT_EQ(Escaped("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(Escaped("l1\nl2\tx\r"), "l1\\nl2\\tx\\r");
  EXPECT_EQ(Escaped(std::string("\x01\x1f\x7f", 3)), "\\u0001\\u001f\\u007f");
}

TEST(AppendJsonEscapedTest, KeepsUtf8AndReplacesWhatIsNot) {
  EXPECT_EQ(Escaped("zürich ✓ 𝄞"), "zürich ✓ 𝄞");
  EXPECT_EQ(Escaped("a\xff"
                    "b"),
            "a\\ufffdb");
  EXPECT_EQ(Escaped("\xc3"), "\\ufffd");                        // cut short
  EXPECT_EQ(Escaped("\xc0\xaf"), "\\ufffd\\ufffd");             // overlong '/'
  EXPECT_EQ(Escaped("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // a surrogate
}

TEST(ParseAuditLineTest, FieldsInOrderWithEscapesUndone) {
  EXPECT_THAT(ParseAuditLine("audit method=PutTarget upstream=\"x\" result=INVALID_ARGUMENT "
                             "peer=ipv4:127.0.0.1:4 error=\"a \\\"b\\\"\\nc\""),
              Optional(Fields{{"method", "PutTarget"},
                              {"upstream", "x"},
                              {"result", "INVALID_ARGUMENT"},
                              {"peer", "ipv4:127.0.0.1:4"},
                              {"error", "a \"b\"\nc"}}));
  EXPECT_THAT(ParseAuditLine("audit upstream=\"\\xff\""), Optional(Fields{{"upstream", "\xff"}}));
}

TEST(ParseAuditLineTest, OtherLinesAreNotAuditLines) {
  EXPECT_FALSE(ParseAuditLine("listening data=1 admin=2").has_value());
  EXPECT_FALSE(ParseAuditLine("audit").has_value());
  EXPECT_FALSE(ParseAuditLine("audit method").has_value());
  EXPECT_FALSE(ParseAuditLine("audit upstream=\"unterminated").has_value());
  EXPECT_FALSE(ParseAuditLine("audit Method=x").has_value());
  EXPECT_FALSE(ParseAuditLine("audit a=\"x\"b=y").has_value());
}

TEST(FormatJsonRecordTest, TimeInTheLocalZoneAndAuditFields) {
  const char* old_tz = getenv("TZ");
  const std::string saved = old_tz ? old_tz : "";
  setenv("TZ", "XYZ-05:30", 1);  // POSIX: 5 h 30 min east of UTC
  tzset();
  const auto time = std::chrono::system_clock::time_point(std::chrono::microseconds(1500000));
  const std::string line = FormatJsonRecord(time, "info", "picker",
                                            "audit method=X upstream=\"u\" result=OK msg=forged");
  old_tz ? setenv("TZ", saved.c_str(), 1) : unsetenv("TZ");
  tzset();
  EXPECT_EQ(line,
            "{\"time\":\"1970-01-01T05:30:01.500000+05:30\",\"level\":\"info\","
            "\"logger\":\"picker\",\"msg\":\"audit method=X upstream=\\\"u\\\" result=OK "
            "msg=forged\",\"event\":\"audit\",\"method\":\"X\",\"upstream\":\"u\","
            "\"result\":\"OK\"}")
      << "an audit field named like a record key (msg) is dropped";
}

TEST(ConfigureLoggingTest, OnlyTextAndJson) {
  EXPECT_TRUE(ConfigureLogging("text").ok());
  const absl::Status bad = ConfigureLogging("JSON");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "--log-format: must be text or json, got \"JSON\"");
}

}  // namespace
}  // namespace picker::program
