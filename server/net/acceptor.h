// picker's own accept loop for a gRPC listener: it binds and listens,
// accepts on a thread of its own, and hands each connection to a gRPC
// server (grpc::AddInsecureChannelFromFd in plaintext, an external
// connection acceptor with TLS), so that picker, not gRPC, decides what
// happens at the edges:
// - at `max_connections` open connections, a new one is closed at once
//   (counted), so the listeners never take every descriptor;
// - when accept fails for want of descriptors or memory (EMFILE, ENFILE,
//   ENOBUFS, ENOMEM), the loop waits a moment and accepts again, where
//   gRPC C++ 1.51's own loop stops accepting for good (grpc/grpc#20418).
//
//   auto acceptor = Acceptor::Listen({.address = "0.0.0.0:50051", .flag = "--listen",
//                                     .max_connections = 1000});
//   (*acceptor)->Start([server](int fd) { grpc::AddInsecureChannelFromFd(server, fd); });
//   ...
//   (*acceptor)->Stop();               // closes the listening socket
//
// Folder: server/net owns picker's sockets and the threads that accept on
// them. It uses core/ only; the caller hands connections to gRPC.
#ifndef PICKER_SERVER_NET_ACCEPTOR_H_
#define PICKER_SERVER_NET_ACCEPTOR_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace picker::net {

class Acceptor {
 public:
  struct Options {
    std::string address;  // host:port; port 0 binds a free one.
    std::string flag;     // Named in errors: "--listen".
    size_t max_connections = 1000;
    // Counters the loop keeps (may be null): connections open now, refused
    // at the limit, and accepts that failed for want of resources.
    std::atomic<int64_t>* open = nullptr;
    std::atomic<uint64_t>* refused = nullptr;
    std::atomic<uint64_t>* failures = nullptr;
  };

  // Binds and listens (a taken or bad address is an error naming the flag).
  static absl::StatusOr<std::unique_ptr<Acceptor>> Listen(Options options);
  ~Acceptor();  // Stops.

  // Gives an accepted connection (a non-blocking socket) to its server,
  // which owns it from then on.
  using HandOver = std::function<void(int fd)>;

  int port() const { return port_; }
  // The listening socket, or -1 once stopped.
  int listen_fd() const { return listen_fd_; }
  // Starts accepting; `hand_over` is called on the loop's thread until Stop.
  void Start(HandOver hand_over);
  // Stops accepting and closes the listening socket; connections already
  // handed over stay the server's.
  void Stop();

 private:
  Acceptor(Options options, int fd, int port);
  void Loop();
  // Accepts what is pending; false once accept failed for want of resources.
  bool AcceptPending();
  void Take(int fd);
  // Forgets the connections gRPC has closed.
  void Sweep();

  const Options options_;
  int listen_fd_;  // -1 once closed.
  const int port_;
  int wake_[2] = {-1, -1};  // A pipe that wakes the loop to stop.
  HandOver hand_over_;
  std::thread thread_;
  // Connections handed over, each as its descriptor and the socket's inode:
  // once gRPC closes one, its descriptor is gone or names another file.
  std::vector<std::pair<int, ino_t>> open_;
  std::chrono::steady_clock::time_point last_sweep_;
  uint64_t failures_logged_ = 0;
};

// The client's address of a call, as gRPC names peers ("ipv4:1.2.3.4:5678",
// "ipv6:[::1]:5678"). gRPC names a plaintext connection handed over by
// descriptor "fd:N"; for those, the address the accept loop saw. Other
// peers (TLS connections among them) come back as they are.
std::string PeerAddress(absl::string_view grpc_peer);

// True for a host that only this machine reaches ("127.0.0.1", "[::1]",
// "localhost", ...): the part of `address` ("host:port") before the port.
bool IsLoopbackAddress(absl::string_view address);

}  // namespace picker::net

#endif  // PICKER_SERVER_NET_ACCEPTOR_H_
