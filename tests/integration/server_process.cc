#include "tests/integration/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#ifndef PICKER_SERVER_PATH
#error "PICKER_SERVER_PATH must be defined to the picker-server binary"
#endif

namespace picker::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/picker-integ-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return "";
  return std::string(buf.data());
}

// Splits "HOST:PORT" / "[V6]:PORT" into host and port.
bool SplitHostPort(const std::string& host_port, std::string* host, std::string* port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) return false;
  *host = host_port.substr(0, colon);
  *port = host_port.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return !host->empty() && !port->empty();
}

}  // namespace

const char* ServerPath() { return PICKER_SERVER_PATH; }

std::string ExitInfo::ToString() const {
  std::ostringstream out;
  if (exited) {
    out << "exited with code " << code;
  } else if (signal != 0) {
    out << "killed by signal " << signal << " (" << strsignal(signal) << ")";
  } else {
    out << "did not exit";
  }
  if (killed_by_us) out << " [SIGKILL sent by the test after the timeout]";
  return out.str();
}

std::unique_ptr<ServerProcess> ServerProcess::Start(const ServerOptions& options,
                                                    std::string* error) {
  std::unique_ptr<ServerProcess> process(new ServerProcess());
  if (!process->Launch(options, error)) return nullptr;
  if (!process->WaitForListening(options.start_timeout, error)) {
    process->Stop(std::chrono::milliseconds(2000));
    *error += "\n--- picker-server log ---\n" + process->Log();
    return nullptr;
  }
  grpc::ChannelArguments args;
  // Each channel its own subchannel pool, so tests never share connections
  // with a previous server that had the same port.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  process->data_channel_ =
      grpc::CreateCustomChannel(process->data_address_, grpc::InsecureChannelCredentials(), args);
  process->admin_channel_ =
      grpc::CreateCustomChannel(process->admin_address_, grpc::InsecureChannelCredentials(), args);
  const auto deadline = std::chrono::system_clock::now() + options.start_timeout;
  if (!process->data_channel_->WaitForConnected(deadline) ||
      !process->admin_channel_->WaitForConnected(deadline)) {
    *error = "cannot connect to the reported listeners data=" + process->data_address_ +
             " admin=" + process->admin_address_ + "\n--- picker-server log ---\n" + process->Log();
    process->Stop(std::chrono::milliseconds(2000));
    return nullptr;
  }
  return process;
}

ExitInfo ServerProcess::RunToExit(const ServerOptions& options, std::chrono::milliseconds timeout,
                                  std::string* log) {
  ServerProcess process;
  std::string error;
  if (!process.Launch(options, &error)) {
    *log = error;
    return ExitInfo{};
  }
  const auto deadline = Clock::now() + timeout;
  while (!process.Reap(false) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ExitInfo info;
  if (process.exit_) {
    info = *process.exit_;
  } else {
    kill(process.pid_, SIGKILL);
    process.Reap(true);
    info = *process.exit_;
    info.killed_by_us = true;
  }
  if (process.reader_.joinable()) process.reader_.join();
  *log = process.Log();
  return info;
}

bool ServerProcess::Launch(const ServerOptions& options, std::string* error) {
  if (options.data_dir.empty()) {
    data_dir_ = MakeTempDir();
    if (data_dir_.empty()) {
      *error = std::string("mkdtemp: ") + strerror(errno);
      return false;
    }
    owns_data_dir_ = true;
  } else {
    data_dir_ = options.data_dir;
  }

  std::vector<std::string> args = {ServerPath(),           "--listen",           options.listen,
                                   "--admin-listen",       options.admin_listen, "--metrics-listen",
                                   options.metrics_listen, "--data-dir",         data_dir_};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are made.
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *error = std::string("pipe2: ") + strerror(errno);
    return false;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    // The server must not outlive a crashed test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execv(argv[0], argv.data());
    static const char kMsg[] = "exec of picker-server failed\n";
    (void)!write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    _exit(127);
  }
  close(fds[1]);
  pid_ = pid;
  reader_ = std::thread([this, fd = fds[0]] { ReaderLoop(fd); });
  return true;
}

void ServerProcess::ReaderLoop(int fd) {
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (n <= 0) {
      eof_ = true;
      cv_.notify_all();
      break;
    }
    log_.append(buf, static_cast<size_t>(n));
    cv_.notify_all();
  }
  close(fd);
}

