// The rules an upstream's configuration and its targets must follow. Every
// error is INVALID_ARGUMENT with a message that starts with the field's path
// as a client spells it (`upstream.load_balancer.maglev.table_size: ...`).
#ifndef PICKER_SERVER_CORE_VALIDATE_H_
#define PICKER_SERVER_CORE_VALIDATE_H_

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "server/core/config.h"

namespace picker::core {

// Names are [A-Za-z0-9._-], 1..128 characters.
absl::Status ValidateUpstreamName(absl::string_view name, absl::string_view field);

// Which rules apply. A new write (the API, the config file) meets them all.
// A record already stored (loaded at start, or from the store's feed) is
// spared the bounds added after it could have been written (the most
// choice_count, the most healthy_http_statuses), so that upstreams stored
// by an earlier version still load; what picks do with such values is
// bounded where they are used (LeastRequestStrategy clamps choice_count).
enum class Rules { kNewWrite, kStored };

// Checks a configuration whose defaults are already filled in.
absl::Status ValidateUpstreamConfig(const UpstreamConfig& config, Rules rules = Rules::kNewWrite);

// Checks a target whose address is already canonical. `field` is the
// target's path, e.g. "target" or "targets[3]".
absl::Status ValidateTarget(const TargetConfig& target, absl::string_view field);
// Kong's tags (kMaxTags, kMaxTagLength); `field` names the list.
absl::Status ValidateTags(const std::vector<std::string>& tags, absl::string_view field);

// Trial division; Envoy's Primes::isPrime, except that 0 and 1 are not prime.
bool IsPrime(uint64_t n);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_VALIDATE_H_
