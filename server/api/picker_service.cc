#include "server/api/picker_service.h"

#include <chrono>
#include <deque>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/attributes.h"
#include "server/api/convert.h"
#include "server/api/status.h"
#include "server/api/wire.h"

namespace picker::api {
namespace {

void SetDuration(std::chrono::milliseconds value, google::protobuf::Duration* out) {
  out->set_seconds(value.count() / 1000);
  out->set_nanos(static_cast<int32_t>(value.count() % 1000) * 1000000);
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
  PickStreamReactor(PickerService& service, data::DataPlane& data, CallTracker& calls)
      : service_(service), data_(data), calls_(calls) {
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
    for (const v1::ReleaseRequest& release : request_.releases()) {
      v1::ReleaseResponse ignored;
      service_.DoRelease(release, ignored).IgnoreError();
      std::lock_guard lock(mu_);
      held_.erase(release.lease_id());
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
      SerializeToWire(response, pending_.emplace_back());
      if (!writing_) {
        writing_ = true;
        StartWrite(&pending_.front());
      }
    }
    StartRead(&wire_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    pending_.pop_front();
    if (!ok) {
      // The client is gone; stop writing. Finish if reads already ended:
      // otherwise a read that failed while this write was in flight left
      // the stream unfinished for good, OnDone never ran, its leases were
      // never abandoned, and server shutdown waited on it forever.
      pending_.clear();
      writing_ = false;
      MaybeFinishLocked();
      return;
    }
    if (!pending_.empty()) {
      StartWrite(&pending_.front());
    } else {
      writing_ = false;
      MaybeFinishLocked();
    }
  }

  void OnDone() override {
    for (uint64_t lease_id : held_) data_.Abandon(lease_id);
    CallTracker& calls = calls_;
    delete this;
    calls.End();
  }

 private:
  void MaybeFinishLocked() {
    if (reads_done_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(end_);
    }
  }

  PickerService& service_;
  data::DataPlane& data_;
  CallTracker& calls_;
  grpc::ByteBuffer wire_;  // The message being read.
  v1::PickStreamRequest request_;
  uint64_t messages_ = 0;
  std::mutex mu_;
  std::deque<grpc::ByteBuffer> pending_;
  grpc::Status end_;  // OK, or why the stream stopped reading.
  absl::flat_hash_set<uint64_t> held_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

}  // namespace

PickerService::PickerService(data::DataPlane& data, metrics::Metrics& metrics, CallTracker& calls)
    : data_(data), metrics_(metrics), calls_(calls) {
  CaptureProtobufParseErrors();
}

template <typename Request, typename Response, typename Handler>
grpc::ServerUnaryReactor* PickerService::Unary(grpc::CallbackServerContext* context,
                                               const grpc::ByteBuffer& request_wire,
                                               grpc::ByteBuffer& response_wire, Handler handler) {
  calls_.Begin();
  // Reused by the calls this thread serves, one at a time: once their
  // fields have grown, a call allocates no message memory.
  thread_local Request request;
  thread_local Response response;
  absl::Status status = ParseFromWire(request_wire, request);
  if (!status.ok()) {
    status = absl::InvalidArgumentError(absl::StrCat("request: ", status.message()));
  } else {
    response.Clear();
    status = handler(request, response);
    if (status.ok()) SerializeToWire(response, response_wire);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  calls_.End();
  return reactor;
}

absl::Status PickerService::DoPick(const v1::PickRequest& request, v1::PickResponse& response,
                                   uint64_t* lease_id) {
  const auto start = std::chrono::steady_clock::now();
  AttributesView attributes(request.attributes());
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
  absl::StatusOr<core::LeaseState> state =
      data_.Release(request.upstream(), request.lease_id(), OutcomeOf(request.outcome()), latency);
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
      context, *request, *response, [this](const v1::PickRequest& in, v1::PickResponse& out) {
        return DoPick(in, out, nullptr);
      });
}

grpc::ServerUnaryReactor* PickerService::Release(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  return Unary<v1::ReleaseRequest, v1::ReleaseResponse>(
      context, *request, *response, [this](const v1::ReleaseRequest& in, v1::ReleaseResponse& out) {
        return DoRelease(in, out);
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* PickerService::PickStream(
    grpc::CallbackServerContext* context) {
  return new PickStreamReactor(*this, data_, calls_);
}

}  // namespace picker::api
