#include "bench/load/host.h"

#include <algorithm>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
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

// A fresh data directory under /tmp.
absl::StatusOr<std::string> MakeDataDir() {
  char dir_template[] = "/tmp/picker-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  return std::string(dir_template);
}

// The server's command line. Ports 0: the server binds free ports and
// prints them. Metrics on loopback too: a benchmark has no business
// listening on other interfaces.
std::vector<std::string> ServerCommand(const std::string& path, const std::string& data_dir,
                                       const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {path, "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0",
                                   "--metrics-listen=127.0.0.1:0", "--data-dir=" + data_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return args;
}

// Starts `args` in a child whose stdout and stderr go to `log_fd`; the
// child's pid.
absl::StatusOr<pid_t> ForkExec(std::vector<std::string> args, int log_fd) {
  // Built before the fork: the child may not allocate.
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
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
    // O_APPEND is not set on the shared descriptor; stdout and stderr share
    // its offset, so their lines do not overwrite each other.
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// The whole "listening data=..." line of `log`, once its newline is there;
// nullopt before.
std::optional<std::string> ListeningLine(const std::string& log) {
  const size_t at = log.find("listening data=");
  if (at == std::string::npos) return std::nullopt;
  const size_t eol = log.find('\n', at);
  if (eol == std::string::npos) return std::nullopt;
  const size_t begin = log.rfind('\n', at);
  const size_t from = begin == std::string::npos ? 0 : begin + 1;
  return log.substr(from, eol - from);
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
    absl::StatusOr<std::string> fresh = MakeDataDir();
    if (!fresh.ok()) return fresh.status();
    server->data_dir_ = *std::move(fresh);
  } else {
    server->data_dir_ = data_dir;
  }
  // From here on, an error return removes the directory and the log with
  // `server`.
  if (absl::Status s = server->OpenLog(); !s.ok()) return s;
  absl::StatusOr<pid_t> pid =
      ForkExec(ServerCommand(path, server->data_dir_, extra_args), server->log_fd_);
  if (!pid.ok()) return pid.status();
  server->pid_ = *pid;
  if (absl::Status s = server->WaitForPorts(path, timeout); !s.ok()) return s;
  return server;
}

absl::Status SpawnedServer::OpenLog() {
  // The server's output goes to a file, read only to find the listening
  // line and for error messages. Read from a pipe as it came, it woke a
  // thread of this process for every log line (each admin write logs an
  // audit line), taking CPU from the loops being measured. The file is on
  // tmpfs where there is one: the kernel's write-back of a file on disk
  // would slow the machine during the measurement.
  for (const char* dir : {"/dev/shm", "/tmp"}) {
    std::string log_template = absl::StrCat(dir, "/picker-bench-log-XXXXXX");
    const int log_fd = mkostemp(log_template.data(), O_CLOEXEC);
    if (log_fd >= 0) {
      log_fd_ = log_fd;
      log_path_ = log_template;
      return absl::OkStatus();
    }
  }
  return absl::InternalError(absl::StrCat("mkostemp: ", std::strerror(errno)));
}

absl::Status SpawnedServer::WaitForPorts(const std::string& path,
                                         std::chrono::milliseconds timeout) {
  // Polls the log until the listening line, the child's exit, or the timeout.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<std::string> line;
  while (!(line = ListeningLine(ReadLog()))) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exited before listening; its output:\n", RecentLog()));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(path, " did not report its ports within ",
                                                      timeout.count(), " ms; its output:\n",
                                                      RecentLog()));
    }
    usleep(10 * 1000);
  }
  data_ = FieldOf(*line, "data=");
  admin_ = FieldOf(*line, "admin=");
  metrics_ = FieldOf(*line, "metrics=");
  if (data_.empty() || admin_.empty()) {
    return absl::InternalError(absl::StrCat("cannot parse the listening line:\n", RecentLog()));
  }
  return absl::OkStatus();
}

std::string SpawnedServer::ReadLog() const {
  // The start of the log (where the listening line is) and its end (the
  // latest lines) are what callers look for; the middle may be cut.
  constexpr size_t kKeep = 64 * 1024;
  struct stat st {};
  if (fstat(log_fd_, &st) != 0) return "";
  const size_t size = static_cast<size_t>(st.st_size);
  auto read_at = [&](size_t offset, size_t length) {
    std::string out(length, '\0');
    const ssize_t n = pread(log_fd_, out.data(), length, static_cast<off_t>(offset));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
  };
  if (size <= 2 * kKeep) return read_at(0, size);
  return read_at(0, kKeep) + "\n...\n" + read_at(size - kKeep, kKeep);
}

std::string SpawnedServer::RecentLog() const {
  const std::string log = ReadLog();
  std::vector<absl::string_view> lines = absl::StrSplit(log, '\n', absl::SkipEmpty());
  const size_t from = lines.size() > kLogLines ? lines.size() - kLogLines : 0;
  return absl::StrJoin(lines.begin() + static_cast<std::ptrdiff_t>(from), lines.end(), "\n");
}

void SpawnedServer::KillNow() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (!log_path_.empty()) unlink(log_path_.c_str());
  log_path_.clear();
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
  if (log_fd_ >= 0) close(log_fd_);
  if (!log_path_.empty()) unlink(log_path_.c_str());
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
