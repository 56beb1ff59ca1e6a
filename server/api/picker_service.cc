#include "server/api/picker_service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/attributes.h"
#include "server/api/convert.h"
#include "server/api/status.h"
#include "server/api/wire.h"
#include "server/core/lease_id.h"

namespace picker::api {
namespace {

void SetDuration(std::chrono::milliseconds value, google::protobuf::Duration* out) {
  out->set_seconds(value.count() / 1000);
  out->set_nanos(static_cast<int32_t>(value.count() % 1000) * 1000000);
}

const std::string& ForwardedMethod(core::Forwarded kind) {
  static const std::string kPick = "/picker.v1.Picker/Pick";
  static const std::string kRelease = "/picker.v1.Picker/Release";
  return kind == core::Forwarded::kPick ? kPick : kRelease;
}

// The fields of an ORCA report that WeightedRoundRobin reads; each must be
// a finite number >= 0 (ORCA's own rule), else INVALID_ARGUMENT.
absl::StatusOr<core::LoadReport> LoadReportFromProto(const v1::OrcaLoadReport& in) {
  const std::pair<const char*, double> fields[] = {
      {"cpu_utilization", in.cpu_utilization()},
      {"application_utilization", in.application_utilization()},
      {"rps_fractional", in.rps_fractional()},
      {"eps", in.eps()}};
  for (const auto& [name, value] : fields) {
    if (!std::isfinite(value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("load_report.", name, ": must be a finite number >= 0, got ", value));
    }
  }
  return core::LoadReport{.cpu_utilization = in.cpu_utilization(),
                          .application_utilization = in.application_utilization(),
                          .rps_fractional = in.rps_fractional(),
                          .eps = in.eps()};
}

data::Outcome OutcomeOf(v1::ReleaseRequest::Outcome outcome) {
  switch (outcome) {
    case v1::ReleaseRequest::FAILURE:
      return data::Outcome::kFailure;
    case v1::ReleaseRequest::TIMEOUT:
      return data::Outcome::kTimeout;
    default:
      return data::Outcome::kSuccess;
  }
}

// PickStream: answers picks in order, releases what rides along, and on the
// stream's end abandons the leases it still holds. A message that does not
// parse ends the stream with INVALID_ARGUMENT, once the answers before it
// are written: its request_id, and so which answer it wanted, is unknown.
class PickStreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  PickStreamReactor(PickerService& service, data::DataPlane& data, CallTracker& calls,
                    grpc::CallbackServerContext* context, size_t max_pending)
      : service_(service),
        data_(data),
        calls_(calls),
        context_(*context),
        max_pending_(max_pending) {
    calls_.Begin();
    StartRead(&wire_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(mu_);
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    ++messages_;
    if (absl::Status parsed = ParseFromWire(wire_, request_); !parsed.ok()) {
      std::lock_guard lock(mu_);
      reads_done_ = true;
      end_ = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("message ", messages_, ": ", parsed.message()));
      MaybeFinishLocked();
      return;
    }
    for (const v1::ReleaseRequest& release : request_.releases()) Release(release);
    if (request_.has_pick() && ForwardPick()) {
      StartRead(&wire_);
      return;
    }
    if (request_.has_pick()) {
      v1::PickStreamResponse response;
      response.set_request_id(request_.request_id());
      uint64_t lease_id = 0;
      absl::Status status = service_.DoPick(request_.pick(), *response.mutable_pick(), &lease_id);
      if (!status.ok()) {
        response.clear_pick();
        response.set_code(static_cast<int32_t>(status.code()));
        response.set_message(std::string(status.message()));
      }
      std::lock_guard lock(mu_);
      if (lease_id != 0) held_.insert(lease_id);
      AnswerLocked(response);
    }
    {
      // Flow control: with max_pending_ answers unwritten (the client does
      // not read them), read no more until a write completes, so that a
      // client that never reads costs a bounded amount of memory; HTTP/2
      // flow control then holds its further messages back in the client.
      std::lock_guard lock(mu_);
      if (pending_.size() >= max_pending_) {
        read_paused_ = true;
        return;
      }
    }
    StartRead(&wire_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    pending_.pop_front();
    if (!ok) {
      // The client is gone; stop writing. Finish if reads already ended:
      // otherwise a read that failed while this write was in flight left
      // the stream unfinished for good, OnDone never ran, its leases were
      // never abandoned, and server shutdown waited on it forever. Reads
      // paused by flow control will not resume: they are over too.
      pending_.clear();
      writing_ = false;
      if (read_paused_) reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    if (!pending_.empty()) {
      StartWrite(&pending_.front());
    } else {
      writing_ = false;
      MaybeFinishLocked();
    }
    // No read is outstanding while paused, so this one cannot race another.
    if (read_paused_ && pending_.size() < max_pending_) {
      read_paused_ = false;
      lock.unlock();
      StartRead(&wire_);
    }
  }

  void OnDone() override {
    {
      std::lock_guard lock(mu_);  // A stream cancelled before it finished.
      AbandonHeldLocked();
    }
    // Leases other replicas issued: their issuer ends them, as abandoned.
    for (const auto& [lease_id, held] : held_remote_) {
      v1::ReleaseRequest release;
      release.set_upstream(held.upstream);
      release.set_lease_id(lease_id);
      Forward(
          held.peer, core::Forwarded::kAbandon, release, [](grpc::Status, grpc::ByteBuffer) {},
          /*abandon=*/true);
    }
    CallTracker& calls = calls_;
    delete this;
    calls.End();
  }

 private:
  // A lease this stream picked on another replica.
  struct Remote {
    core::Replicas::Peer peer;
    std::string upstream;
  };

  void MaybeFinishLocked() {
    if (reads_done_ && !writing_ && forwards_ == 0 && !finished_) {
      finished_ = true;
      // Before the client learns that the stream ended (OnDone runs only
      // after it has), so that a release it sends next finds them ended.
      AbandonHeldLocked();
      Finish(end_);
    }
  }

  // Ends the leases this replica issued on the stream, as abandoned.
  void AbandonHeldLocked() {
    for (uint64_t lease_id : held_) data_.Abandon(lease_id);
    held_.clear();
  }

  // Queues an answer for the client. Requires mu_.
  void AnswerLocked(const v1::PickStreamResponse& response) {
    SerializeToWire(response, pending_.emplace_back());
    if (!writing_) {
      writing_ = true;
      StartWrite(&pending_.front());
    }
  }

  void Forward(const core::Replicas::Peer& peer, core::Forwarded kind,
               const google::protobuf::Message& message, Forwarder::Done done,
               bool abandon = false) {
    grpc::ByteBuffer wire;
    SerializeToWire(message, wire);
    service_.replica_stats().forwarded[static_cast<size_t>(kind)].fetch_add(
        1, std::memory_order_relaxed);
    service_.forwarder().Unary(
        peer.address,
        kind == core::Forwarded::kRelease || kind == core::Forwarded::kAbandon
            ? "/picker.v1.Picker/Release"
            : "/picker.v1.Picker/Pick",
        wire, std::chrono::system_clock::now() + std::chrono::seconds(10), std::move(done),
        abandon);
  }

  // A release riding along: here, or to the replica that issued its lease.
  void Release(const v1::ReleaseRequest& release) {
    if (std::optional<core::Replicas::Peer> peer = service_.ReleaseRoute(context_, release)) {
      {
        std::lock_guard lock(mu_);
        ++forwards_;
        held_remote_.erase(release.lease_id());
      }
      Forward(*peer, core::Forwarded::kRelease, release, [this](grpc::Status, grpc::ByteBuffer) {
        std::lock_guard lock(mu_);
        --forwards_;
        MaybeFinishLocked();
      });
      return;
    }
    v1::ReleaseResponse ignored;
    service_.CountedRelease(release, ignored).IgnoreError();
    std::lock_guard lock(mu_);
    held_.erase(release.lease_id());
  }

  // The message's pick, when another replica owns its upstream: answered
  // when the owner answers. False when it is to be served here.
  bool ForwardPick() {
    std::optional<core::Replicas::Peer> peer = service_.PickRoute(context_, request_.pick());
    if (!peer) return false;
    {
      std::lock_guard lock(mu_);
      ++forwards_;
    }
    Forward(*peer, core::Forwarded::kPickStream, request_.pick(),
            [this, peer = *peer, id = request_.request_id(), upstream = request_.pick().upstream()](
                grpc::Status status, grpc::ByteBuffer answer) {
              v1::PickStreamResponse response;
              response.set_request_id(id);
              if (status.ok() && ParseFromWire(answer, *response.mutable_pick()).ok()) {
                std::lock_guard lock(mu_);
                held_remote_[response.pick().lease_id()] = Remote{peer, upstream};
              } else {
                response.clear_pick();
                response.set_code(status.ok() ? grpc::StatusCode::INTERNAL : status.error_code());
                response.set_message(status.error_message());
              }
              std::lock_guard lock(mu_);
              --forwards_;
              AnswerLocked(response);
            });
    return true;
  }

  PickerService& service_;
  data::DataPlane& data_;
  CallTracker& calls_;
  const grpc::CallbackServerContext& context_;
  const size_t max_pending_;
  grpc::ByteBuffer wire_;  // The message being read.
  v1::PickStreamRequest request_;
  uint64_t messages_ = 0;
  std::mutex mu_;
  std::deque<grpc::ByteBuffer> pending_;
  grpc::Status end_;  // OK, or why the stream stopped reading.
  absl::flat_hash_set<uint64_t> held_;
  absl::flat_hash_map<uint64_t, Remote> held_remote_;
  int forwards_ = 0;  // Forwarded calls not answered yet.
  bool writing_ = false;
  bool read_paused_ = false;  // Flow control: reading waits for a write.
  bool reads_done_ = false;
  bool finished_ = false;
};

}  // namespace

PickerService::PickerService(data::DataPlane& data, metrics::Metrics& metrics, CallTracker& calls,
                             const core::Replicas& replicas, Forwarder& forwarder, Options options)
    : data_(data),
      metrics_(metrics),
      calls_(calls),
      replicas_(replicas),
      forwarder_(forwarder),
      boot_(data.leases().boot()),
      options_(options) {
  CaptureProtobufParseErrors();
}

template <typename Request, typename Response, typename Route, typename Handler>
grpc::ServerUnaryReactor* PickerService::Unary(grpc::CallbackServerContext* context,
                                               const grpc::ByteBuffer& request_wire,
                                               grpc::ByteBuffer& response_wire, Route route,
                                               core::Forwarded kind, Handler handler) {
  calls_.Begin();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Reused by the calls this thread serves, one at a time: once their
  // fields have grown, a call allocates no message memory.
  thread_local Request request;
  thread_local Response response;
  absl::Status status = ParseFromWire(request_wire, request);
  if (!status.ok()) {
    status = absl::InvalidArgumentError(absl::StrCat("request: ", status.message()));
  } else if (std::optional<core::Replicas::Peer> peer = route(*context, request)) {
    // Served by another replica: the request's bytes go there as they came.
    replicas_.stats().forwarded[static_cast<size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
    forwarder_.Unary(
        peer->address, ForwardedMethod(kind), request_wire, Forwarder::DeadlineFor(*context),
        [this, reactor, out = &response_wire](grpc::Status s, grpc::ByteBuffer answer) {
          if (s.ok()) *out = std::move(answer);
          reactor->Finish(s);
          calls_.End();
        });
    return reactor;
  } else {
    response.Clear();
    status = handler(*context, request, response);
    if (status.ok()) SerializeToWire(response, response_wire);
  }
  reactor->Finish(ToGrpc(status));
  calls_.End();
  return reactor;
}

std::optional<core::Replicas::Peer> PickerService::PickRoute(
    const grpc::CallbackServerContext& context, const v1::PickRequest& request) const {
  if (Forwarder::WasForwarded(context)) return std::nullopt;
  return replicas_.OwnerOf(request.upstream());
}

std::optional<core::Replicas::Peer> PickerService::ReleaseRoute(
    const grpc::CallbackServerContext& context, const v1::ReleaseRequest& request) const {
  if (Forwarder::WasForwarded(context)) return std::nullopt;
  const uint64_t boot = core::LeaseId::Decode(request.lease_id()).boot;
  if (boot == boot_ || boot == 0) return std::nullopt;
  return replicas_.IssuerOf(boot);
}

bool PickerService::IssuerIsGone(uint64_t lease_id) const {
  const uint64_t boot = core::LeaseId::Decode(lease_id).boot;
  return replicas_.shared() && boot != boot_ && boot != 0 && !replicas_.IssuerOf(boot);
}

absl::Status PickerService::DoPick(const v1::PickRequest& request, v1::PickResponse& response,
                                   uint64_t* lease_id) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = CheckAttributes(request); !s.ok()) return s;
  AttributesView attributes(request);
  const data::PickInput input = PickInputOf(request, attributes);

