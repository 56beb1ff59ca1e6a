// Partial updates of an upstream's configuration: the fields an
// UpdateUpstream's `update_mask` names are taken from the request, the
// others keep their stored values. The paths are those of the Upstream
// message in snake_case, as protobuf's FieldMask holds them:
//
//   absl::StatusOr<UpstreamConfig> merged = MergeUpstreamConfig(
//       stored, requested, {"lease_ttl", "health_checks.passive"});
//
// "*" takes everything from the request. A path into a member of the
// load_balancer oneof other than the stored strategy is INVALID_ARGUMENT
// unless the mask also names "load_balancer" whole (which changes the
// strategy). The merged configuration is not validated here: the caller
// validates it as any other.
#ifndef PICKER_SERVER_CORE_UPDATE_MASK_H_
#define PICKER_SERVER_CORE_UPDATE_MASK_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/config.h"

namespace picker::core {

// Errors name the path as `update_mask.paths[i]`.
absl::StatusOr<UpstreamConfig> MergeUpstreamConfig(const UpstreamConfig& stored,
                                                   const UpstreamConfig& requested,
                                                   const std::vector<std::string>& paths);

// Every path MergeUpstreamConfig knows, for help texts and tests.
std::vector<std::string> UpdateMaskPaths();

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_UPDATE_MASK_H_
