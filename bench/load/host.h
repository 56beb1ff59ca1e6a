// What picker-bench needs from the host, apart from gRPC: starting and
// stopping a picker-server, CPU accounting, and reading its /metrics.
#ifndef PICKER_BENCH_LOAD_HOST_H_
#define PICKER_BENCH_LOAD_HOST_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace picker::bench {

// A picker-server child on free loopback ports with a fresh data directory.
// It is killed if picker-bench dies (PR_SET_PDEATHSIG), so no run leaves a
// server behind.
class SpawnedServer {
 public:
  // Starts `path` and waits up to `timeout` for its "listening data=..."
  // line. `extra_args` are appended to the server's command line. The data
  // directory is `data_dir` if given (a stopped server's, see
  // ReleaseDataDir), else a fresh one; either way this server removes it.
  static absl::StatusOr<std::unique_ptr<SpawnedServer>> Start(
      const std::string& path, const std::vector<std::string>& extra_args,
      std::chrono::milliseconds timeout, const std::string& data_dir = "");
  // SIGTERM, then SIGKILL if the drain takes more than a few seconds; the
  // data directory is removed.
  ~SpawnedServer();

  // On an interrupted run: kills the server and removes its data directory
  // at once. Not thread-safe with the destructor; the caller then exits.
  void KillNow();

  // Hands the data directory over to the caller (for a restart on it): the
  // destructor then leaves it in place.
  std::string ReleaseDataDir() { return std::exchange(data_dir_, std::string()); }

  pid_t pid() const { return pid_; }
  const std::string& data_address() const { return data_; }
  const std::string& admin_address() const { return admin_; }
  const std::string& metrics_address() const { return metrics_; }
  // The last lines of the server's output, for error messages.
  std::string RecentLog() const;

 private:
  SpawnedServer() = default;
  // Creates the file the server's output goes to (log_fd_, log_path_).
  absl::Status OpenLog();
  // Waits for the started server's listening line and reads its ports.
  absl::Status WaitForPorts(const std::string& path, std::chrono::milliseconds timeout);
  std::string ReadLog() const;  // The output file's start and end.

  pid_t pid_ = -1;
  int log_fd_ = -1;       // The server's stdout and stderr, in a file
  std::string log_path_;  // removed with the server.
  std::string data_dir_;
  std::string data_, admin_, metrics_;
};

// CPU time used so far, in seconds.
double SelfCpuSeconds();
double ProcessCpuSeconds(pid_t pid);  // 0 if unknown.

// Machine-wide CPU time from /proc/stat, in seconds summed over cores.
struct MachineCpu {
  double busy = 0;
  double total = 0;
};
MachineCpu ReadMachineCpu();
std::string LoadAverage();  // The first three fields of /proc/loadavg.

// A plain HTTP/1.0 GET of http://address/path (loopback, bounded by a
// timeout); the body, or an error.
absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path,
                                    std::chrono::milliseconds timeout);

// Sum of a Prometheus text-format sample, e.g. "picker_pick_duration_seconds_sum",
// over all its label sets; 0 if absent.
double PrometheusSum(const std::string& text, const std::string& name);

// True for 127.0.0.1:PORT, localhost:PORT and [::1]:PORT: picker-bench only
// ever talks to this machine.
bool IsLoopback(const std::string& address);

}  // namespace picker::bench

#endif  // PICKER_BENCH_LOAD_HOST_H_
