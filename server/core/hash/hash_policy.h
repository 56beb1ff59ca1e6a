// Computes a request's hash from an upstream's hash policies, as Envoy's
// Http::HashPolicyImpl does.
#ifndef PICKER_SERVER_CORE_HASH_HASH_POLICY_H_
#define PICKER_SERVER_CORE_HASH_HASH_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/core/config.h"

namespace picker::core {

// Read access to the attributes of a client's request. The API layer
// implements it over PickRequest.attributes without copying.
class RequestAttributesView {
 public:
  virtual ~RequestAttributesView() = default;
  // `lower_case_name` is lower case; implementations match names
  // case-insensitively.
  virtual std::optional<std::string_view> Header(std::string_view lower_case_name) const = 0;
  virtual std::optional<std::string_view> Cookie(std::string_view name) const = 0;
  virtual std::optional<std::string_view> QueryParameter(std::string_view name) const = 0;
  virtual std::optional<std::string_view> FilterState(std::string_view key) const = 0;
  // Client IP without port; empty if unknown.
  virtual std::string_view SourceIp() const = 0;
};

// A cookie generated for a Cookie policy with a ttl when the request had none.
struct GeneratedCookie {
  std::string name;
  std::string value;
  Millis ttl{0};
  std::string path;
};

// What one policy did for a request (ExplainPick).
struct PolicyTrace {
  enum class Result { kHashed, kAbsent, kGenerated, kSkipped };
  Result result = Result::kAbsent;
  std::optional<uint64_t> value;  // Hashed or generated.
};

// Evaluates `policies` in order and combines their values as Envoy does
// (hash = rotl64(hash, 1) ^ value; a terminal policy that leaves a hash stops
// the walk). Returns nullopt when no policy produced a value: the caller then
// picks at random, as Envoy does. Cookies generated on the way are appended
// to `cookies` (which may be null when the caller does not want them).
// `trace`, when given, gets one entry per policy.
std::optional<uint64_t> ComputeRequestHash(const std::vector<HashPolicy>& policies,
                                           const RequestAttributesView& request,
                                           std::string_view upstream_name,
                                           std::vector<GeneratedCookie>* cookies,
                                           std::vector<PolicyTrace>* trace = nullptr);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_HASH_HASH_POLICY_H_
