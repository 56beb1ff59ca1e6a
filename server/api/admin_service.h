// picker.v1.Admin: validates requests, calls the registry, answers with
// effective values, and leaves an audit line and a metric per call.
//
// A callback-API service, as the data plane's: a synchronous service would
// bring its own polling threads, which join gRPC's shared polling and slow
// picks down (BENCHMARKS.md measured it). Writes run on one writer thread of
// their own, because each waits for the store's fsync.
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

class AdminService final : public v1::Admin::CallbackService {
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
                                           const v1::CreateUpstreamRequest* request,
                                           v1::Upstream* response) override;
  grpc::ServerUnaryReactor* GetUpstream(grpc::CallbackServerContext* context,
                                        const v1::GetUpstreamRequest* request,
                                        v1::Upstream* response) override;
  grpc::ServerUnaryReactor* ListUpstreams(grpc::CallbackServerContext* context,
                                          const v1::ListUpstreamsRequest* request,
                                          v1::ListUpstreamsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateUpstream(grpc::CallbackServerContext* context,
                                           const v1::UpdateUpstreamRequest* request,
                                           v1::Upstream* response) override;
  grpc::ServerUnaryReactor* DeleteUpstream(grpc::CallbackServerContext* context,
                                           const v1::DeleteUpstreamRequest* request,
                                           v1::DeleteUpstreamResponse* response) override;
  grpc::ServerUnaryReactor* PutTarget(grpc::CallbackServerContext* context,
                                      const v1::PutTargetRequest* request,
                                      v1::Target* response) override;
  grpc::ServerUnaryReactor* DeleteTarget(grpc::CallbackServerContext* context,
                                         const v1::DeleteTargetRequest* request,
                                         v1::DeleteTargetResponse* response) override;
  grpc::ServerUnaryReactor* ReplaceTargets(grpc::CallbackServerContext* context,
                                           const v1::ReplaceTargetsRequest* request,
                                           v1::ReplaceTargetsResponse* response) override;
  grpc::ServerUnaryReactor* ListTargets(grpc::CallbackServerContext* context,
                                        const v1::ListTargetsRequest* request,
                                        v1::ListTargetsResponse* response) override;
  grpc::ServerUnaryReactor* SetTargetHealth(grpc::CallbackServerContext* context,
                                            const v1::SetTargetHealthRequest* request,
                                            v1::SetTargetHealthResponse* response) override;
  grpc::ServerUnaryReactor* GetUpstreamHealth(grpc::CallbackServerContext* context,
                                              const v1::GetUpstreamHealthRequest* request,
                                              v1::UpstreamHealth* response) override;

 private:
  // Answers a read at once: reads take no lock and never wait.
  template <typename Handler>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context, Handler handler);
  // Answers a write from the writer thread: a write waits for the store's
  // fsync, which must not hold up one of gRPC's threads (picks share them).
  template <typename Handler>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context, Handler handler);
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
