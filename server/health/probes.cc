#include "server/health/probes.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace picker::health {
namespace {

using Clock = std::chrono::steady_clock;

ProbeResult Success() { return ProbeResult{ProbeResult::Kind::kSuccess, ""}; }
ProbeResult Failure(std::string detail) {
  return ProbeResult{ProbeResult::Kind::kFailure, std::move(detail)};
}
ProbeResult Timeout(std::string detail) {
  return ProbeResult{ProbeResult::Kind::kTimeout, std::move(detail)};
}

// The body of a health response is of no interest: drop it.
size_t DiscardBody(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

// Waits for a non-blocking connect on `fd` until `deadline`. Returns 0 on
// success, ETIMEDOUT when the deadline passed, or the connect error.
int FinishConnect(int fd, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return ETIMEDOUT;
    pollfd pfd{fd, POLLOUT, 0};
    const int n = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) continue;  // Re-check the deadline.
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return errno;
    return error;
  }
}

}  // namespace

const char* ResultName(ProbeResult::Kind kind) {
  switch (kind) {
    case ProbeResult::Kind::kSuccess:
      return "success";
    case ProbeResult::Kind::kFailure:
      return "failure";
    case ProbeResult::Kind::kTimeout:
      return "timeout";
  }
  return "failure";
}

bool SplitHostPort(absl::string_view address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon + 1 == address.size()) return false;
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) return false;
  *host = std::string(h);
  *port = std::string(address.substr(colon + 1));
  return true;
}

void InitHttpProbes() {
  // curl_global_init is not thread-safe; it must run once before any
  // handle is made on any thread.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

ProbeResult ProbeHttp(absl::string_view address, absl::string_view path,
                      absl::Span<const uint32_t> statuses, std::chrono::milliseconds timeout) {
  InitHttpProbes();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Failure("curl_easy_init failed");
  const std::string url =
      absl::StrCat("http://", address, absl::StartsWith(path, "/") ? "" : "/", path);
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  // Worker threads: no signals (curl would otherwise use SIGALRM for DNS
  // timeouts, which is unsafe with threads).
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  // The whole check, resolution and connect included, fits in the timeout.
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(timeout.count(), 1)));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(timeout.count(), 1)));
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  // A fresh connection per check, as Kong's checker: a check then also
  // proves that the target accepts connections.
  curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "picker-health-check");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &DiscardBody);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  // No proxy from the environment: checks go straight to the target.
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");

  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  if (code == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);

  if (code == CURLE_OPERATION_TIMEDOUT) {
    return Timeout(absl::StrCat("HTTP check timed out after ", timeout.count(), " ms"));
  }
  if (code != CURLE_OK) {
    return Failure(absl::StrCat("HTTP: ", error[0] != '\0' ? error : curl_easy_strerror(code)));
  }
  if (std::find(statuses.begin(), statuses.end(), static_cast<uint32_t>(status)) ==
      statuses.end()) {
    return Failure(absl::StrCat("HTTP status ", status));
  }
  return Success();
}

ProbeResult ProbeTcp(absl::string_view address, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  std::string host, port;
  if (!SplitHostPort(address, &host, &port)) return Failure(absl::StrCat("bad address ", address));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &addresses); rc != 0) {
    return Failure(absl::StrCat("resolve ", host, ": ", gai_strerror(rc)));
  }
  int last_error = 0;
  for (addrinfo* ai = addresses; ai != nullptr; ai = ai->ai_next) {
    if (Clock::now() >= deadline) {
      last_error = ETIMEDOUT;
      break;
    }
    const int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    int error = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      error = errno == EINPROGRESS ? FinishConnect(fd, deadline) : errno;
    }
    close(fd);
    if (error == 0) {
      freeaddrinfo(addresses);
      return Success();
    }
    last_error = error;
  }
  freeaddrinfo(addresses);
  if (last_error == ETIMEDOUT) {
    return Timeout(absl::StrCat("TCP connect timed out after ", timeout.count(), " ms"));
  }
  return Failure(absl::StrCat("TCP connect: ", std::strerror(last_error)));
}

GrpcHealthChannel::GrpcHealthChannel(std::string address) : address_(std::move(address)) {}

GrpcHealthChannel::~GrpcHealthChannel() = default;

ProbeResult GrpcHealthChannel::Check(std::chrono::milliseconds timeout) {
  // A channel in TRANSIENT_FAILURE would wait out gRPC's reconnect backoff
  // (up to two minutes) before it tries again, delaying the return of a
  // target that came back: start over with a fresh channel instead. Its own
  // subchannel pool keeps it from inheriting the old connection's backoff.
  if (channel_ == nullptr || channel_->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    // The target's name is resolved by gRPC's resolver at connect time.
    channel_ = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }
  ::grpc::health::v1::Health::Stub stub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  ::grpc::health::v1::HealthCheckRequest request;  // service "": the whole server.
  ::grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub.Check(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return Timeout(absl::StrCat("gRPC health check timed out after ", timeout.count(), " ms"));
  }
  if (!status.ok()) {
    return Failure(absl::StrCat("gRPC health check: code ", static_cast<int>(status.error_code()),
                                ": ", status.error_message()));
  }
  if (response.status() != ::grpc::health::v1::HealthCheckResponse::SERVING) {
    return Failure(absl::StrCat(
        "gRPC health: ",
        ::grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())));
  }
  return Success();
}

}  // namespace picker::health
