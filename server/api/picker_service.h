// picker.v1.Picker on the callback API: Pick, Release and PickStream.
// Thin: it maps messages to the core's PickInput, and core errors to status.
#ifndef PICKER_SERVER_API_PICKER_SERVICE_H_
#define PICKER_SERVER_API_PICKER_SERVICE_H_

#include "picker/v1/picker.grpc.pb.h"
#include "server/api/call_tracker.h"
#include "server/core/registry.h"
#include "server/metrics/metrics.h"

namespace picker::api {

class PickerService final : public v1::Picker::CallbackService {
 public:
  // `calls` counts the calls being served, for the drain.
  PickerService(core::Registry& registry, metrics::Metrics& metrics, CallTracker& calls)
      : registry_(registry), metrics_(metrics), calls_(calls) {}

  grpc::ServerUnaryReactor* Pick(grpc::CallbackServerContext* context,
                                 const v1::PickRequest* request,
                                 v1::PickResponse* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerBidiReactor<v1::PickStreamRequest, v1::PickStreamResponse>* PickStream(
      grpc::CallbackServerContext* context) override;

  // Shared by the unary and streaming paths.
  absl::Status DoPick(const v1::PickRequest& request, v1::PickResponse& response,
                      uint64_t* lease_id);
  absl::Status DoRelease(const v1::ReleaseRequest& request, v1::ReleaseResponse& response);

 private:
  core::Registry& registry_;
  metrics::Metrics& metrics_;
  CallTracker& calls_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_PICKER_SERVICE_H_
