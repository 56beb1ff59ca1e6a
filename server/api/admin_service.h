// picker.v1.Admin: validates requests, calls the registry, answers with
// effective values, and leaves an audit line and a metric per call.
//
// A callback-API service, as the data plane's: a synchronous service would
// bring its own polling threads, which join gRPC's shared polling and slow
// picks down (BENCHMARKS.md measured it). Writes run on one writer thread of
// their own, because each waits for the store's fsync. Requests arrive as
// bytes and are parsed here (wire.h), so that one that does not parse gets
// INVALID_ARGUMENT.
#ifndef PICKER_SERVER_API_ADMIN_SERVICE_H_
#define PICKER_SERVER_API_ADMIN_SERVICE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "picker/v1/admin.grpc.pb.h"
#include "server/api/call_tracker.h"
#include "server/core/registry.h"
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
                                        v1::Admin::Service>>>>>>>>>>>;

class AdminService final : public RawAdminService {
 public:
  // With a non-empty `token`, every call must carry the metadata
  // `authorization: Bearer <token>` (UNAUTHENTICATED otherwise). `calls`
  // counts the calls being served, for the drain.
  AdminService(core::Registry& registry, metrics::Metrics& metrics, std::string token,
               CallTracker& calls);
  // Finishes the writes already queued. The gRPC server must be shut down
  // first, so that no new call arrives.
  ~AdminService() override;

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

 private:
  template <typename Request, typename Response>
  using Handler = grpc::Status (AdminService::*)(grpc::CallbackServerContext*, const Request*,
                                                 Response*);
  // Answers a read at once: reads take no lock and never wait.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context, const char* method,
                                 const grpc::ByteBuffer& request_wire,
                                 grpc::ByteBuffer& response_wire,
                                 Handler<Request, Response> handler);
  // Answers a write from the writer thread: a write waits for the store's
  // fsync, which must not hold up one of gRPC's threads (picks share them).
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context, const char* method,
                                  const grpc::ByteBuffer& request_wire,
                                  grpc::ByteBuffer& response_wire,
                                  Handler<Request, Response> handler);
  // Parses a request; one that does not parse is refused as a handler
  // refuses a bad one (the token checked first, the call counted and, for a
  // write, audited), without an upstream name.
  std::optional<grpc::Status> Parse(grpc::CallbackServerContext* context, const char* method,
                                    bool write, const grpc::ByteBuffer& wire,
                                    google::protobuf::Message& request);
  // Runs queued writes in order until the service is destroyed. Writes that
  // queued up together run as one batch: each is applied in turn, one store
  // commit makes them all durable (group commit: two syncs for the batch
  // rather than two per write), and only then are they answered.
  void WriterLoop();

  grpc::Status DoCreateUpstream(grpc::CallbackServerContext* context,
                                const v1::CreateUpstreamRequest* request, v1::Upstream* response);
  grpc::Status DoGetUpstream(grpc::CallbackServerContext* context,
                             const v1::GetUpstreamRequest* request, v1::Upstream* response);
  grpc::Status DoListUpstreams(grpc::CallbackServerContext* context,
                               const v1::ListUpstreamsRequest* request,
                               v1::ListUpstreamsResponse* response);
  grpc::Status DoUpdateUpstream(grpc::CallbackServerContext* context,
                                const v1::UpdateUpstreamRequest* request, v1::Upstream* response);
  grpc::Status DoDeleteUpstream(grpc::CallbackServerContext* context,
                                const v1::DeleteUpstreamRequest* request,
                                v1::DeleteUpstreamResponse* response);
  grpc::Status DoPutTarget(grpc::CallbackServerContext* context,
                           const v1::PutTargetRequest* request, v1::Target* response);
  grpc::Status DoDeleteTarget(grpc::CallbackServerContext* context,
                              const v1::DeleteTargetRequest* request,
                              v1::DeleteTargetResponse* response);
  grpc::Status DoReplaceTargets(grpc::CallbackServerContext* context,
                                const v1::ReplaceTargetsRequest* request,
                                v1::ReplaceTargetsResponse* response);
  grpc::Status DoListTargets(grpc::CallbackServerContext* context,
                             const v1::ListTargetsRequest* request,
                             v1::ListTargetsResponse* response);
  grpc::Status DoSetTargetHealth(grpc::CallbackServerContext* context,
                                 const v1::SetTargetHealthRequest* request,
                                 v1::SetTargetHealthResponse* response);
  grpc::Status DoGetUpstreamHealth(grpc::CallbackServerContext* context,
                                   const v1::GetUpstreamHealthRequest* request,
                                   v1::UpstreamHealth* response);

  // A status to answer at once when the caller lacks the admin token.
  std::optional<grpc::Status> Deny(grpc::CallbackServerContext* context, const char* method,
                                   absl::string_view upstream, bool write);
  // Counts the call and, for writes, logs the audit line.
  grpc::Status Finish(grpc::CallbackServerContext* context, const char* method,
                      absl::string_view upstream, const absl::Status& status, bool write);

  core::Registry& registry_;
  metrics::Metrics& metrics_;
  const std::string token_;
  CallTracker& calls_;

  std::mutex mu_;
  std::condition_variable cv_;
  struct QueuedWrite {
    grpc::ServerUnaryReactor* reactor;
    std::function<grpc::Status()> run;
  };
  std::deque<QueuedWrite> writes_;  // Guarded by mu_.
  bool stopping_ = false;           // Guarded by mu_.
  std::thread writer_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_ADMIN_SERVICE_H_
