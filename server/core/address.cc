#include "server/core/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace picker::core {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view address, absl::string_view why) {
  // The address is echoed cut short: the message travels back in a gRPC
  // trailer, and a client refuses a trailer over its metadata limit (8 KiB
  // by default), so echoing a huge address hid the real error behind
  // RESOURCE_EXHAUSTED.
  constexpr size_t kShown = 100;
  const std::string shown =
      address.size() <= kShown
          ? std::string(address)
          : absl::StrCat(address.substr(0, kShown), "... (", address.size(), " bytes)");
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": \"", shown, "\" is not a valid host:port address (", why, ")"));
}

bool IsDnsName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (host[i - 1] == '-' || host[i - label] == '-') return false;
      label = 0;
      continue;
    }
    const char c = host[i];
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
    ++label;
  }
  return true;
}

bool LooksNumeric(absl::string_view host) {
  for (char c : host) {
    if (!absl::ascii_isdigit(c) && c != '.') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> CanonicalAddress(absl::string_view address, absl::string_view field) {
  if (address.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": is required"));
  absl::string_view host, port;
  bool ipv6 = false;
  if (address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return Invalid(field, address, "missing ']'");
    host = address.substr(1, close - 1);
    if (close + 1 >= address.size() || address[close + 1] != ':') {
      return Invalid(field, address, "missing port");
    }
    port = address.substr(close + 2);
    ipv6 = true;
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return Invalid(field, address, "missing port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != absl::string_view::npos) {
      return Invalid(field, address, "an IPv6 address must be in brackets, as [::1]:8080");
    }
  }
  uint32_t port_number = 0;
  // Digits only: SimpleAtoi alone also takes a sign and surrounding
  // whitespace ("80 ", "80\n").
  const bool digits =
      std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); });
  if (port.empty() || port.size() > 5 || !digits || !absl::SimpleAtoi(port, &port_number) ||
      port_number < 1 || port_number > 65535) {
    return Invalid(field, address, "port must be 1..65535");
  }
  const std::string host_copy(host);
  if (ipv6) {
    in6_addr addr;
    if (inet_pton(AF_INET6, host_copy.c_str(), &addr) != 1) {
      return Invalid(field, address, "malformed IPv6 address");
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &addr, text, sizeof(text));
    return absl::StrCat("[", text, "]:", port_number);
  }
  if (host.empty()) return Invalid(field, address, "missing host");
  if (LooksNumeric(host)) {
    in_addr addr;
    if (inet_pton(AF_INET, host_copy.c_str(), &addr) != 1) {
      return Invalid(field, address, "malformed IPv4 address");
    }
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, text, sizeof(text));
    return absl::StrCat(text, ":", port_number);
  }
  if (!IsDnsName(host)) return Invalid(field, address, "malformed host name");
  return absl::StrCat(absl::AsciiStrToLower(host), ":", port_number);
}

std::string CanonicalIp(absl::string_view ip) {
  std::string copy(ip);
  if (copy.size() > 2 && copy.front() == '[' && copy.back() == ']') {
    copy = copy.substr(1, copy.size() - 2);
  }
  in6_addr addr6;
  if (inet_pton(AF_INET6, copy.c_str(), &addr6) == 1) {
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &addr6, text, sizeof(text));
    return text;
  }
  return std::string(ip);
}

}  // namespace picker::core
