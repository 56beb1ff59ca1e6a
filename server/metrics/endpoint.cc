#include "server/metrics/endpoint.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace picker::metrics {
namespace {

// Opens and closes a TCP connection to `address` ("host:port", where a
// wildcard host means this machine), to wake a listener blocked in poll.
void Poke(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return;
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return;
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)connect(fd, found->ai_addr, found->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(found);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& address,
                                                                        const Metrics& metrics) {
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  try {
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (--metrics-listen): ", e.what()));
  }
  for (const auto& collectable : metrics.collectables()) {
    endpoint->exposer_->RegisterCollectable(collectable);
  }
  const std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  endpoint->address_ =
      absl::StrCat(address.substr(0, address.rfind(':')), ":", ports.empty() ? 0 : ports.front());
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

void MetricsEndpoint::Stop() {
  if (!exposer_) return;
  std::atomic<bool> stopped{false};
  std::thread stop([this, &stopped] {
    exposer_.reset();
    stopped.store(true);
  });
  while (!stopped.load()) {
    Poke(address_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop.join();
}

}  // namespace picker::metrics
