#include "server/api/admin_service.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/attributes.h"
#include "server/api/convert.h"
#include "server/api/insight.h"
#include "server/api/paging.h"
#include "server/api/status.h"
#include "server/api/wire.h"
#include "server/core/address.h"
#include "server/net/acceptor.h"
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

// The upstream a request is about, for audit lines.
const std::string& UpstreamOf(const v1::CreateUpstreamRequest& r) { return r.upstream().name(); }
const std::string& UpstreamOf(const v1::UpdateUpstreamRequest& r) { return r.upstream().name(); }
const std::string& UpstreamOf(const v1::DeleteUpstreamRequest& r) { return r.name(); }
template <typename Request>
const std::string& UpstreamOf(const Request& r) {
  return r.upstream();
}

// The stored target at the address a request named (any spelling).
const core::StoredTarget* StoredTargetAt(const control::WriteResult& result,
                                         const std::string& address) {
  absl::StatusOr<std::string> canonical = core::CanonicalAddress(address, "address");
  if (!result.record || !canonical.ok()) return nullptr;
  for (const core::StoredTarget& t : result.record->targets) {
    if (t.config.address == *canonical) return &t;
  }
  return nullptr;
}

// Where a page of targets starts: after the token's target, wherever it is
// now, or at its old position if it is gone.
size_t TargetStart(const core::UpstreamSnapshot& snapshot, const PageCursor& cursor) {
  if (cursor.last.empty()) return 0;
  if (std::optional<uint32_t> i = snapshot.Find(cursor.last)) return *i + 1;
  return std::min<size_t>(cursor.index, snapshot.targets().size());
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
                                  bool write, bool dry_run) {
  const char* code = CodeName(status.code());
  metrics_.CountAdminOperation(method, code);
  if (write) {
    // The name and message come from the caller: escaped (quotes, newlines,
    // control bytes as C escapes), so that they cannot end the quoted value
    // or start a forged audit line, and the name cut to a valid name's length
    // at most, so that a huge one does not make a huge line.
    spdlog::info("audit method={} upstream=\"{}{}\" result={} peer={}{}{}{}", method,
                 absl::CHexEscape(upstream.substr(0, 128)), upstream.size() > 128 ? "..." : "",
                 code, net::PeerAddress(context->peer()), dry_run ? " validate_only=true" : "",
                 status.ok() ? "" : " error=\"",
                 status.ok() ? std::string() : absl::CHexEscape(status.message()) + "\"");
  }
  return ToGrpc(status);
}

// ---------------------------------------------------------------------------
// Reads, from the published snapshots.

absl::Status AdminService::GetUpstreamRead(const v1::GetUpstreamRequest& request,
                                           v1::Upstream& response) {
  auto snapshot = snapshots_.Get(request.name(), "name");
  if (snapshot.ok()) response = ToProto((*snapshot)->config());
  return snapshot.status();
}

absl::Status AdminService::ListUpstreamsRead(const v1::ListUpstreamsRequest& request,
                                             v1::ListUpstreamsResponse& response) {
  absl::StatusOr<Page> page =
      Page::Read(request.page_size(), request.page_token(), PageKind::kUpstreams);
  if (!page.ok()) return page.status();
  // One more than a page can hold tells whether another page follows.
  const auto listed = snapshots_.ListAfter(page->cursor().last, kMaxPageSize + 1);
  const size_t end = FillPage(
      *page, 0, listed.size(),
      [&](size_t i) {
        v1::Upstream* upstream = response.add_upstreams();
        *upstream = ToProto(listed[i]->config());
        return upstream->ByteSizeLong();
      },
      [&] { response.mutable_upstreams()->RemoveLast(); });
  if (end < listed.size()) {
    response.set_next_page_token(page->TokenAfter(listed[end - 1]->config().name));
  }
  return absl::OkStatus();
}

absl::Status AdminService::ListTargetsRead(const v1::ListTargetsRequest& request,
                                           v1::ListTargetsResponse& response) {
  absl::StatusOr<Page> page =
      Page::Read(request.page_size(), request.page_token(), PageKind::kTargets);
  if (!page.ok()) return page.status();
  auto snapshot = snapshots_.Get(request.upstream(), "name");
  if (!snapshot.ok()) return snapshot.status();
  const std::vector<core::SnapshotTarget>& targets = (*snapshot)->targets();
  const size_t end = FillPage(
      *page, TargetStart(**snapshot, page->cursor()), targets.size(),
      [&](size_t i) {
        v1::Target* target = response.add_targets();
        ToProto(targets[i].config, target);
        return target->ByteSizeLong();
      },
      [&] { response.mutable_targets()->RemoveLast(); });
  if (end < targets.size() && end > 0) {
    response.set_next_page_token(page->TokenAfter(targets[end - 1].config.address, end));
  }
  return absl::OkStatus();
}