namespace {

// The value of `key` ("data=") in the line of `log` that starts at `line`,
// up to the next space or the end of the line.
std::string FieldOf(const std::string& log, size_t line, size_t end, const char* key) {
  const size_t at = log.find(key, line);
  if (at == std::string::npos || at >= end) return "";
  const size_t from = at + std::strlen(key);
  const size_t to = std::min(log.find(' ', from), end);
  return log.substr(from, to - from);
}

}  // namespace

bool ServerProcess::WaitForListening(std::chrono::milliseconds timeout, std::string* error) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // "... listening data=ADDR admin=ADDR metrics=ADDR ...", once the line
    // is whole.
    const size_t line = log_.find("listening data=");
    const size_t end = line == std::string::npos ? line : log_.find('\n', line);
    if (end != std::string::npos) {
      data_address_ = FieldOf(log_, line, end, "data=");
      admin_address_ = FieldOf(log_, line, end, "admin=");
      metrics_address_ = FieldOf(log_, line, end, "metrics=");
      return true;
    }
    if (eof_) {
      lock.unlock();
      Reap(true);
      *error = "picker-server exited before listening: " +
               (exit_ ? exit_->ToString() : std::string("unknown status"));
      return false;
    }
    if (Clock::now() >= deadline) {
      *error = "picker-server did not print 'listening data=... admin=... metrics=...' within " +
               std::to_string(timeout.count()) + " ms";
      return false;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

bool ServerProcess::Reap(bool block) {
  if (exit_) return true;
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  ExitInfo info;
  if (r == pid_) {
    if (WIFEXITED(status)) {
      info.exited = true;
      info.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      info.signal = WTERMSIG(status);
    }
  }
  exit_ = info;
  return true;
}

ExitInfo ServerProcess::Stop(std::chrono::milliseconds timeout) {
  if (!exit_ && pid_ > 0) {
    data_channel_.reset();
    admin_channel_.reset();
    kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + timeout;
    while (!Reap(false) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exit_) {
      kill(pid_, SIGKILL);
      Reap(true);
      exit_->killed_by_us = true;
    }
  }
  if (reader_.joinable()) reader_.join();
  return exit_.value_or(ExitInfo{});
}

ServerProcess::~ServerProcess() {
  Stop(std::chrono::milliseconds(5000));
  if (owns_data_dir_ && !data_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

std::string ServerProcess::Log() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

std::optional<std::string> ServerProcess::GetMetrics(std::string* error, const std::string& path) {
  return HttpGet(metrics_address_, path, error);
}

std::optional<std::string> HttpGet(const std::string& host_port, const std::string& path,
                                   std::string* error, std::chrono::milliseconds timeout) {
  std::string host, port;
  if (!SplitHostPort(host_port, &host, &port)) {
    *error = "bad address " + host_port;
    return std::nullopt;
  }
  // A wildcard listener is reached on loopback.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result); rc != 0) {
    *error = "getaddrinfo(" + host_port + "): " + gai_strerror(rc);
    return std::nullopt;
  }
  const int fd = socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(result);
    *error = std::string("socket: ") + strerror(errno);
    return std::nullopt;
  }
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const int connected = connect(fd, result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  if (connected != 0) {
    *error = "connect(" + host_port + "): " + strerror(errno);
    close(fd);
    return std::nullopt;
  }
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = std::string("send: ") + strerror(errno);
      close(fd);
      return std::nullopt;
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[8192];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::string("recv: ") + strerror(errno);
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const auto header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    *error = "malformed HTTP response: " + response.substr(0, 200);
    return std::nullopt;
  }
  const std::string status_line = response.substr(0, response.find("\r\n"));
  // "HTTP/1.x 200 OK"
  const auto sp = status_line.find(' ');
  if (sp == std::string::npos || status_line.compare(sp + 1, 3, "200") != 0) {
    *error = "HTTP status: " + status_line;
    return std::nullopt;
  }
  std::string body = response.substr(header_end + 4);
  // prometheus-cpp answers HTTP/1.0 requests without chunking; decode anyway
  // if a server chunks.
  const std::string headers = response.substr(0, header_end);
  std::string lower_headers = headers;
  for (auto& c : lower_headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower_headers.find("transfer-encoding: chunked") != std::string::npos) {
    std::string decoded;
    size_t pos = 0;
    while (pos < body.size()) {
      const auto eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const size_t size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
      if (size == 0) break;
      decoded.append(body, eol + 2, size);
      pos = eol + 2 + size + 2;
    }
    body = std::move(decoded);
  }
  return body;
}

BoundSocket::BoundSocket() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd_, 4) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  port_ = ntohs(addr.sin_port);
}

BoundSocket::~BoundSocket() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace picker::testing
