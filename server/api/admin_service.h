// picker.v1.Admin: checks the token, maps requests to core changes and
// reads, answers with effective values, and leaves an audit line and a
// metric per call.
//
// A callback-API service, as the data plane's: a synchronous service would
// bring its own polling threads, which join gRPC's shared polling and slow
// picks down (BENCHMARKS.md measured it). A write is handed to the control
// plane, whose writer answers it once its snapshot is published; no gRPC
// thread waits for the store. Reads answer from the published snapshots.
// Requests arrive as bytes and are parsed here (wire.h), so that one that
// does not parse gets INVALID_ARGUMENT.

#ifndef PICKER_SERVER_API_ADMIN_SERVICE_H_
#define PICKER_SERVER_API_ADMIN_SERVICE_H_

#include <optional>
#include <string>

#include "picker/v1/admin.grpc.pb.h"
#include "server/api/call_tracker.h"
#include "server/api/forwarder.h"
#include "server/control/control_plane.h"
#include "server/core/replicas.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/data/data_plane.h"
#include "server/metrics/metrics.h"

namespace picker::api {

// picker.v1.Admin with every method taking its request as bytes (wire.h).
using RawAdminService = v1::Admin::WithRawCallbackMethod_CreateUpstream<
    v1::Admin::WithRawCallbackMethod_GetUpstream<v1::Admin::WithRawCallbackMethod_ListUpstreams<
        v1::Admin::WithRawCallbackMethod_UpdateUpstream<
            v1::Admin::WithRawCallbackMethod_DeleteUpstream<
                v1::Admin::WithRawCallbackMethod_PutTarget<
                    v1::Admin::WithRawCallbackMethod_DeleteTarget<
                        v1::Admin::WithRawCallbackMethod_ReplaceTargets<
                            v1::Admin::WithRawCallbackMethod_ListTargets<
                                v1::Admin::WithRawCallbackMethod_SetTargetHealth<
                                    v1::Admin::WithRawCallbackMethod_GetUpstreamHealth<
                                        v1::Admin::WithRawCallbackMethod_PreviewChange<
                                            v1::Admin::WithRawCallbackMethod_ExplainPick<
                                                v1::Admin::Service>>>>>>>>>>>>>;

class AdminService final : public RawAdminService {
 public:
  // With a non-empty `token`, every call must carry the metadata
  // `authorization: Bearer <token>` (UNAUTHENTICATED otherwise). `calls`
  // counts the calls being served, for the drain.
  // `stats`, when not null, carries the overload manager's flag: while it
  // is set, writes other than deletes answer RESOURCE_EXHAUSTED. With
  // `replicas` and `forwarder`, GetUpstreamHealth of an upstream another
  // replica owns is answered by that owner (its counts are the live ones).
  AdminService(control::ControlPlane& control, const data::DataPlane& data,
               const core::SnapshotMap& snapshots, metrics::Metrics& metrics, std::string token,
               CallTracker& calls, core::ProcessStats* stats = nullptr,
               const core::Replicas* replicas = nullptr, Forwarder* forwarder = nullptr);

  grpc::ServerUnaryReactor* CreateUpstream(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetUpstream(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListUpstreams(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* UpdateUpstream(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteUpstream(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* PutTarget(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* DeleteTarget(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ReplaceTargets(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ListTargets(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SetTargetHealth(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetUpstreamHealth(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* PreviewChange(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ExplainPick(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;

 private:
  template <typename Request, typename Response>
  using ReadHandler = absl::Status (AdminService::*)(const Request&, Response&);
  // Answers a read at once from the published snapshots: reads take no
  // lock and never wait.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context, const char* method,
                                 const grpc::ByteBuffer& request_wire,
                                 grpc::ByteBuffer& response_wire,
                                 ReadHandler<Request, Response> handler);
  // Hands a write to the control plane: ChangeFromProto(request) is the
  // core change, `answer(request, result, response)` fills the answer once
  // the change is published (or, with validate_only, built). No gRPC
  // thread waits for it.
  template <typename Request, typename Response, typename Answer>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context, const char* method,
                                  const grpc::ByteBuffer& request_wire,
                                  grpc::ByteBuffer& response_wire, Answer answer);
  // Parses a request; one that does not parse is refused as a handler
  // refuses a bad one (the token checked first, the call counted and, for a
  // write, audited), without an upstream name.
  std::optional<grpc::Status> Parse(grpc::CallbackServerContext* context, const char* method,
                                    bool write, const grpc::ByteBuffer& wire,
                                    google::protobuf::Message& request);

  absl::Status GetUpstreamRead(const v1::GetUpstreamRequest& request, v1::Upstream& response);
  absl::Status ListUpstreamsRead(const v1::ListUpstreamsRequest& request,
                                 v1::ListUpstreamsResponse& response);
  absl::Status ListTargetsRead(const v1::ListTargetsRequest& request,
                               v1::ListTargetsResponse& response);
  absl::Status GetUpstreamHealthRead(const v1::GetUpstreamHealthRequest& request,
                                     v1::UpstreamHealth& response);
  absl::Status ExplainPickRead(const v1::PickRequest& request, v1::PickExplanation& response);

  // Sends a read of an upstream's live state (GetUpstreamHealth,
  // ExplainPick) to `upstream`'s owner when another replica owns it, with
  // the caller's token; null when it is answered here.
  grpc::ServerUnaryReactor* ForwardToOwner(grpc::CallbackServerContext* context,
                                           core::Forwarded call, const std::string& upstream,
                                           const grpc::ByteBuffer& request,
                                           grpc::ByteBuffer& response);
  // A status to answer at once when the caller lacks the admin token.
  std::optional<grpc::Status> Deny(grpc::CallbackServerContext* context, const char* method,
                                   absl::string_view upstream, bool write);
  // A status to answer at once when the overload manager sheds `method`
  // (every write but deletes, which free memory).
  std::optional<grpc::Status> Shed(grpc::CallbackServerContext* context, const char* method,
                                   absl::string_view upstream);
  // Counts the call and, for writes, logs the audit line (dry runs say so).
  grpc::Status Finish(grpc::CallbackServerContext* context, const char* method,
                      absl::string_view upstream, const absl::Status& status, bool write,
                      bool dry_run = false);

  control::ControlPlane& control_;
  const data::DataPlane& data_;
  const core::SnapshotMap& snapshots_;
  metrics::Metrics& metrics_;
  const std::string token_;
  CallTracker& calls_;
  core::ProcessStats* const stats_;
  const core::Replicas* const replicas_;
  Forwarder* const forwarder_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_ADMIN_SERVICE_H_
