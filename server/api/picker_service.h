// picker.v1.Picker on the callback API: Pick, Release and PickStream.
// Thin: it maps messages to the core's PickInput, and core errors to status.
// The handlers take their requests as bytes and parse them (wire.h), so that
// a request that does not parse is answered INVALID_ARGUMENT.
#ifndef PICKER_SERVER_API_PICKER_SERVICE_H_
#define PICKER_SERVER_API_PICKER_SERVICE_H_

#include <optional>
#include <string>

#include "picker/v1/picker.grpc.pb.h"
#include "server/api/call_tracker.h"
#include "server/api/forwarder.h"
#include "server/core/replicas.h"
#include "server/core/stats.h"
#include "server/data/data_plane.h"
#include "server/metrics/metrics.h"

namespace picker::api {

class PickerService final
    : public v1::Picker::WithRawCallbackMethod_Pick<
          v1::Picker::WithRawCallbackMethod_Release<v1::Picker::WithRawCallbackMethod_PickStream<
              v1::Picker::WithRawCallbackMethod_ListMembers<v1::Picker::Service>>>> {
 public:
  struct Options {
    // Answers a PickStream may hold unwritten (its client not reading them);
    // at this many, the stream stops reading until the client reads.
    size_t max_pending_stream_answers = 64;
  };

  // `calls` counts the calls being served, for the drain. Picks of an
  // upstream another replica owns, and releases of a lease another replica
  // issued, go to it through `forwarder`.
  PickerService(data::DataPlane& data, metrics::Metrics& metrics, CallTracker& calls,
                const core::Replicas& replicas, Forwarder& forwarder, Options options);

  grpc::ServerUnaryReactor* Pick(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* PickStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListMembers(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;

  // Where a call must be served when it is not here: the upstream's owner,
  // the lease's issuer. nullopt: here (also for a call forwarded already).
  std::optional<core::Replicas::Peer> PickRoute(const grpc::CallbackServerContext& context,
                                                const v1::PickRequest& request) const;
  std::optional<core::Replicas::Peer> ReleaseRoute(const grpc::CallbackServerContext& context,
                                                   const v1::ReleaseRequest& request) const;
  Forwarder& forwarder() { return forwarder_; }
  core::ReplicaStats& replica_stats() { return replicas_.stats(); }

  // Shared by the unary and streaming paths.
  absl::Status DoPick(const v1::PickRequest& request, v1::PickResponse& response,
                      uint64_t* lease_id);
  absl::Status DoRelease(const v1::ReleaseRequest& request, v1::ReleaseResponse& response);
  // DoRelease, its failures counted by code.
  absl::Status CountedRelease(const v1::ReleaseRequest& request, v1::ReleaseResponse& response);

 private:
  // A unary call: parses its request, runs `handler` (an absl::Status of the
  // request and the answer to fill) and answers.
  template <typename Request, typename Response, typename Route, typename Handler>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer& request_wire,
                                  grpc::ByteBuffer& response_wire, Route route,
                                  core::Forwarded kind, Handler handler);
  // A lease of another boot whose replica is gone (etcd mode): the
  // replica's end ended it.
  bool IssuerIsGone(uint64_t lease_id) const;

  data::DataPlane& data_;
  metrics::Metrics& metrics_;
  CallTracker& calls_;
  const core::Replicas& replicas_;
  Forwarder& forwarder_;
  const uint64_t boot_;
  const Options options_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_PICKER_SERVICE_H_
