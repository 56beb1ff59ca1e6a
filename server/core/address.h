// Target addresses: parsing and the one canonical spelling used everywhere
// (Pick responses, lists, `exclude`, duplicate checks and hash keys).
#ifndef PICKER_SERVER_CORE_ADDRESS_H_
#define PICKER_SERVER_CORE_ADDRESS_H_

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace picker::core {

// Returns the canonical form of a `host:port` address, or INVALID_ARGUMENT
// with a message that starts with `field`. Host is an IPv4 address, an IPv6
// address in brackets (canonical: RFC 5952 compressed, lower case), or a DNS
// name (canonical: lower case; never resolved). Port is 1..65535.
absl::StatusOr<std::string> CanonicalAddress(absl::string_view address, absl::string_view field);

// Canonical spelling of a bare IP address (no port, no brackets), as Envoy's
// Address::Ip::addressAsString() prints it; other strings come back unchanged.
std::string CanonicalIp(absl::string_view ip);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_ADDRESS_H_
