#include "tests/replicas/etcd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "tests/integration/server_process.h"

namespace picker::testing {
namespace {

int FreePort() {
  BoundSocket socket;
  return socket.port();  // Free a moment ago; etcd binds it next.
}

}  // namespace

bool EtcdCluster::Start(int members, std::string* error) {
  if (::access("/usr/bin/etcd", X_OK) != 0) {
    *error = "/usr/bin/etcd not found: run scripts/install-deps.sh (Debian's etcd-server)";
    return false;
  }
  const std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
  std::string initial;
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = "e" + std::to_string(i);
    m.client_port = FreePort();
    m.peer_port = FreePort();
    m.data_dir = base + "/picker-etcd-" + std::to_string(::getpid()) + "-" + m.name;
    std::filesystem::remove_all(m.data_dir);
    if (!initial.empty()) initial += ",";
    initial += m.name + "=http://127.0.0.1:" + std::to_string(m.peer_port);
    members_.push_back(m);
  }
  for (Member& m : members_) {
    const std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
    const std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
    m.pid = ::fork();
    if (m.pid == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl("/usr/bin/etcd", "etcd", "--name", m.name.c_str(), "--data-dir", m.data_dir.c_str(),
              "--listen-client-urls", client.c_str(), "--advertise-client-urls", client.c_str(),
              "--listen-peer-urls", peer.c_str(), "--initial-advertise-peer-urls", peer.c_str(),
              "--initial-cluster", initial.c_str(), "--heartbeat-interval", "50",
              "--election-timeout", "500", nullptr);
      ::_exit(127);
    }
  }
  for (int i = 0; i < 200; ++i) {
    if (Healthy()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *error = "etcd did not answer within 20 s";
  return false;
}

bool EtcdCluster::Healthy() const {
  // etcd's own health endpoint: {"health":"true"} once a leader exists.
  for (const Member& m : members_) {
    std::string error;
    std::optional<std::string> body = HttpGet("127.0.0.1:" + std::to_string(m.client_port),
                                              "/health", &error, std::chrono::seconds(1));
    if (body && body->find("\"true\"") != std::string::npos) return true;
  }
  return false;
}

std::string EtcdCluster::endpoints() const {
  std::string out;
  for (const Member& m : members_) {
    if (!out.empty()) out += ",";
    out += "http://127.0.0.1:" + std::to_string(m.client_port);
  }
  return out;
}

void EtcdCluster::Kill(int i) {
  if (members_[i].pid <= 0) return;
  ::kill(members_[i].pid, SIGKILL);
  ::waitpid(members_[i].pid, nullptr, 0);
  members_[i].pid = -1;
}

void EtcdCluster::Pause(int i) { ::kill(members_[i].pid, SIGSTOP); }
void EtcdCluster::Resume(int i) { ::kill(members_[i].pid, SIGCONT); }

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid > 0) ::kill(members_[i].pid, SIGCONT);
    Kill(i);
    std::filesystem::remove_all(members_[i].data_dir);
  }
}

}  // namespace picker::testing
