// The standard process_* series of Prometheus client libraries, which
// prometheus-cpp does not provide, read from /proc/self at scrape time:
//
//   process_cpu_seconds_total       user + system CPU time
//   process_resident_memory_bytes   resident set size
//   process_open_fds                open file descriptors
//   process_max_fds                 the soft RLIMIT_NOFILE
//   process_start_time_seconds      start time, seconds since the Unix epoch
//
// Names, types and units are those of the Go and Python clients' process
// collectors, so dashboards and alerts written for them work unchanged. A
// value that cannot be read is left out of that scrape (never reported as 0).
#ifndef PICKER_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define PICKER_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <optional>
#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace picker::metrics {

// What /proc/self/stat says about this process.
struct ProcStat {
  double cpu_seconds = 0;       // utime + stime
  double start_after_boot = 0;  // seconds from boot to the process's start
  double resident_bytes = 0;    // rss pages times the page size
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so the fields are
// counted from the last ')'. nullopt if the text does not have them.
std::optional<ProcStat> ParseProcStat(const std::string& text, long ticks_per_second,
                                      long page_size);

// The "btime" line of /proc/stat: boot time, seconds since the epoch.
std::optional<double> ParseBootTime(const std::string& proc_stat);

class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Fixed for the life of the process: read once.
  std::optional<double> start_time_seconds_;
  long ticks_per_second_;
  long page_size_;
};

}  // namespace picker::metrics

#endif  // PICKER_SERVER_METRICS_PROCESS_COLLECTOR_H_
