// A real picker-server child process for integration tests: started on
// loopback with ephemeral ports and a fresh data directory, its stderr drained
// by a thread and kept for failure reports.
#ifndef PICKER_TESTS_INTEGRATION_SERVER_PROCESS_H_
#define PICKER_TESTS_INTEGRATION_SERVER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

namespace picker::testing {

// Path of the picker-server binary under test.
const char* ServerPath();

struct ServerOptions {
  std::string listen = "127.0.0.1:0";
  std::string admin_listen = "127.0.0.1:0";
  std::string metrics_listen = "127.0.0.1:0";
  // Empty: a fresh temporary directory, removed when the process object dies.
  std::string data_dir;
  // Further flags, e.g. {"--metrics-per-target"}.
  std::vector<std::string> extra_args;
  // How long to wait for the "listening data=... admin=... metrics=..." line.
  std::chrono::milliseconds start_timeout{20000};
};

// How a child process ended.
struct ExitInfo {
  bool exited = false;        // true: normal exit with `code`.
  int code = -1;              // exit code when `exited`.
  int signal = 0;             // terminating signal otherwise.
  bool killed_by_us = false;  // SIGKILL fallback was needed.
  std::string ToString() const;
};

class ServerProcess {
 public:
  // Starts the server and waits until it reports its listeners. On failure
  // returns nullptr and describes why (including the captured log) in *error.
  static std::unique_ptr<ServerProcess> Start(const ServerOptions& options, std::string* error);

  // Starts the binary with exactly these options and waits for it to exit on
  // its own (e.g. a start-up failure). If it is still running after
  // `timeout`, it is killed and the result says so. *log gets its output.
  static ExitInfo RunToExit(const ServerOptions& options, std::chrono::milliseconds timeout,
                            std::string* log);

  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // SIGTERM, then waits up to `timeout` for exit; SIGKILL as a fallback.
  // Idempotent: later calls return the first result.
  ExitInfo Stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

  pid_t pid() const { return pid_; }
  const std::string& data_address() const { return data_address_; }
  const std::string& admin_address() const { return admin_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& data_dir() const { return data_dir_; }

  std::shared_ptr<grpc::Channel> data_channel() const { return data_channel_; }
  std::shared_ptr<grpc::Channel> admin_channel() const { return admin_channel_; }

  // Everything the server wrote to stdout/stderr so far.
  std::string Log() const;

  // HTTP GET of `path` on the metrics listener. Returns the body of a 200
  // response; otherwise nullopt with the reason in *error.
  std::optional<std::string> GetMetrics(std::string* error, const std::string& path = "/metrics");

 private:
  ServerProcess() = default;
  bool Launch(const ServerOptions& options, std::string* error);
  // Waits for the listening line or for the child to die.
  bool WaitForListening(std::chrono::milliseconds timeout, std::string* error);
  void ReaderLoop(int fd);
  // Non-blocking reap; true once the child has exited (info in exit_).
  bool Reap(bool block);

  pid_t pid_ = -1;
  bool owns_data_dir_ = false;
  std::string data_dir_;
  std::string data_address_, admin_address_, metrics_address_;
  std::shared_ptr<grpc::Channel> data_channel_, admin_channel_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;   // guarded by mu_
  bool eof_ = false;  // guarded by mu_
  std::thread reader_;

  std::optional<ExitInfo> exit_;
};

// Plain-socket HTTP/1.0 GET. `host_port` is "HOST:PORT" (IPv4 or [IPv6]).
// Returns the body when the status is 200.
std::optional<std::string> HttpGet(const std::string& host_port, const std::string& path,
                                   std::string* error,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A TCP socket bound and listening on 127.0.0.1 with an ephemeral port, to
// make a port busy. Closed on destruction.
class BoundSocket {
 public:
  BoundSocket();
  ~BoundSocket();
  BoundSocket(const BoundSocket&) = delete;
  BoundSocket& operator=(const BoundSocket&) = delete;
  bool ok() const { return fd_ >= 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace picker::testing

#endif  // PICKER_TESTS_INTEGRATION_SERVER_PROCESS_H_
