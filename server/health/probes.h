// One active health check of one target, for each check type: blocking
// calls bounded by the check's timeout, so a caller on a worker thread is
// never held longer than that (plus name resolution, see ProbeTcp).
//
// Addresses are canonical `host:port` (IPv6 in brackets), as the registry
// stores them. Names are resolved at probe time, never by picks.
#ifndef PICKER_SERVER_HEALTH_PROBES_H_
#define PICKER_SERVER_HEALTH_PROBES_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace picker::health {

struct ProbeResult {
  enum class Kind : uint8_t { kSuccess, kFailure, kTimeout };
  Kind kind = Kind::kFailure;
  // What went wrong, for logs ("HTTP 503", "connection refused", ...).
  std::string detail;

  bool ok() const { return kind == Kind::kSuccess; }
};

// Stable lower-case name of a result kind, for metric labels and logs.
const char* ResultName(ProbeResult::Kind kind);

// Splits a canonical `host:port`; the brackets of an IPv6 host are removed.
// Returns false when the address has no port.
bool SplitHostPort(absl::string_view address, std::string* host, std::string* port);

// Makes libcurl ready for use from many threads. Idempotent; ProbeHttp calls
// it, and callers may call it early, before they start threads.
void InitHttpProbes();

// GET http://<address><path>; healthy when the status is in `statuses`.
// Redirects are not followed (302 is a healthy status by default, as Kong).
ProbeResult ProbeHttp(absl::string_view address, absl::string_view path,
                      absl::Span<const uint32_t> statuses, std::chrono::milliseconds timeout);

// A TCP connection can be established (and is closed at once). Every address
// the host resolves to is tried until one connects or the timeout ends. Name
// resolution uses getaddrinfo, which only the resolver's own timeouts bound.
ProbeResult ProbeTcp(absl::string_view address, std::chrono::milliseconds timeout);

// A gRPC channel to a target for health checks, reused across checks of that
// target so that each check does not pay for a new HTTP/2 connection.
class GrpcHealthChannel {
 public:
  explicit GrpcHealthChannel(std::string address);
  ~GrpcHealthChannel();

  // grpc.health.v1.Health/Check with service "": healthy when SERVING.
  // Not thread-safe: one check at a time per channel.
  ProbeResult Check(std::chrono::milliseconds timeout);

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace picker::health

#endif  // PICKER_SERVER_HEALTH_PROBES_H_
