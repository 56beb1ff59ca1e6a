// Translation between picker.v1 messages and the core's types.
//
// Requests: a field left 0 or unset takes its default, unknown enum values
// and out-of-range numbers are INVALID_ARGUMENT naming the field; the core's
// validation then checks the filled-in values. Responses: every field carries
// its effective value, so Get and List show the defaults in force.
#ifndef PICKER_SERVER_API_CONVERT_H_
#define PICKER_SERVER_API_CONVERT_H_

#include <chrono>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "google/protobuf/duration.pb.h"
#include "picker/v1/admin.pb.h"
#include "server/core/changes.h"
#include "server/core/config.h"
#include "server/core/upstream.h"

namespace picker::api {

// A duration from a request: 0..one year, nanos 0..999999999; otherwise
// INVALID_ARGUMENT naming `field`.
inline constexpr int64_t kMaxDurationSeconds = 365LL * 24 * 3600;
absl::StatusOr<std::chrono::nanoseconds> DurationFromProto(const google::protobuf::Duration& d,
                                                           absl::string_view field);

absl::StatusOr<core::UpstreamConfig> FromProto(const v1::Upstream& upstream);
v1::Upstream ToProto(const core::UpstreamConfig& config);

// A target with every field given (ReplaceTargets, stored state): weight
// unset means 100. `field` names the target in messages, e.g. "targets[2]".
absl::StatusOr<core::TargetConfig> FromProto(const v1::Target& target, absl::string_view field);
// A partial target (PutTarget): unset fields keep their stored values.
core::TargetPatch PatchFromProto(const v1::Target& target);
v1::Target ToProto(const core::TargetConfig& target);
// The same into a message that exists already (on an arena, say).
void ToProto(const core::TargetConfig& target, v1::Target* out);

absl::StatusOr<core::HealthOverride> FromProto(v1::SetTargetHealthRequest::Override value);
v1::SetTargetHealthRequest::Override ToProto(core::HealthOverride value);

// Each admin write request as the core change it asks for.
absl::StatusOr<core::Change> ChangeFromProto(const v1::CreateUpstreamRequest& request);
absl::StatusOr<core::Change> ChangeFromProto(const v1::UpdateUpstreamRequest& request);
absl::StatusOr<core::Change> ChangeFromProto(const v1::DeleteUpstreamRequest& request);
absl::StatusOr<core::Change> ChangeFromProto(const v1::PutTargetRequest& request);
absl::StatusOr<core::Change> ChangeFromProto(const v1::DeleteTargetRequest& request);
absl::StatusOr<core::Change> ChangeFromProto(const v1::ReplaceTargetsRequest& request);
absl::StatusOr<core::Change> ChangeFromProto(const v1::SetTargetHealthRequest& request);
// One change of a PreviewChange; errors name it as `field` (changes[i]).
absl::StatusOr<core::Change> ChangeFromProto(const v1::ProposedChange& change,
                                             absl::string_view field);

// `slow_start_factor`: the target's, while it is in slow start.
v1::TargetHealth ToProto(const core::SnapshotTarget& target,
                         std::optional<double> slow_start_factor = std::nullopt);
v1::UpstreamHealth HealthToProto(const core::UpstreamSnapshot& snapshot);

}  // namespace picker::api

#endif  // PICKER_SERVER_API_CONVERT_H_
