#include "server/api/forwarder.h"

#include <algorithm>

namespace picker::api {
namespace {

// One forwarded call, alive until its answer came back.
struct Call {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  Forwarder::Done done;
};

}  // namespace

grpc::GenericStub& Forwarder::StubFor(const std::string& address) {
  std::lock_guard lock(mu_);
  std::unique_ptr<grpc::GenericStub>& stub = stubs_[address];
  if (!stub) {
    stub = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(address, credentials_));
  }
  return *stub;
}

void Forwarder::Unary(const std::string& address, const std::string& method,
                      const grpc::ByteBuffer& request,
                      std::chrono::system_clock::time_point deadline, Done done, bool abandon,
                      const std::string& authorization) {
  auto* call = new Call{{}, request, {}, std::move(done)};
  call->context.set_deadline(deadline);
  call->context.AddMetadata(kForwardedMetadata, replicas_.self_id());
  if (abandon) call->context.AddMetadata(kAbandonMetadata, "1");
  if (!authorization.empty()) call->context.AddMetadata("authorization", authorization);
  StubFor(address).UnaryCall(&call->context, method, grpc::StubOptions(), &call->request,
                             &call->response, [call](grpc::Status status) {
                               call->done(std::move(status), std::move(call->response));
                               delete call;
                             });
}

bool Forwarder::WasForwarded(const grpc::ServerContextBase& context) {
  return context.client_metadata().count(kForwardedMetadata) > 0;
}

std::chrono::system_clock::time_point Forwarder::DeadlineFor(
    const grpc::ServerContextBase& context) {
  const auto fallback = std::chrono::system_clock::now() + std::chrono::seconds(10);
  return std::min(context.deadline(), fallback);
}

}  // namespace picker::api
