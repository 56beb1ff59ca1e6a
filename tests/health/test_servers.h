// Real servers on loopback for the active health check tests: a tiny HTTP
// server whose answer the test changes, a TCP listener that can be closed
// and reopened on the same port, and a gRPC server whose health it flips.
#ifndef PICKER_TESTS_HEALTH_TEST_SERVERS_H_
#define PICKER_TESTS_HEALTH_TEST_SERVERS_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace picker::health::testing {

// Polls `condition` every few milliseconds until it holds or `timeout` ends.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// HTTP/1.1 on 127.0.0.1 (or [::1]), one request per connection.
class HttpServer {
 public:
  enum class Mode {
    kRespond,  // Answers status().
    kHang,     // Accepts, reads, never answers (until stopped).
    kFlap,     // Alternates status() and 500, starting with status().
  };

  explicit HttpServer(bool ipv6 = false);
  ~HttpServer();

  // False when the address family is not available here.
  bool ok() const { return listen_fd_ >= 0; }
  int port() const { return port_; }
  std::string address() const;  // Canonical host:port.

  void set_status(int status) { status_ = status; }
  void set_mode(Mode mode) { mode_ = mode; }
  // Requests received so far, and of those answered with a status outside
  // 200..399 (or not answered at all).
  int requests() const { return requests_; }
  int bad_answers() const { return bad_answers_; }
  std::string last_path() const;

 private:
  void Loop();
  void Serve(int fd);

  bool ipv6_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> status_{200};
  std::atomic<Mode> mode_{Mode::kRespond};
  std::atomic<int> requests_{0};
  std::atomic<int> bad_answers_{0};
  std::atomic<bool> flap_bad_{false};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string last_path_;
  std::vector<int> hung_;  // Connections kept open and silent.
  std::thread thread_;
};

// Accepts connections and closes them; Close() makes connects fail
// (refused), Open() listens on the same port again.
class TcpListener {
 public:
  TcpListener();
  ~TcpListener();

  int port() const { return port_; }
  std::string address() const;
  int accepts() const { return accepts_; }
  void Open();
  void Close();

 private:
  void Loop(int fd);

  int port_ = 0;
  int fd_ = -1;
  std::atomic<int> accepts_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A gRPC server with only the default health service.
class GrpcHealthServer {
 public:
  // `port` 0 picks a free one.
  explicit GrpcHealthServer(int port = 0);
  ~GrpcHealthServer();

  int port() const { return port_; }
  std::string address() const;
  void SetServing(bool serving);

 private:
  // gRPC builds no server without one synchronous service, and adds the
  // default health service only next to one: an unimplemented Picker.
  std::unique_ptr<grpc::Service> placeholder_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace picker::health::testing

#endif  // PICKER_TESTS_HEALTH_TEST_SERVERS_H_
