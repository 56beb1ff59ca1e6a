// The process_* series: /proc parsing on crafted text, and a scrape of this
// very test process checked against what the kernel says about it.
#include "server/metrics/process_collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <string>

namespace picker::metrics {
namespace {

using ::testing::DoubleEq;
using ::testing::Optional;

// Fields 3 to 24 of a /proc/<pid>/stat line: utime 250, stime 150,
// starttime 1200 ticks, rss 300 pages.
constexpr char kTail[] =
    " S 1 2 3 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 4 0 1200 123456789 300 "
    "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

TEST(ParseProcStatTest, ReadsCpuStartAndResidentMemory) {
  auto stat = ParseProcStat(std::string("1234 (picker-server)") + kTail, 100, 4096);
  ASSERT_TRUE(stat.has_value());
  EXPECT_THAT(stat->cpu_seconds, DoubleEq(4.0));
  EXPECT_THAT(stat->start_after_boot, DoubleEq(12.0));
  EXPECT_THAT(stat->resident_bytes, DoubleEq(300.0 * 4096));
}

TEST(ParseProcStatTest, CommandNameWithSpacesAndParentheses) {
  auto stat = ParseProcStat(std::string("1234 (a) b (c))") + kTail, 100, 4096);
  ASSERT_TRUE(stat.has_value());
  EXPECT_THAT(stat->cpu_seconds, DoubleEq(4.0));
}

TEST(ParseProcStatTest, RejectsWhatIsNotAStatLine) {
  EXPECT_FALSE(ParseProcStat("", 100, 4096).has_value());
  EXPECT_FALSE(ParseProcStat("1234 (x) S 1 2 3", 100, 4096).has_value());
  EXPECT_FALSE(ParseProcStat(std::string("1234 (x)") + kTail, 0, 4096).has_value());
  std::string bad = std::string("1234 (x)") + kTail;
  bad.replace(bad.find(" 250 "), 5, " x50 ");
  EXPECT_FALSE(ParseProcStat(bad, 100, 4096).has_value());
}

TEST(ParseBootTimeTest, ReadsTheBtimeLine) {
  EXPECT_THAT(ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"),
              Optional(DoubleEq(1700000000.0)));
  EXPECT_FALSE(ParseBootTime("cpu 1 2 3\n").has_value());
}

TEST(ProcessCollectorTest, ScrapesThisProcess) {
  std::map<std::string, prometheus::MetricFamily> families;
  for (auto& f : ProcessCollector().Collect()) families[f.name] = f;
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    ASSERT_EQ(families.count(name), 1u) << name;
    ASSERT_EQ(families[name].metric.size(), 1u) << name;
  }
  EXPECT_EQ(families["process_cpu_seconds_total"].type, prometheus::MetricType::Counter);
  EXPECT_GE(families["process_cpu_seconds_total"].metric[0].counter.value, 0);
  EXPECT_GT(families["process_resident_memory_bytes"].metric[0].gauge.value, 1 << 20);
  const double open = families["process_open_fds"].metric[0].gauge.value;
  const double max = families["process_max_fds"].metric[0].gauge.value;
  EXPECT_GE(open, 3);  // stdin, stdout, stderr at least
  EXPECT_LT(open, max);
  // A descriptor opened now is counted.
  const int fd = dup(2);
  ASSERT_GE(fd, 0);
  for (auto& f : ProcessCollector().Collect()) {
    if (f.name == "process_open_fds") {
      EXPECT_EQ(f.metric[0].gauge.value, open + 1);
    }
  }
  close(fd);
  const double start = families["process_start_time_seconds"].metric[0].gauge.value;
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 600) << "this test process started more than 10 minutes ago?";
}

}  // namespace
}  // namespace picker::metrics