absl::Status AdminService::GetUpstreamHealthRead(const v1::GetUpstreamHealthRequest& request,
                                                 v1::UpstreamHealth& response) {
  absl::StatusOr<Page> page =
      Page::Read(request.page_size(), request.page_token(), PageKind::kTargets);
  if (!page.ok()) return page.status();
  auto snapshot = snapshots_.Get(request.name(), "name");
  if (!snapshot.ok()) return snapshot.status();
  const core::UpstreamSnapshot& s = **snapshot;
  response.set_name(s.config().name);
  response.set_panic(s.panic());
  response.set_healthy_targets(s.healthy_count());
  response.set_total_targets(static_cast<uint32_t>(s.targets().size()));
  const std::vector<core::SnapshotTarget>& targets = s.targets();
  const core::WallTime now = std::chrono::system_clock::now();
  const size_t end = FillPage(
      *page, TargetStart(s, page->cursor()), targets.size(),
      [&](size_t i) {
        v1::TargetHealth* target = response.add_targets();
        *target = ToProto(targets[i], s.SlowStartFactorOf(static_cast<uint32_t>(i), now));
        return target->ByteSizeLong();
      },
      [&] { response.mutable_targets()->RemoveLast(); });
  if (end < targets.size() && end > 0) {
    response.set_next_page_token(page->TokenAfter(targets[end - 1].config.address, end));
  }
  return absl::OkStatus();
}

absl::Status AdminService::ExplainPickRead(const v1::PickRequest& request,
                                           v1::PickExplanation& response) {
  if (absl::Status s = CheckAttributes(request); !s.ok()) return s;
  AttributesView attributes(request);
  absl::StatusOr<data::PickExplanation> explained = data_.Explain(PickInputOf(request, attributes));
  if (explained.ok()) response = ExplanationToProto(*explained);
  return explained.status();
}

AdminService::AdminService(control::ControlPlane& control, const data::DataPlane& data,
                           const core::SnapshotMap& snapshots, metrics::Metrics& metrics,
                           std::string token, CallTracker& calls, core::ProcessStats* stats,
                           const core::Replicas* replicas, Forwarder* forwarder)
    : control_(control),
      data_(data),
      snapshots_(snapshots),
      metrics_(metrics),
      token_(std::move(token)),
      calls_(calls),
      stats_(stats),
      replicas_(replicas),
      forwarder_(forwarder) {
  CaptureProtobufParseErrors();
}

std::optional<grpc::Status> AdminService::Shed(grpc::CallbackServerContext* context,
                                               const char* method, absl::string_view upstream) {
  absl::Status refused =
      core::RefuseWriteWhenOverloaded(stats_, absl::StartsWith(method, "Delete"));
  if (refused.ok()) return std::nullopt;
  return Finish(context, method, upstream, refused, true);
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
                                             ReadHandler<Request, Response> handler) {
  calls_.Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Request request;
  Response response;
  std::optional<grpc::Status> status = Parse(context, method, false, request_wire, request);
  if (!status) status = Deny(context, method, "", false);
  if (!status) {
    const absl::Status read = (this->*handler)(request, response);
    if (read.ok()) SerializeToWire(response, response_wire);
    status = Finish(context, method, "", read, false);
  }
  reactor->Finish(*status);
  calls_.End();
  return reactor;
}

template <typename Request, typename Response, typename Answer>
grpc::ServerUnaryReactor* AdminService::Write(grpc::CallbackServerContext* context,
                                              const char* method,
                                              const grpc::ByteBuffer& request_wire,
                                              grpc::ByteBuffer& response_wire, Answer answer) {
  calls_.Begin();  // Ended once the control plane has answered it.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The request lives until the control plane has answered.
  auto request = std::make_shared<Request>();
  std::optional<grpc::Status> refused = Parse(context, method, true, request_wire, *request);
  if (!refused) refused = Deny(context, method, UpstreamOf(*request), true);
  if (!refused) refused = Shed(context, method, UpstreamOf(*request));
  absl::StatusOr<core::Change> change = absl::UnknownError("");
  const bool dry_run = request->validate_only();
  if (!refused) {
    change = ChangeFromProto(*request);
    if (!change.ok()) {
      refused = Finish(context, method, UpstreamOf(*request), change.status(), true, dry_run);
    }
  }
  if (refused) {
    reactor->Finish(*refused);
    calls_.End();
    return reactor;
  }
  control_.Submit(
      *std::move(change),
      [this, context, reactor, method, request, answer, dry_run,
       out = &response_wire](absl::StatusOr<control::WriteResult> result) {
        if (result.ok()) {
          Response response;
          answer(*request, *result, response);
          SerializeToWire(response, *out);
        }
        reactor->Finish(
            Finish(context, method, UpstreamOf(*request), result.status(), true, dry_run));
        calls_.End();
      },
      control::SubmitOptions{.validate_only = dry_run});
  return reactor;
}

