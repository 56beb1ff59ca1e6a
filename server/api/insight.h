// The answers of PreviewChange and ExplainPick, from what the control plane
// (a dry run) and the data plane (an explanation) work out.
//
//   v1::PreviewChangeResponse preview = PreviewToProto(dry_run);
//   v1::PickExplanation why = ExplanationToProto(*data.Explain(input));
#ifndef PICKER_SERVER_API_INSIGHT_H_
#define PICKER_SERVER_API_INSIGHT_H_

#include <cstddef>

#include "picker/v1/admin.pb.h"
#include "server/control/control_plane.h"
#include "server/data/data_plane.h"

namespace picker::api {

// Each list of either answer holds at most this many entries, so that the
// answer at the largest upstream (100,000 targets) fits the 4 MiB a default
// gRPC client accepts; `*_not_listed` counts the rest.
inline constexpr size_t kMaxListed = 1000;

// `dry_run` is a ControlPlane::Preview's answer.
v1::PreviewChangeResponse PreviewToProto(const control::WriteResult& dry_run);

v1::PickExplanation ExplanationToProto(const data::PickExplanation& explanation);

}  // namespace picker::api

#endif  // PICKER_SERVER_API_INSIGHT_H_
