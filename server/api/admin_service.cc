#include "server/api/admin_service.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/api/convert.h"
#include "server/api/status.h"
#include "server/api/wire.h"
#include "server/core/address.h"
#include "server/core/thread_name.h"
#include "spdlog/spdlog.h"

namespace picker::api {
namespace {

const char* CodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kUnknown:
      return "UNKNOWN";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// Compares in time that depends only on the expected value's length, so the
// answer time does not tell how much of a guessed token was right.
bool ConstantTimeEquals(absl::string_view given, absl::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return diff == 0;
}

}  // namespace

std::optional<grpc::Status> AdminService::Deny(grpc::CallbackServerContext* context,
                                               const char* method, absl::string_view upstream,
                                               bool write) {
  if (token_.empty()) return std::nullopt;
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it != metadata.end() &&
      ConstantTimeEquals(absl::string_view(it->second.data(), it->second.size()),
                         absl::StrCat("Bearer ", token_))) {
    return std::nullopt;
  }
  return Finish(context, method, upstream,
                absl::UnauthenticatedError(
                    "authorization: picker.v1.Admin needs the metadata 'authorization: Bearer "
                    "<token>' with the server's admin token"),
                write);
}

grpc::Status AdminService::Finish(grpc::CallbackServerContext* context, const char* method,
                                  absl::string_view upstream, const absl::Status& status,
                                  bool write) {
  const char* code = CodeName(status.code());
  metrics_.CountAdminOperation(method, code);
  if (write) {
    // The name and message come from the caller: escaped (quotes, newlines,
    // control bytes as C escapes), so that they cannot end the quoted value
    // or start a forged audit line, and the name cut to a valid name's length
    // at most, so that a huge one does not make a huge line.
    spdlog::info("audit method={} upstream=\"{}{}\" result={} peer={}{}{}", method,
                 absl::CHexEscape(upstream.substr(0, 128)), upstream.size() > 128 ? "..." : "",
                 code, context->peer(), status.ok() ? "" : " error=\"",
                 status.ok() ? std::string() : absl::CHexEscape(status.message()) + "\"");
  }
  return ToGrpc(status);
}

grpc::Status AdminService::DoCreateUpstream(grpc::CallbackServerContext* context,
                                            const v1::CreateUpstreamRequest* request,
                                            v1::Upstream* response) {
  if (auto denied = Deny(context, "CreateUpstream", request->upstream().name(), true))
    return *denied;
  absl::Status status;
  if (absl::StatusOr<core::UpstreamConfig> config = FromProto(request->upstream()); config.ok()) {
    auto snapshot = registry_.CreateUpstream(*std::move(config));
    status = snapshot.status();
    if (snapshot.ok()) *response = ToProto((*snapshot)->config());
  } else {
    status = config.status();
  }
  return Finish(context, "CreateUpstream", request->upstream().name(), status, true);
}

grpc::Status AdminService::DoGetUpstream(grpc::CallbackServerContext* context,
                                         const v1::GetUpstreamRequest* request,
                                         v1::Upstream* response) {
  if (auto denied = Deny(context, "GetUpstream", request->name(), false)) return *denied;
  auto snapshot = registry_.Get(request->name());
  if (snapshot.ok()) *response = ToProto((*snapshot)->config());
  return Finish(context, "GetUpstream", request->name(), snapshot.status(), false);
}

grpc::Status AdminService::DoListUpstreams(grpc::CallbackServerContext* context,
                                           const v1::ListUpstreamsRequest* request,
                                           v1::ListUpstreamsResponse* response) {
  if (auto denied = Deny(context, "ListUpstreams", "", false)) return *denied;
  for (const auto& snapshot : registry_.List()) {
    *response->add_upstreams() = ToProto(snapshot->config());
  }
  return Finish(context, "ListUpstreams", "", absl::OkStatus(), false);
}

grpc::Status AdminService::DoUpdateUpstream(grpc::CallbackServerContext* context,
                                            const v1::UpdateUpstreamRequest* request,
                                            v1::Upstream* response) {
  if (auto denied = Deny(context, "UpdateUpstream", request->upstream().name(), true))
    return *denied;
  absl::Status status;
  if (absl::StatusOr<core::UpstreamConfig> config = FromProto(request->upstream()); config.ok()) {
    auto snapshot = registry_.UpdateUpstream(*std::move(config));
    status = snapshot.status();
    if (snapshot.ok()) *response = ToProto((*snapshot)->config());
  } else {
    status = config.status();
  }
  return Finish(context, "UpdateUpstream", request->upstream().name(), status, true);
}

grpc::Status AdminService::DoDeleteUpstream(grpc::CallbackServerContext* context,
                                            const v1::DeleteUpstreamRequest* request,
                                            v1::DeleteUpstreamResponse* response) {
  if (auto denied = Deny(context, "DeleteUpstream", request->name(), true)) return *denied;
  return Finish(context, "DeleteUpstream", request->name(),
                registry_.DeleteUpstream(request->name()), true);
}