  absl::StatusOr<data::PickOutput> out = data_.Pick(input);
  if (!out.ok()) {
    if (out.status().code() == absl::StatusCode::kNotFound) {
      metrics_.unknown_upstream_picks().Increment();
    }
    return out.status();
  }
  response.set_target(out->target->config.address);
  response.set_zone(out->target->config.zone);
  response.set_lease_id(out->lease_id);
  SetDuration(out->lease_ttl, response.mutable_lease_ttl());
  if (out->hash) response.set_hash(*out->hash);
  for (const core::GeneratedCookie& cookie : out->cookies) {
    v1::SetCookie* c = response.add_set_cookies();
    c->set_name(cookie.name);
    c->set_value(cookie.value);
    SetDuration(cookie.ttl, c->mutable_ttl());
    c->set_path(cookie.path);
  }
  if (lease_id != nullptr) *lease_id = out->lease_id;
  metrics_.pick_duration().Observe(std::chrono::steady_clock::now() - start);
  return absl::OkStatus();
}

absl::Status PickerService::DoRelease(const v1::ReleaseRequest& request,
                                      v1::ReleaseResponse& response) {
  if (request.lease_id() == 0) return absl::InvalidArgumentError("lease_id: is required");
  std::optional<std::chrono::nanoseconds> latency;
  if (request.has_latency()) {
    // Bounded: seconds near INT64_MAX overflowed the conversion (UB).
    absl::StatusOr<std::chrono::nanoseconds> value =
        DurationFromProto(request.latency(), "latency");
    if (!value.ok()) return value.status();
    latency = *value;
  }
  switch (request.outcome()) {
    case v1::ReleaseRequest::OUTCOME_UNSPECIFIED:
    case v1::ReleaseRequest::SUCCESS:
    case v1::ReleaseRequest::FAILURE:
    case v1::ReleaseRequest::TIMEOUT:
      break;
    default:
      return absl::InvalidArgumentError("outcome: unknown value (SUCCESS, FAILURE or TIMEOUT)");
  }
  std::optional<core::LoadReport> load_report;
  if (request.has_load_report()) {
    absl::StatusOr<core::LoadReport> report = LoadReportFromProto(request.load_report());
    if (!report.ok()) return report.status();
    load_report = *report;
  }
  if (IssuerIsGone(request.lease_id())) {
    // Issued by a replica that is gone, whose end ended the lease.
    if (!data_.Knows(request.upstream())) return core::UnknownUpstream(request.upstream());
    response.set_state(v1::ReleaseResponse::EXPIRED);
    return absl::OkStatus();
  }
  absl::StatusOr<core::LeaseState> state =
      data_.Release(request.upstream(), request.lease_id(), OutcomeOf(request.outcome()), latency,
                    load_report ? &*load_report : nullptr);
  if (!state.ok()) return state.status();
  switch (*state) {
    case core::LeaseState::kReleased:
      response.set_state(v1::ReleaseResponse::RELEASED);
      break;
    case core::LeaseState::kAlreadyReleased:
      response.set_state(v1::ReleaseResponse::ALREADY_RELEASED);
      break;
    case core::LeaseState::kExpired:
      response.set_state(v1::ReleaseResponse::EXPIRED);
      break;
    case core::LeaseState::kNeverIssued:
      break;  // Reported as NOT_FOUND by the data plane.
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* PickerService::Pick(grpc::CallbackServerContext* context,
                                              const grpc::ByteBuffer* request,
                                              grpc::ByteBuffer* response) {
  return Unary<v1::PickRequest, v1::PickResponse>(
      context, *request, *response,
      [this](const auto& c, const v1::PickRequest& in) { return PickRoute(c, in); },
      core::Forwarded::kPick,
      [this](const auto&, const v1::PickRequest& in, v1::PickResponse& out) {
        return DoPick(in, out, nullptr);
      });
}

grpc::ServerUnaryReactor* PickerService::Release(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  return Unary<v1::ReleaseRequest, v1::ReleaseResponse>(
      context, *request, *response,
      [this](const auto& c, const v1::ReleaseRequest& in) { return ReleaseRoute(c, in); },
      core::Forwarded::kRelease,
      [this](const grpc::CallbackServerContext& c, const v1::ReleaseRequest& in,
             v1::ReleaseResponse& out) {
        if (c.client_metadata().count(kAbandonMetadata) > 0) {
          // A stream on another replica ended holding this lease.
          out.set_state(data_.Abandon(in.lease_id()) ? v1::ReleaseResponse::RELEASED
                                                     : v1::ReleaseResponse::ALREADY_RELEASED);
          return absl::OkStatus();
        }
        return CountedRelease(in, out);
      });
}

absl::Status PickerService::CountedRelease(const v1::ReleaseRequest& request,
                                           v1::ReleaseResponse& response) {
  absl::Status status = DoRelease(request, response);
  if (!status.ok()) metrics_.CountReleaseError(absl::StatusCodeToString(status.code()));
  return status;
}

grpc::ServerUnaryReactor* PickerService::ListMembers(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  return Unary<v1::ListMembersRequest, v1::ListMembersResponse>(
      context, *request, *response,
      [](const auto&, const auto&) { return std::optional<core::Replicas::Peer>(); },
      core::Forwarded::kPick,
      [this](const auto&, const v1::ListMembersRequest&, v1::ListMembersResponse& out) {
        for (const core::Replicas::Peer& peer : replicas_.Members()) {
          v1::Member* m = out.add_members();
          m->set_id(peer.id);
          m->set_address(peer.address);
        }
        out.set_ownership_rule(
            "the owner of an upstream is the member with the highest xxHash64 (seed 0) of "
            "member_id + \"/\" + upstream_name, ties to the smaller member_id");
        out.set_self(replicas_.self_id());
        return absl::OkStatus();
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* PickerService::PickStream(
    grpc::CallbackServerContext* context) {
  return new PickStreamReactor(*this, data_, calls_, context,
                               std::max<size_t>(1, options_.max_pending_stream_answers));
}

}  // namespace picker::api
