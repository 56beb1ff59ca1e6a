#include "server/core/hash/hash_policy.h"

#include <arpa/inet.h>

#include <cstring>

#include "server/core/hash/hash.h"

namespace picker::core {
namespace {

inline uint64_t RotateLeft1(uint64_t v) { return (v << 1) | (v >> 63); }

// The client IP as Envoy's Ip::addressAsString() prints it: IPv6 compressed
// and lower case (inet_ntop, which Envoy uses too), without brackets; IPv4
// unchanged. A value that is not an IP address is hashed as given.
std::string CanonicalSourceIp(std::string_view ip) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (ip.find(':') == std::string_view::npos) return std::string(ip);
  char text[INET6_ADDRSTRLEN];
  if (ip.size() >= sizeof(text)) return std::string(ip);
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  in6_addr addr;
  if (inet_pton(AF_INET6, text, &addr) != 1) return std::string(ip);
  char out[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, &addr, out, sizeof(out)) == nullptr) return std::string(ip);
  return std::string(out);
}

// Envoy's Hex::uint64ToHex: 16 lower-case hex digits, most significant first.
std::string Uint64ToHex(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[i] = kDigits[v & 0xf];
    v >>= 4;
  }
  return out;
}

std::optional<uint64_t> EvaluateCookie(const HashPolicy& policy,
                                       const RequestAttributesView& request,
                                       std::string_view upstream_name,
                                       std::vector<GeneratedCookie>* cookies) {
  // Envoy treats an empty cookie value as absent.
  const std::optional<std::string_view> value = request.Cookie(policy.name);
  if (value.has_value() && !value->empty()) return XxHash64(*value);
  if (!policy.cookie_ttl) return std::nullopt;
  // Envoy derives the value from the connection's remote and local addresses;
  // picker has the client IP and the upstream, which keeps the value stable
  // for one client of one upstream. Without a client IP there is nothing to
  // derive it from, as Envoy without addresses: no hash.
  const std::string_view source_ip = request.SourceIp();
  if (source_ip.empty()) return std::nullopt;
  std::string seed_text = CanonicalSourceIp(source_ip);
  seed_text.append(upstream_name);
  std::string generated = Uint64ToHex(XxHash64(seed_text));
  const uint64_t hash = XxHash64(generated);
  if (cookies != nullptr) {
    cookies->push_back(
        GeneratedCookie{policy.name, std::move(generated), *policy.cookie_ttl, policy.cookie_path});
  }
  return hash;
}

std::optional<uint64_t> Evaluate(const HashPolicy& policy, const RequestAttributesView& request,
                                 std::string_view upstream_name,
                                 std::vector<GeneratedCookie>* cookies) {
  switch (policy.kind) {
    case HashPolicy::Kind::kHeader: {
      // Several values of one header arrive already joined (sorted and
      // concatenated, which is what Envoy streams through XXH64).
      const std::optional<std::string_view> value = request.Header(policy.name);
      if (!value.has_value()) return std::nullopt;
      return XxHash64(*value);
    }
    case HashPolicy::Kind::kCookie:
      return EvaluateCookie(policy, request, upstream_name, cookies);
    case HashPolicy::Kind::kSourceIp: {
      const std::string_view ip = request.SourceIp();
      if (ip.empty()) return std::nullopt;
      return XxHash64(CanonicalSourceIp(ip));
    }
    case HashPolicy::Kind::kQueryParameter: {
      const std::optional<std::string_view> value = request.QueryParameter(policy.name);
      if (!value.has_value()) return std::nullopt;
      return XxHash64(*value);
    }
    case HashPolicy::Kind::kFilterState: {
      // Envoy asks the filter-state object for its Hashable::hash(); picker's
      // filter state is a string, whose hash is XXH64 as for Envoy's string
      // accessors.
      const std::optional<std::string_view> value = request.FilterState(policy.name);
      if (!value.has_value()) return std::nullopt;
      return XxHash64(*value);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> ComputeRequestHash(const std::vector<HashPolicy>& policies,
                                           const RequestAttributesView& request,
                                           std::string_view upstream_name,
                                           std::vector<GeneratedCookie>* cookies,
                                           std::vector<PolicyTrace>* trace) {
  std::optional<uint64_t> hash;
  for (const HashPolicy& policy : policies) {
    const size_t generated = cookies != nullptr ? cookies->size() : 0;
    const std::optional<uint64_t> value = Evaluate(policy, request, upstream_name, cookies);
    if (value.has_value()) {
      // As Envoy's HashPolicyImpl::generateHash: rotating the running hash
      // keeps two identical policies from cancelling out. The first value is
      // taken as is (0 ^ value).
      hash = (hash.has_value() ? RotateLeft1(*hash) : 0) ^ *value;
    }
    if (trace != nullptr) {
      using R = PolicyTrace::Result;
      const bool made = cookies != nullptr && cookies->size() > generated;
      trace->push_back({!value ? R::kAbsent : made ? R::kGenerated : R::kHashed, value});
    }
    // A terminal policy stops the walk once any hash exists, including one
    // produced by an earlier policy.
    if (policy.terminal && hash.has_value()) break;
  }
  if (trace != nullptr) trace->resize(policies.size(), {PolicyTrace::Result::kSkipped, {}});
  return hash;
}

}  // namespace picker::core
