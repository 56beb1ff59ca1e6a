// A real picker-server child process for the client tests: loopback,
// ephemeral ports, a fresh data directory; its output drained by a thread.
#ifndef PICKER_TESTS_CLIENT_TEST_SERVER_H_
#define PICKER_TESTS_CLIENT_TEST_SERVER_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace picker::client_testing {

class TestServer {
 public:
  // Starts `binary` with --listen/--admin-listen/--metrics-listen 127.0.0.1:0,
  // a fresh --data-dir and `extra_args`, and waits for its "listening" line.
  // nullptr on failure, with the reason and the server's log in *error.
  static std::unique_ptr<TestServer> Start(const std::string& binary,
                                           const std::vector<std::string>& extra_args,
                                           std::string* error);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  // SIGTERM, wait up to `timeout`, SIGKILL after. The exit code, or -1 if it
  // was killed by a signal.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  const std::string& data_address() const { return data_address_; }
  const std::string& admin_address() const { return admin_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  std::string Log() const;

 private:
  TestServer() = default;
  void ReadLoop(int fd);

  pid_t pid_ = -1;
  int exit_code_ = -1;
  bool reaped_ = false;
  std::string data_dir_;
  std::string data_address_, admin_address_, metrics_address_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;   // guarded by mu_
  bool eof_ = false;  // guarded by mu_
  std::thread reader_;
};

// HTTP/1.0 GET on 127.0.0.1; the body of a 200 answer, nullopt otherwise.
std::optional<std::string> HttpGet(const std::string& host_port, const std::string& path);

// Runs a shell command; its exit status and combined output.
int RunCommand(const std::string& command, std::string* output);

}  // namespace picker::client_testing

#endif  // PICKER_TESTS_CLIENT_TEST_SERVER_H_
