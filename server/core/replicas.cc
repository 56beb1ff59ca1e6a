#include "server/core/replicas.h"

namespace picker::core {

const char* ForwardedName(Forwarded call) {
  switch (call) {
    case Forwarded::kPick:
      return "Pick";
    case Forwarded::kRelease:
      return "Release";
    case Forwarded::kPickStream:
      return "PickStream";
    case Forwarded::kAbandon:
      return "Abandon";
    case Forwarded::kUpstreamHealth:
      return "GetUpstreamHealth";
    case Forwarded::kExplainPick:
      return "ExplainPick";
  }
  return "unknown";
}

void ReplicaStats::CountRequest(absl::string_view op, absl::string_view code) {
  std::lock_guard lock(mu_);
  ++requests_[{std::string(op), std::string(code)}];
}

std::map<std::pair<std::string, std::string>, uint64_t> ReplicaStats::Requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

}  // namespace picker::core
