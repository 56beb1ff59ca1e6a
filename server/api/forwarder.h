// Sends a call that another replica must serve (the upstream's owner, a
// lease's issuer) to it, over a channel per peer kept open, as the raw
// request bytes the client sent: one hop, and the answer's bytes come back
// unchanged. A forwarded call carries the metadata `picker-forwarded` with
// the sender's id, and a replica never forwards such a call again, so a
// forward never loops, even while two replicas see different members.
//
//   forwarder.Unary(peer, "/picker.v1.Picker/Pick", request, deadline,
//                   [](grpc::Status status, grpc::ByteBuffer answer) { ... });
#ifndef PICKER_SERVER_API_FORWARDER_H_
#define PICKER_SERVER_API_FORWARDER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "server/core/replicas.h"

namespace picker::api {

inline constexpr char kForwardedMetadata[] = "picker-forwarded";
// On a forwarded Release: the lease's client went away (a PickStream
// ended), so the issuer counts it as abandoned.
inline constexpr char kAbandonMetadata[] = "picker-abandon";

class Forwarder {
 public:
  using Done = std::function<void(grpc::Status, grpc::ByteBuffer)>;

  // `credentials` reach the peers' data listeners; calls are marked with
  // the id `replicas` gives this one (it must outlive the forwarder).
  Forwarder(std::shared_ptr<grpc::ChannelCredentials> credentials, const core::Replicas& replicas)
      : credentials_(std::move(credentials)), replicas_(replicas) {}

  // Calls `method` at `address` (a peer's data or admin listener) with
  // `request`; `done` runs on a gRPC thread. A non-empty `authorization` is
  // passed on as that metadata (an admin call's bearer token).
  void Unary(const std::string& address, const std::string& method, const grpc::ByteBuffer& request,
             std::chrono::system_clock::time_point deadline, Done done, bool abandon = false,
             const std::string& authorization = "");

  // True for a call another replica forwarded here.
  static bool WasForwarded(const grpc::ServerContextBase& context);
  // A forwarded call keeps its client's deadline, or gets a few seconds.
  static std::chrono::system_clock::time_point DeadlineFor(const grpc::ServerContextBase& context);

 private:
  grpc::GenericStub& StubFor(const std::string& address);

  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const core::Replicas& replicas_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<grpc::GenericStub>> stubs_;  // By address.
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_FORWARDER_H_