// ---------------------------------------------------------------------------
// The methods.

grpc::ServerUnaryReactor* AdminService::CreateUpstream(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write<v1::CreateUpstreamRequest, v1::Upstream>(
      context, "CreateUpstream", *request, *response,
      [](const v1::CreateUpstreamRequest&, const control::WriteResult& w, v1::Upstream& out) {
        out = ToProto(w.record->config);
      });
}

grpc::ServerUnaryReactor* AdminService::GetUpstream(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  return Read(context, "GetUpstream", *request, *response, &AdminService::GetUpstreamRead);
}

grpc::ServerUnaryReactor* AdminService::ListUpstreams(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return Read(context, "ListUpstreams", *request, *response, &AdminService::ListUpstreamsRead);
}

grpc::ServerUnaryReactor* AdminService::UpdateUpstream(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write<v1::UpdateUpstreamRequest, v1::Upstream>(
      context, "UpdateUpstream", *request, *response,
      [](const v1::UpdateUpstreamRequest&, const control::WriteResult& w, v1::Upstream& out) {
        out = ToProto(w.record->config);
      });
}

grpc::ServerUnaryReactor* AdminService::DeleteUpstream(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write<v1::DeleteUpstreamRequest, v1::DeleteUpstreamResponse>(
      context, "DeleteUpstream", *request, *response,
      [](const auto&, const control::WriteResult&, auto&) {});
}

grpc::ServerUnaryReactor* AdminService::PutTarget(grpc::CallbackServerContext* context,
                                                  const grpc::ByteBuffer* request,
                                                  grpc::ByteBuffer* response) {
  return Write<v1::PutTargetRequest, v1::Target>(
      context, "PutTarget", *request, *response,
      [](const v1::PutTargetRequest& r, const control::WriteResult& w, v1::Target& out) {
        if (const core::StoredTarget* t = StoredTargetAt(w, r.target().address())) {
          out = ToProto(t->config);
        }
      });
}

grpc::ServerUnaryReactor* AdminService::DeleteTarget(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return Write<v1::DeleteTargetRequest, v1::DeleteTargetResponse>(
      context, "DeleteTarget", *request, *response,
      [](const auto&, const control::WriteResult&, auto&) {});
}

grpc::ServerUnaryReactor* AdminService::ReplaceTargets(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  return Write<v1::ReplaceTargetsRequest, v1::ReplaceTargetsResponse>(
      context, "ReplaceTargets", *request, *response,
      [](const v1::ReplaceTargetsRequest&, const control::WriteResult& w,
         v1::ReplaceTargetsResponse& out) {
        // The first page of the stored set, so that the answer fits a
        // default client however large the set; ListTargets continues it.
        const std::vector<core::StoredTarget>& targets = w.record->targets;
        Page page = Page::Whole(PageKind::kTargets);
        const size_t end = FillPage(
            page, 0, targets.size(),
            [&](size_t i) {
              v1::Target* target = out.add_targets();
              ToProto(targets[i].config, target);
              return target->ByteSizeLong();
            },
            [&] { out.mutable_targets()->RemoveLast(); });
        if (end < targets.size() && end > 0) {
          out.set_next_page_token(page.TokenAfter(targets[end - 1].config.address, end));
        }
      });
}

grpc::ServerUnaryReactor* AdminService::ListTargets(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  return Read(context, "ListTargets", *request, *response, &AdminService::ListTargetsRead);
}

grpc::ServerUnaryReactor* AdminService::SetTargetHealth(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  return Write<v1::SetTargetHealthRequest, v1::SetTargetHealthResponse>(
      context, "SetTargetHealth", *request, *response,
      [](const v1::SetTargetHealthRequest& r, const control::WriteResult& w,
         v1::SetTargetHealthResponse& out) {
        absl::StatusOr<std::string> address = core::CanonicalAddress(r.address(), "address");
        if (!w.snapshot || !address.ok()) return;
        if (std::optional<uint32_t> i = w.snapshot->Find(*address)) {
          *out.mutable_target() =
              ToProto(w.snapshot->targets()[*i],
                      w.snapshot->SlowStartFactorOf(*i, std::chrono::system_clock::now()));
        }
      });
}