grpc::Status AdminService::DoPutTarget(grpc::CallbackServerContext* context,
                                       const v1::PutTargetRequest* request, v1::Target* response) {
  if (auto denied = Deny(context, "PutTarget", request->upstream(), true)) return *denied;
  auto target = registry_.PutTarget(request->upstream(), PatchFromProto(request->target()));
  if (target.ok()) *response = ToProto(*target);
  return Finish(context, "PutTarget", request->upstream(), target.status(), true);
}

grpc::Status AdminService::DoDeleteTarget(grpc::CallbackServerContext* context,
                                          const v1::DeleteTargetRequest* request,
                                          v1::DeleteTargetResponse* response) {
  if (auto denied = Deny(context, "DeleteTarget", request->upstream(), true)) return *denied;
  return Finish(context, "DeleteTarget", request->upstream(),
                registry_.DeleteTarget(request->upstream(), request->address()), true);
}

grpc::Status AdminService::DoReplaceTargets(grpc::CallbackServerContext* context,
                                            const v1::ReplaceTargetsRequest* request,
                                            v1::ReplaceTargetsResponse* response) {
  if (auto denied = Deny(context, "ReplaceTargets", request->upstream(), true)) return *denied;
  std::vector<core::TargetConfig> targets;
  targets.reserve(request->targets_size());
  absl::Status status;
  for (int i = 0; i < request->targets_size() && status.ok(); ++i) {
    absl::StatusOr<core::TargetConfig> target =
        FromProto(request->targets(i), absl::StrCat("targets[", i, "]"));
    if (target.ok()) {
      targets.push_back(*std::move(target));
    } else {
      status = target.status();
    }
  }
  if (status.ok()) {
    auto snapshot = registry_.ReplaceTargets(request->upstream(), std::move(targets));
    status = snapshot.status();
    if (snapshot.ok()) {
      for (const core::SnapshotTarget& t : (*snapshot)->targets()) {
        *response->add_targets() = ToProto(t.config);
      }
    }
  }
  return Finish(context, "ReplaceTargets", request->upstream(), status, true);
}

grpc::Status AdminService::DoListTargets(grpc::CallbackServerContext* context,
                                         const v1::ListTargetsRequest* request,
                                         v1::ListTargetsResponse* response) {
  if (auto denied = Deny(context, "ListTargets", request->upstream(), false)) return *denied;
  auto snapshot = registry_.Get(request->upstream());
  if (snapshot.ok()) {
    for (const core::SnapshotTarget& t : (*snapshot)->targets()) {
      *response->add_targets() = ToProto(t.config);
    }
  }
  return Finish(context, "ListTargets", request->upstream(), snapshot.status(), false);
}

grpc::Status AdminService::DoSetTargetHealth(grpc::CallbackServerContext* context,
                                             const v1::SetTargetHealthRequest* request,
                                             v1::SetTargetHealthResponse* response) {
  if (auto denied = Deny(context, "SetTargetHealth", request->upstream(), true)) return *denied;
  absl::Status status;
  if (auto health_override = FromProto(request->override()); health_override.ok()) {
    auto snapshot =
        registry_.SetTargetHealth(request->upstream(), request->address(), *health_override);
    status = snapshot.status();
    if (snapshot.ok()) {
      // The registry accepted the address, so it has a canonical form.
      const std::string address = *core::CanonicalAddress(request->address(), "address");
      if (std::optional<uint32_t> i = (*snapshot)->Find(address)) {
        *response->mutable_target() = ToProto((*snapshot)->targets()[*i]);
      }
    }
  } else {
    status = health_override.status();
  }
  return Finish(context, "SetTargetHealth", request->upstream(), status, true);
}

grpc::Status AdminService::DoGetUpstreamHealth(grpc::CallbackServerContext* context,
                                               const v1::GetUpstreamHealthRequest* request,
                                               v1::UpstreamHealth* response) {
  if (auto denied = Deny(context, "GetUpstreamHealth", request->name(), false)) return *denied;
  auto snapshot = registry_.Get(request->name());
  if (snapshot.ok()) *response = HealthToProto(**snapshot);
  return Finish(context, "GetUpstreamHealth", request->name(), snapshot.status(), false);
}

AdminService::AdminService(core::Registry& registry, metrics::Metrics& metrics, std::string token,
                           CallTracker& calls)
    : registry_(registry), metrics_(metrics), token_(std::move(token)), calls_(calls) {
  CaptureProtobufParseErrors();
  writer_ = std::thread([this] { WriterLoop(); });
}

AdminService::~AdminService() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  writer_.join();
}

