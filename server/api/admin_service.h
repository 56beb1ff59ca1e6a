// picker.v1.Admin: validates requests, calls the registry, answers with
// effective values, and leaves an audit line and a metric per call.
#ifndef PICKER_SERVER_API_ADMIN_SERVICE_H_
#define PICKER_SERVER_API_ADMIN_SERVICE_H_

#include <optional>
#include <string>

#include "picker/v1/admin.grpc.pb.h"
#include "server/core/registry.h"
#include "server/metrics/metrics.h"

namespace picker::api {

class AdminService final : public v1::Admin::Service {
 public:
  // With a non-empty `token`, every call must carry the metadata
  // `authorization: Bearer <token>` (UNAUTHENTICATED otherwise).
  AdminService(core::Registry& registry, metrics::Metrics& metrics, std::string token)
      : registry_(registry), metrics_(metrics), token_(std::move(token)) {}

  grpc::Status CreateUpstream(grpc::ServerContext* context, const v1::CreateUpstreamRequest* request,
                              v1::Upstream* response) override;
  grpc::Status GetUpstream(grpc::ServerContext* context, const v1::GetUpstreamRequest* request,
                           v1::Upstream* response) override;
  grpc::Status ListUpstreams(grpc::ServerContext* context, const v1::ListUpstreamsRequest* request,
                             v1::ListUpstreamsResponse* response) override;
  grpc::Status UpdateUpstream(grpc::ServerContext* context, const v1::UpdateUpstreamRequest* request,
                              v1::Upstream* response) override;
  grpc::Status DeleteUpstream(grpc::ServerContext* context, const v1::DeleteUpstreamRequest* request,
                              v1::DeleteUpstreamResponse* response) override;
  grpc::Status PutTarget(grpc::ServerContext* context, const v1::PutTargetRequest* request,
                         v1::Target* response) override;
  grpc::Status DeleteTarget(grpc::ServerContext* context, const v1::DeleteTargetRequest* request,
                            v1::DeleteTargetResponse* response) override;
  grpc::Status ReplaceTargets(grpc::ServerContext* context, const v1::ReplaceTargetsRequest* request,
                              v1::ReplaceTargetsResponse* response) override;
  grpc::Status ListTargets(grpc::ServerContext* context, const v1::ListTargetsRequest* request,
                           v1::ListTargetsResponse* response) override;
  grpc::Status SetTargetHealth(grpc::ServerContext* context,
                               const v1::SetTargetHealthRequest* request,
                               v1::SetTargetHealthResponse* response) override;
  grpc::Status GetUpstreamHealth(grpc::ServerContext* context,
                                 const v1::GetUpstreamHealthRequest* request,
                                 v1::UpstreamHealth* response) override;

 private:
  // A status to answer at once when the caller lacks the admin token.
  std::optional<grpc::Status> Deny(grpc::ServerContext* context, const char* method,
                                   absl::string_view upstream, bool write);
  // Counts the call and, for writes, logs the audit line.
  grpc::Status Finish(grpc::ServerContext* context, const char* method, absl::string_view upstream,
                      const absl::Status& status, bool write);

  core::Registry& registry_;
  metrics::Metrics& metrics_;
  const std::string token_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_ADMIN_SERVICE_H_
