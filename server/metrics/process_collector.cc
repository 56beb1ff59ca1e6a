#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "prometheus/client_metric.h"

namespace picker::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Fields of /proc/<pid>/stat counted from the one after the command name
// (field 3, the state, is index 0): see proc(5).
constexpr size_t kUtime = 14 - 3;
constexpr size_t kStime = 15 - 3;
constexpr size_t kStartTime = 22 - 3;
constexpr size_t kRss = 24 - 3;

std::optional<std::string> ReadAll(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Entries of /proc/self/fd, less the descriptor that reads the directory.
std::optional<double> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;
}

std::optional<double> MaxFds() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
  if (limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<double>(limit.rlim_cur);
}

void Add(std::vector<MetricFamily>& out, const char* name, const char* help, MetricType type,
         std::optional<double> value) {
  if (!value) return;
  MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = *value;
  } else {
    metric.gauge.value = *value;
  }
  family.metric.push_back(std::move(metric));
  out.push_back(std::move(family));
}

}  // namespace

std::optional<ProcStat> ParseProcStat(const std::string& text, long ticks_per_second,
                                      long page_size) {
  const size_t close = text.rfind(')');
  if (close == std::string::npos || ticks_per_second <= 0 || page_size <= 0) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(close + 1), ' ', absl::SkipWhitespace());
  uint64_t utime = 0, stime = 0, start = 0;
  int64_t rss = 0;
  if (fields.size() <= kRss || !absl::SimpleAtoi(fields[kUtime], &utime) ||
      !absl::SimpleAtoi(fields[kStime], &stime) || !absl::SimpleAtoi(fields[kStartTime], &start) ||
      !absl::SimpleAtoi(fields[kRss], &rss)) {
    return std::nullopt;
  }
  const double ticks = static_cast<double>(ticks_per_second);
  return ProcStat{.cpu_seconds = static_cast<double>(utime + stime) / ticks,
                  .start_after_boot = static_cast<double>(start) / ticks,
                  .resident_bytes = static_cast<double>(rss) * static_cast<double>(page_size)};
}

std::optional<double> ParseBootTime(const std::string& proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    if (!absl::ConsumePrefix(&line, "btime ")) continue;
    int64_t seconds = 0;
    if (absl::SimpleAtoi(line, &seconds)) return static_cast<double>(seconds);
  }
  return std::nullopt;
}

ProcessCollector::ProcessCollector()
    : ticks_per_second_(sysconf(_SC_CLK_TCK)), page_size_(sysconf(_SC_PAGESIZE)) {
  const std::optional<std::string> self = ReadAll("/proc/self/stat");
  const std::optional<std::string> system = ReadAll("/proc/stat");
  if (!self || !system) return;
  const std::optional<ProcStat> stat = ParseProcStat(*self, ticks_per_second_, page_size_);
  const std::optional<double> boot = ParseBootTime(*system);
  if (stat && boot) start_time_seconds_ = *boot + stat->start_after_boot;
}

std::vector<MetricFamily> ProcessCollector::Collect() const {
  std::optional<ProcStat> stat;
  if (const std::optional<std::string> text = ReadAll("/proc/self/stat")) {
    stat = ParseProcStat(*text, ticks_per_second_, page_size_);
  }
  std::vector<MetricFamily> out;
  Add(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
      MetricType::Counter, stat ? std::optional(stat->cpu_seconds) : std::nullopt);
  Add(out, "process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
      stat ? std::optional(stat->resident_bytes) : std::nullopt);
  Add(out, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge, OpenFds());
  Add(out, "process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
      MaxFds());
  Add(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
      MetricType::Gauge, start_time_seconds_);
  return out;
}

}  // namespace picker::metrics
