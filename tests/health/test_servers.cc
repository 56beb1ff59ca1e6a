#include "tests/health/test_servers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "picker/v1/picker.grpc.pb.h"

namespace picker::health::testing {
namespace {

// Binds a listening socket on loopback; `port` 0 picks a free one and is
// updated. Returns -1 on failure.
int Listen(bool ipv6, int* port) {
  const int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage storage{};
  socklen_t len;
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    a->sin6_port = htons(*port);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(*port);
    len = sizeof(*a);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), len) != 0 || listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  return fd;
}

// Waits up to `ms` for `fd` to be readable; false on timeout or `stop`.
bool Readable(int fd, int ms) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, ms) > 0;
}

}  // namespace

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return condition();
}

HttpServer::HttpServer(bool ipv6) : ipv6_(ipv6) {
  listen_fd_ = Listen(ipv6, &port_);
  if (listen_fd_ >= 0) thread_ = std::thread([this] { Loop(); });
}

HttpServer::~HttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  for (int fd : hung_) close(fd);
}

std::string HttpServer::address() const {
  return (ipv6_ ? "[::1]:" : "127.0.0.1:") + std::to_string(port_);
}

std::string HttpServer::last_path() const {
  std::lock_guard lock(mu_);
  return last_path_;
}

void HttpServer::Loop() {
  while (!stop_) {
    if (!Readable(listen_fd_, 10)) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
  }
}

void HttpServer::Serve(int fd) {
  std::string request;
  char buffer[1024];
  while (request.find("\r\n\r\n") == std::string::npos && Readable(fd, 1000)) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    request.append(buffer, n);
  }
  ++requests_;
  {
    // "GET /path HTTP/1.1"
    const size_t start = request.find(' ');
    const size_t end = request.find(' ', start + 1);
    std::lock_guard lock(mu_);
    if (start != std::string::npos && end != std::string::npos) {
      last_path_ = request.substr(start + 1, end - start - 1);
    }
  }
  int status = status_;
  switch (mode_.load()) {
    case Mode::kHang:
      ++bad_answers_;
      hung_.push_back(fd);
      return;
    case Mode::kFlap:
      if (flap_bad_.exchange(!flap_bad_.load())) status = 500;
      break;
    case Mode::kRespond:
      break;
  }
  if (status < 200 || status >= 400) ++bad_answers_;
  const std::string response = "HTTP/1.1 " + std::to_string(status) +
                               " Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  (void)!write(fd, response.data(), response.size());
  close(fd);
}

TcpListener::TcpListener() { Open(); }

TcpListener::~TcpListener() { Close(); }

std::string TcpListener::address() const { return "127.0.0.1:" + std::to_string(port_); }

void TcpListener::Open() {
  if (fd_ >= 0) return;
  fd_ = Listen(false, &port_);
  if (fd_ < 0) throw std::runtime_error("cannot listen");
  stop_ = false;
  thread_ = std::thread([this, fd = fd_] { Loop(fd); });
}

void TcpListener::Close() {
  if (fd_ < 0) return;
  stop_ = true;
  thread_.join();
  close(fd_);
  fd_ = -1;
}

void TcpListener::Loop(int fd) {
  while (!stop_) {
    if (!Readable(fd, 10)) continue;
    const int conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    ++accepts_;
    close(conn);
  }
}

GrpcHealthServer::GrpcHealthServer(int port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &port_);
  placeholder_ = std::make_unique<::picker::v1::Picker::Service>();
  builder.RegisterService(placeholder_.get());
  server_ = builder.BuildAndStart();
  if (!server_) throw std::runtime_error("cannot start the gRPC server");
}

GrpcHealthServer::~GrpcHealthServer() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

std::string GrpcHealthServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

void GrpcHealthServer::SetServing(bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(serving);
}

}  // namespace picker::health::testing