grpc::ServerUnaryReactor* AdminService::GetUpstreamHealth(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request,
                                                          grpc::ByteBuffer* response) {
  v1::GetUpstreamHealthRequest parsed;
  if (ParseFromWire(*request, parsed).ok()) {  // Else Read answers the error.
    if (grpc::ServerUnaryReactor* forwarded = ForwardToOwner(
            context, core::Forwarded::kUpstreamHealth, parsed.name(), *request, *response)) {
      return forwarded;
    }
  }
  return Read(context, "GetUpstreamHealth", *request, *response,
              &AdminService::GetUpstreamHealthRead);
}

grpc::ServerUnaryReactor* AdminService::ForwardToOwner(grpc::CallbackServerContext* context,
                                                       core::Forwarded call,
                                                       const std::string& upstream,
                                                       const grpc::ByteBuffer& request,
                                                       grpc::ByteBuffer& response) {
  // A call forwarded here is answered here: a forward never loops.
  if (replicas_ == nullptr || forwarder_ == nullptr || Forwarder::WasForwarded(*context)) {
    return nullptr;
  }
  std::optional<core::Replicas::Peer> owner = replicas_->OwnerOf(upstream);
  if (!owner || owner->admin_address.empty()) return nullptr;
  const char* method = core::ForwardedName(call);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (std::optional<grpc::Status> denied = Deny(context, method, "", false)) {
    reactor->Finish(*denied);
    return reactor;
  }
  // The caller's token goes along: the owner checks it as well.
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  const std::string authorization =
      it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
  replicas_->stats().forwarded[static_cast<size_t>(call)].fetch_add(1, std::memory_order_relaxed);
  calls_.Begin();
  forwarder_->Unary(
      owner->admin_address, absl::StrCat("/picker.v1.Admin/", method), request,
      Forwarder::DeadlineFor(*context),
      [this, reactor, method, out = &response](grpc::Status status, grpc::ByteBuffer answer) {
        if (status.ok()) *out = std::move(answer);
        metrics_.CountAdminOperation(method,
                                     CodeName(static_cast<absl::StatusCode>(status.error_code())));
        reactor->Finish(status);
        calls_.End();
      },
      /*abandon=*/false, authorization);
  return reactor;
}

// The owner explains: its counts, cursors and schedules are the ones a pick
// would meet.
grpc::ServerUnaryReactor* AdminService::ExplainPick(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request,
                                                    grpc::ByteBuffer* response) {
  v1::PickRequest parsed;
  if (ParseFromWire(*request, parsed).ok()) {  // Else Read answers the error.
    if (grpc::ServerUnaryReactor* forwarded = ForwardToOwner(
            context, core::Forwarded::kExplainPick, parsed.upstream(), *request, *response)) {
      return forwarded;
    }
  }
  return Read(context, "ExplainPick", *request, *response, &AdminService::ExplainPickRead);
}

// A dry run of the proposed changes, in order; its answer is built from the
// snapshot published now and the one the changes would publish.
grpc::ServerUnaryReactor* AdminService::PreviewChange(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* request_wire,
                                                      grpc::ByteBuffer* response_wire) {
  calls_.Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const char* method = "PreviewChange";
  auto request = std::make_shared<v1::PreviewChangeRequest>();
  std::optional<grpc::Status> refused = Parse(context, method, false, *request_wire, *request);
  if (!refused) refused = Deny(context, method, "", false);
  std::vector<core::Change> changes;
  for (int i = 0; !refused && i < request->changes_size(); ++i) {
    absl::StatusOr<core::Change> change =
        ChangeFromProto(request->changes(i), absl::StrCat("changes[", i, "]"));
    if (!change.ok()) refused = Finish(context, method, "", change.status(), false);
    if (change.ok()) changes.push_back(*std::move(change));
  }
  if (refused) {
    reactor->Finish(*refused);
    calls_.End();
    return reactor;
  }
  control_.Preview(std::move(changes),
                   [this, context, reactor, method, request,
                    out = response_wire](absl::StatusOr<control::WriteResult> r) {
                     if (r.ok()) SerializeToWire(PreviewToProto(*r), *out);
                     reactor->Finish(Finish(context, method, "", r.status(), false));
                     calls_.End();
                   });
  return reactor;
}

}  // namespace picker::api
