// Helpers shared by the fault tests: Prometheus text parsing, log line
// counting, polling, and a temporary directory that outlives a server
// process (for restarts on the same data directory).
#ifndef PICKER_TESTS_FAULT_FAULT_UTIL_H_
#define PICKER_TESTS_FAULT_FAULT_UTIL_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tests/integration/server_process.h"

namespace picker::testing {

// Sum of the samples of `metric` (exact family name, e.g.
// "picker_active_requests") whose label text contains every one of `labels`
// (e.g. `upstream="x"`). *matches gets how many samples matched.
double MetricSum(const std::string& text, const std::string& metric,
                 const std::vector<std::string>& labels, int* matches);

// Scrapes `server` and sums like MetricSum. nullopt (reason in *error) if the
// scrape failed or no sample matched.
std::optional<double> ScrapeMetric(ServerProcess& server, const std::string& metric,
                                   const std::vector<std::string>& labels, std::string* error);

// Lines of `log` that contain every one of `parts`.
std::vector<std::string> LinesWith(const std::string& log, const std::vector<std::string>& parts);

// Polls `done` every 20 ms until it is true or `timeout` passes; returns its
// last value.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout);

// A channel of its own (own connection), so that a test controls which calls
// share a transport with which.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address);

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace picker::testing

#endif  // PICKER_TESTS_FAULT_FAULT_UTIL_H_