void AdminService::WriterLoop() {
  core::NameThisThread("admin-writer");
  // A bound on a batch keeps the first write's answer from waiting on an
  // unbounded queue behind it.
  constexpr size_t kMaxBatch = 64;
  std::vector<QueuedWrite> batch;
  std::vector<grpc::Status> answers;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !writes_.empty(); });
    if (writes_.empty()) return;  // Stopping, and nothing left to answer.
    batch.clear();
    while (!writes_.empty() && batch.size() < kMaxBatch) {
      batch.push_back(std::move(writes_.front()));
      writes_.pop_front();
    }
    lock.unlock();
    registry_.BeginStoreBatch();
    answers.clear();
    for (QueuedWrite& write : batch) answers.push_back(write.run());
    const auto commit_start = std::chrono::steady_clock::now();
    const absl::Status durable = registry_.CommitStoreBatch();
    metrics_.ObserveStoreCommit(std::chrono::steady_clock::now() - commit_start, batch.size());
    if (!durable.ok()) {
      // The writes are applied in memory but may not be on disk, and a
      // failed sync cannot be retried with any certainty (the kernel may
      // have dropped the dirty pages). Stop, as databases do, so that a
      // restart serves what the disk holds; no write of the batch was
      // acknowledged.
      spdlog::critical("cannot make {} admin write(s) durable: {}; stopping", batch.size(),
                       std::string(durable.message()));
      spdlog::shutdown();
      std::abort();
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].reactor->Finish(answers[i]);
      calls_.End();
    }
    lock.lock();
  }
}

std::optional<grpc::Status> AdminService::Parse(grpc::CallbackServerContext* context,
                                                const char* method, bool write,
                                                const grpc::ByteBuffer& wire,
                                                google::protobuf::Message& request) {
  absl::Status parsed = ParseFromWire(wire, request);
  if (parsed.ok()) return std::nullopt;
  if (auto denied = Deny(context, method, "", write)) return denied;
  return Finish(context, method, "",
                absl::InvalidArgumentError(absl::StrCat("request: ", parsed.message())), write);
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminService::Read(grpc::CallbackServerContext* context,
                                             const char* method,
                                             const grpc::ByteBuffer& request_wire,
                                             grpc::ByteBuffer& response_wire,
                                             Handler<Request, Response> handler) {
  calls_.Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Request request;
  Response response;
  std::optional<grpc::Status> status = Parse(context, method, false, request_wire, request);
  if (!status) {
    status = (this->*handler)(context, &request, &response);
    if (status->ok()) SerializeToWire(response, response_wire);
  }
  reactor->Finish(*status);
  calls_.End();
  return reactor;
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminService::Write(grpc::CallbackServerContext* context,
                                              const char* method,
                                              const grpc::ByteBuffer& request_wire,
                                              grpc::ByteBuffer& response_wire,
                                              Handler<Request, Response> handler) {
  calls_.Begin();  // Ended once the writer has answered it.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The messages live until the writer has run the handler.
  auto messages = std::make_shared<std::pair<Request, Response>>();
  if (auto refused = Parse(context, method, true, request_wire, messages->first)) {
    reactor->Finish(*refused);
    calls_.End();
    return reactor;
  }
  grpc::ByteBuffer* out = &response_wire;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writes_.push_back(QueuedWrite{reactor, [this, context, messages, out, handler] {
                                    grpc::Status status = (this->*handler)(
                                        context, &messages->first, &messages->second);
                                    if (status.ok()) SerializeToWire(messages->second, *out);
                                    return status;
                                  }});
  }
  cv_.notify_one();
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::CreateUpstream(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write(context, "CreateUpstream", *request, *response, &AdminService::DoCreateUpstream);
}

grpc::ServerUnaryReactor* AdminService::GetUpstream(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  return Read(context, "GetUpstream", *request, *response, &AdminService::DoGetUpstream);
}

grpc::ServerUnaryReactor* AdminService::ListUpstreams(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return Read(context, "ListUpstreams", *request, *response, &AdminService::DoListUpstreams);
}

grpc::ServerUnaryReactor* AdminService::UpdateUpstream(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write(context, "UpdateUpstream", *request, *response, &AdminService::DoUpdateUpstream);
}

grpc::ServerUnaryReactor* AdminService::DeleteUpstream(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write(context, "DeleteUpstream", *request, *response, &AdminService::DoDeleteUpstream);
}

grpc::ServerUnaryReactor* AdminService::PutTarget(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request,
                                                  grpc::ByteBuffer* response) {
  return Write(context, "PutTarget", *request, *response, &AdminService::DoPutTarget);
}

grpc::ServerUnaryReactor* AdminService::DeleteTarget(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return Write(context, "DeleteTarget", *request, *response, &AdminService::DoDeleteTarget);
}

grpc::ServerUnaryReactor* AdminService::ReplaceTargets(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write(context, "ReplaceTargets", *request, *response, &AdminService::DoReplaceTargets);
}

grpc::ServerUnaryReactor* AdminService::ListTargets(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  return Read(context, "ListTargets", *request, *response, &AdminService::DoListTargets);
}

grpc::ServerUnaryReactor* AdminService::SetTargetHealth(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  return Write(context, "SetTargetHealth", *request, *response, &AdminService::DoSetTargetHealth);
}

grpc::ServerUnaryReactor* AdminService::GetUpstreamHealth(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  return Read(context, "GetUpstreamHealth", *request, *response,
              &AdminService::DoGetUpstreamHealth);
}

}  // namespace picker::api
