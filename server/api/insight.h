// The answers of PreviewChange and ExplainPick, from what the control plane
// (a dry run) and the data plane (an explanation) work out.
//
//   v1::PreviewChangeResponse preview = PreviewToProto(dry_run);
//   v1::PickExplanation why = ExplanationToProto(*data.Explain(input));
#ifndef PICKER_SERVER_API_INSIGHT_H_
#define PICKER_SERVER_API_INSIGHT_H_

#include "picker/v1/admin.pb.h"
#include "server/control/control_plane.h"
#include "server/data/data_plane.h"

namespace picker::api {

// `dry_run` is a ControlPlane::Preview's answer.
v1::PreviewChangeResponse PreviewToProto(const control::WriteResult& dry_run);

v1::PickExplanation ExplanationToProto(const data::PickExplanation& explanation);

}  // namespace picker::api

#endif  // PICKER_SERVER_API_INSIGHT_H_
