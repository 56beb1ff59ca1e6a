#include "server/net/acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/strip.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/core/thread_name.h"
#include "spdlog/spdlog.h"

namespace picker::net {
namespace {

// How often the loop forgets closed connections when nothing happens, and
// how long it waits after accept failed for want of resources.
constexpr int kSweepMillis = 1000;
constexpr int kRetryMillis = 100;
constexpr std::chrono::milliseconds kSweepAtLimit(50);

// Splits "host:port" ("[v6]:port" too); the host without brackets.
bool SplitHostPort(absl::string_view address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return false;
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = std::string(h);
  *port = std::string(address.substr(colon + 1));
  return !port->empty();
}

absl::Status ListenError(const Acceptor::Options& options, absl::string_view why) {
  return absl::UnavailableError(
      absl::StrCat("cannot listen on ", options.address, " (", options.flag, "): ", why));
}

// A listening socket on the first address `host:port` resolves to. An IPv6
// wildcard also takes IPv4, as gRPC's own listener does.
absl::StatusOr<int> BindAndListen(const Acceptor::Options& options) {
  std::string host, port;
  int number = -1;
  if (!SplitHostPort(options.address, &host, &port)) {
    return ListenError(options, "not host:port");
  }
  // getaddrinfo takes 99999 and binds it modulo 65536.
  if (!absl::SimpleAtoi(port, &number) || number < 0 || number > 65535) {
    return ListenError(options, "the port must be 0..65535");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return ListenError(options, ::gai_strerror(rc));
  }
  // A name with both kinds of address ("localhost") binds its IPv4 one:
  // clients that resolve the name try every address.
  std::vector<addrinfo*> candidates;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) candidates.push_back(a);
  std::stable_partition(candidates.begin(), candidates.end(),
                        [](const addrinfo* a) { return a->ai_family == AF_INET; });
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* a : candidates) {
    if (fd >= 0) break;
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    const int one = 1, zero = 0;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return ListenError(options, error);
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t size = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size) != 0) return 0;
  if (bound.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

// The address of each connection handed over, by descriptor. A descriptor
// is not reused while its connection is open, so a call on it finds its
// own entry; the accept loops overwrite an entry when the number is reused.
struct PeerTable {
  std::mutex mu;
  absl::flat_hash_map<int, std::string> by_fd;  // Guarded by mu.
};

PeerTable& Peers() {
  static PeerTable* table = new PeerTable();
  return *table;
}

// gRPC's spelling of a socket's remote address.
std::string RemoteAddress(int fd) {
  sockaddr_storage peer{};
  socklen_t size = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &size) != 0) return "";
  char host[INET6_ADDRSTRLEN] = {};
  if (peer.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      return absl::StrCat("ipv4:", host + 7, ":", ntohs(a->sin6_port));  // "::ffff:" dropped.
    }
    return absl::StrCat("ipv6:[", host, "]:", ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
  ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
  return absl::StrCat("ipv4:", host, ":", ntohs(a->sin_port));
}

bool OutOfResources(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Acceptor>> Acceptor::Listen(Options options) {
  absl::StatusOr<int> fd = BindAndListen(options);
  if (!fd.ok()) return fd.status();
  const int port = BoundPort(*fd);
  return std::unique_ptr<Acceptor>(new Acceptor(std::move(options), *fd, port));
}

Acceptor::Acceptor(Options options, int fd, int port)
    : options_(std::move(options)), listen_fd_(fd), port_(port) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
}

Acceptor::~Acceptor() {
  Stop();
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

void Acceptor::Start(HandOver hand_over) {
  hand_over_ = std::move(hand_over);
  thread_ = std::thread([this] { Loop(); });
}

void Acceptor::Stop() {
  if (thread_.joinable()) {
    const char byte = 0;
    (void)!::write(wake_[1], &byte, 1);
    thread_.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void Acceptor::Loop() {
  core::NameThisThread("accept");
  int wait = kSweepMillis;
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    // After a failed accept, the listening socket stays readable (the
    // connection is still queued): wait without watching it.
    const int watched = wait == kRetryMillis ? 1 : 2;
    pollfd* first = watched == 2 ? &fds[0] : &fds[1];
    const int ready = ::poll(first, watched, wait);
    if (fds[1].revents != 0) return;
    // Closed connections are forgotten once a second (and at the limit):
    // a sweep costs one fstat per open connection.
    if (std::chrono::steady_clock::now() - last_sweep_ >= std::chrono::milliseconds(kSweepMillis)) {
      Sweep();
    }
    if (ready > 0 || wait == kRetryMillis) {
      wait = AcceptPending() ? kSweepMillis : kRetryMillis;
    }
  }
}

bool Acceptor::AcceptPending() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Take(fd);
      continue;
    }
    const int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) return true;
    if (error == EINTR || error == ECONNABORTED || error == EPROTO || error == EPERM) continue;
    if (options_.failures != nullptr) options_.failures->fetch_add(1, std::memory_order_relaxed);
    // Logged at the first failure and then every 100th, so that a long
    // shortage does not flood the log.
    if (failures_logged_++ % 100 == 0) {
      spdlog::error("{} {}: cannot accept a connection: {}; accepting again in {} ms{}",
                    options_.flag, options_.address, std::strerror(error), kRetryMillis,
                    OutOfResources(error) ? " (raise the descriptor limit or lower "
                                            "--max-connections)"
                                          : "");
    }
    return false;
  }
}

void Acceptor::Take(int fd) {
  // At the limit, forget closed connections first; during a flood at most
  // every 50 ms, so that refusing stays cheap.
  const auto now = std::chrono::steady_clock::now();
  if (open_.size() >= options_.max_connections && now - last_sweep_ > kSweepAtLimit) Sweep();
  if (open_.size() >= options_.max_connections) {
    ::close(fd);
    if (options_.refused != nullptr) options_.refused->fetch_add(1, std::memory_order_relaxed);
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  open_.emplace_back(fd, st.st_ino);
  {
    PeerTable& peers = Peers();
    std::lock_guard lock(peers.mu);
    peers.by_fd[fd] = RemoteAddress(fd);
  }
  if (options_.open != nullptr) {
    options_.open->store(static_cast<int64_t>(open_.size()), std::memory_order_relaxed);
  }
  hand_over_(fd);
}

void Acceptor::Sweep() {
  last_sweep_ = std::chrono::steady_clock::now();
  open_.erase(std::remove_if(open_.begin(), open_.end(),
                             [](const std::pair<int, ino_t>& c) {
                               struct stat st {};
                               return ::fstat(c.first, &st) != 0 || st.st_ino != c.second ||
                                      !S_ISSOCK(st.st_mode);
                             }),
              open_.end());
  if (options_.open != nullptr) {
    options_.open->store(static_cast<int64_t>(open_.size()), std::memory_order_relaxed);
  }
}

std::string PeerAddress(absl::string_view grpc_peer) {
  int fd = -1;
  if (!absl::ConsumePrefix(&grpc_peer, "fd:") || !absl::SimpleAtoi(grpc_peer, &fd)) {
    return std::string(grpc_peer);
  }
  PeerTable& peers = Peers();
  std::lock_guard lock(peers.mu);
  auto it = peers.by_fd.find(fd);
  if (it == peers.by_fd.end() || it->second.empty()) return absl::StrCat("fd:", fd);
  return it->second;
}

bool IsLoopbackAddress(absl::string_view address) {
  std::string host, port;
  if (!SplitHostPort(address, &host, &port)) return false;
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace picker::net
