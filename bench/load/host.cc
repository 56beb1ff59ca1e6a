#include "bench/load/host.h"

#include <algorithm>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace picker::bench {
namespace {

constexpr size_t kLogLines = 40;

// The value after `key` ("data=") up to the next space, or "".
std::string FieldOf(const std::string& line, const std::string& key) {
  const size_t at = line.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size();
  const size_t end = line.find_first_of(" \r\n\x1b", start);
  return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpawnedServer>> SpawnedServer::Start(
    const std::string& path, const std::vector<std::string>& extra_args,
    std::chrono::milliseconds timeout, const std::string& data_dir) {
  if (access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("--spawn-server ", path, ": not an executable"));
  }
  std::unique_ptr<SpawnedServer> server(new SpawnedServer());
  if (data_dir.empty()) {
    char dir_template[] = "/tmp/picker-bench-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
    }
    server->data_dir_ = dir_template;
  } else {
    server->data_dir_ = data_dir;
  }

  // Ports 0: the server binds free ports and prints them. Metrics on
  // loopback too: a benchmark has no business listening on other interfaces.
  std::vector<std::string> args = {path, "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0",
                                   "--metrics-listen=127.0.0.1:0",
                                   "--data-dir=" + server->data_dir_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec. picker-bench
    // blocks SIGINT and SIGTERM for its signal thread; the server must not
    // inherit that mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // The parent died before prctl.
    dup2(fds[1], STDERR_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  server->pid_ = pid;
  server->stderr_fd_ = fds[0];

  // Reads stderr until the listening line, the child's exit, or the timeout.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string pending;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(path, " did not report its ports within ",
                                                      timeout.count(), " ms; its output:\n",
                                                      server->RecentLog()));
    }
    pollfd p{server->stderr_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(server->stderr_fd_, buf, sizeof(buf));
    if (n <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exited before listening; its output:\n", server->RecentLog()));
    }
    pending.append(buf, static_cast<size_t>(n));
    size_t eol;
    bool found = false;
    while ((eol = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, eol);
      pending.erase(0, eol + 1);
      {
        std::lock_guard lock(server->log_mu_);
        server->log_.push_back(line);
        if (server->log_.size() > kLogLines) server->log_.pop_front();
      }
      if (absl::StrContains(line, "listening data=")) {
        server->data_ = FieldOf(line, "data=");
        server->admin_ = FieldOf(line, "admin=");
        server->metrics_ = FieldOf(line, "metrics=");
        found = true;
      }
    }
    if (found) break;
  }
  if (server->data_.empty() || server->admin_.empty()) {
    return absl::InternalError(
        absl::StrCat("cannot parse the listening line:\n", server->RecentLog()));
  }
  server->drainer_ = std::thread([s = server.get()] { s->Drain(); });
  return server;
}

void SpawnedServer::Drain() {
  char buf[4096];
  std::string pending;
  while (true) {
    const ssize_t n = read(stderr_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    pending.append(buf, static_cast<size_t>(n));
    size_t eol;
    std::lock_guard lock(log_mu_);
    while ((eol = pending.find('\n')) != std::string::npos) {
      log_.push_back(pending.substr(0, eol));
      pending.erase(0, eol + 1);
      if (log_.size() > kLogLines) log_.pop_front();
    }
  }
}

std::string SpawnedServer::RecentLog() const {
  std::lock_guard lock(log_mu_);
  return absl::StrJoin(log_, "\n");
}

void SpawnedServer::KillNow() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (!data_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir_, ignored);
    data_dir_.clear();
  }
}

SpawnedServer::~SpawnedServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    bool reaped = false;
    // The server drains in-flight calls (bounded by its --drain-timeout-ms);
    // give it a little more, then kill it.
    for (int i = 0; i < 100 && !reaped; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped = true;
      } else {
        usleep(100 * 1000);
      }
    }
    if (!reaped) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  // The pipe's write end closed with the child, so the drainer ends.
  if (drainer_.joinable()) drainer_.join();
  if (stderr_fd_ >= 0) close(stderr_fd_);
  if (!data_dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir_, ignored);
  }
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec * 1e-6;
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces; fields are counted after it.
  const size_t close = contents.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(contents.substr(close + 2), ' ');
  // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
  if (fields.size() < 13) return 0;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime)) return 0;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

MachineCpu ReadMachineCpu() {
  std::ifstream in("/proc/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
  MachineCpu cpu;
  // cpu user nice system idle iowait irq softirq steal ...
  for (size_t i = 1; i < fields.size() && i <= 8; ++i) {
    double v = 0;
    if (!absl::SimpleAtod(fields[i], &v)) continue;
    cpu.total += v;
    if (i != 4 && i != 5) cpu.busy += v;
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  cpu.busy /= tick;
  cpu.total /= tick;
  return cpu;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path,
                                    std::chrono::milliseconds timeout) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("bad address ", address));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // Loopback only, whatever the host says.
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect ", address, ": ", std::strerror(errno)));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", address, "\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("short write");
  }
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = out.find("\r\n\r\n");
  if (body == std::string::npos) return absl::UnavailableError("no HTTP body");
  return out.substr(body + 4);
}

double PrometheusSum(const std::string& text, const std::string& name) {
  double total = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, name)) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;  // Another metric with this prefix.
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space != std::string::npos && absl::SimpleAtod(line.substr(space + 1), &v)) total += v;
  }
  return total;
}

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.0.0.1:") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

}  // namespace picker::bench
