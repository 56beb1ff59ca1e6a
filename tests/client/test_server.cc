#include "tests/client/test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>

namespace picker::client_testing {

std::unique_ptr<TestServer> TestServer::Start(const std::string& binary,
                                              const std::vector<std::string>& extra_args,
                                              std::string* error) {
  std::unique_ptr<TestServer> server(new TestServer());
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/picker-client-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    *error = std::string("mkdtemp: ") + strerror(errno);
    return nullptr;
  }
  server->data_dir_ = pattern;
  std::vector<std::string> args = {binary,           "--listen",    "127.0.0.1:0",
                                   "--admin-listen", "127.0.0.1:0", "--metrics-listen",
                                   "127.0.0.1:0",    "--data-dir",  server->data_dir_};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *error = std::string("pipe2: ") + strerror(errno);
    return nullptr;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    close(fds[0]);
    close(fds[1]);
    return nullptr;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a crashed test
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  server->pid_ = pid;
  server->reader_ = std::thread([s = server.get(), fd = fds[0]] { s->ReadLoop(fd); });

  static const std::regex kListening(R"(listening data=(\S+) admin=(\S+) metrics=(\S+))");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::unique_lock lock(server->mu_);
  for (;;) {
    std::smatch m;
    if (std::regex_search(server->log_, m, kListening)) {
      server->data_address_ = m[1];
      server->admin_address_ = m[2];
      server->metrics_address_ = m[3];
      return server;
    }
    if (server->eof_ || std::chrono::steady_clock::now() >= deadline) {
      *error = std::string(server->eof_ ? "picker-server exited before listening"
                                        : "picker-server did not print its listening line") +
               "\n--- log ---\n" + server->log_;
      lock.unlock();
      server->Stop(std::chrono::seconds(2));
      return nullptr;
    }
    server->cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
}

void TestServer::ReadLoop(int fd) {
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mu_);
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

int TestServer::Stop(std::chrono::milliseconds timeout) {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(pid_, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (r == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    reaped_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  if (reader_.joinable()) reader_.join();
  return exit_code_;
}

TestServer::~TestServer() {
  Stop();
  std::error_code ec;
  if (!data_dir_.empty()) std::filesystem::remove_all(data_dir_, ec);
}

std::string TestServer::Log() const {
  std::lock_guard lock(mu_);
  return log_;
}

std::optional<std::string> HttpGet(const std::string& host_port, const std::string& path) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return std::nullopt;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + host_port + "\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string response;
  char buf[8192];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  const auto body = response.find("\r\n\r\n");
  if (response.compare(0, 12, "HTTP/1.0 200") != 0 &&
      response.compare(0, 12, "HTTP/1.1 200") != 0) {
    return std::nullopt;
  }
  if (body == std::string::npos) return std::nullopt;
  return response.substr(body + 4);
}

int RunCommand(const std::string& command, std::string* output) {
  output->clear();
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace picker::client_testing
