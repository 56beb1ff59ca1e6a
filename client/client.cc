#include "picker/client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "picker/v1/picker.grpc.pb.h"

namespace picker {

namespace v1 = ::picker::v1;

namespace {

using SteadyClock = std::chrono::steady_clock;

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

v1::ReleaseRequest::Outcome ToProto(Outcome outcome) {
  switch (outcome) {
    case Outcome::kFailure:
      return v1::ReleaseRequest::FAILURE;
    case Outcome::kTimeout:
      return v1::ReleaseRequest::TIMEOUT;
    case Outcome::kSuccess:
      break;
  }
  return v1::ReleaseRequest::SUCCESS;
}

void SetDuration(std::chrono::nanoseconds value, google::protobuf::Duration* out) {
  if (value.count() < 0) value = std::chrono::nanoseconds(0);
  out->set_seconds(value.count() / 1000000000);
  out->set_nanos(static_cast<int32_t>(value.count() % 1000000000));
}

std::chrono::milliseconds ToMillis(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1000000);
}

v1::PickRequest ToProto(const PickOptions& options) {
  v1::PickRequest request;
  request.set_upstream(options.upstream);
  v1::RequestAttributes* attributes = request.mutable_attributes();
  for (const auto& [k, v] : options.headers) (*attributes->mutable_headers())[k] = v;
  for (const auto& [k, v] : options.cookies) (*attributes->mutable_cookies())[k] = v;
  for (const auto& [k, v] : options.query_params) (*attributes->mutable_query_params())[k] = v;
  for (const auto& [k, v] : options.filter_state) (*attributes->mutable_filter_state())[k] = v;
  attributes->set_source_ip(options.source_ip);
  request.set_client_zone(options.client_zone);
  for (const std::string& address : options.exclude) request.add_exclude(address);
  if (options.hash) request.set_hash(*options.hash);
  return request;
}

// `load_report`: a serialized ORCA OrcaLoadReport (checked when handed
// over), or empty for none.
v1::ReleaseRequest MakeRelease(const std::string& upstream, uint64_t lease_id, Outcome outcome,
                               std::optional<std::chrono::nanoseconds> latency,
                               absl::string_view load_report = {}) {
  v1::ReleaseRequest request;
  request.set_upstream(upstream);
  request.set_lease_id(lease_id);
  request.set_outcome(ToProto(outcome));
  if (latency) SetDuration(*latency, request.mutable_latency());
  if (!load_report.empty()) {
    request.mutable_load_report()->ParseFromArray(load_report.data(),
                                                  static_cast<int>(load_report.size()));
  }
  return request;
}

absl::Status ValidateOptions(const ClientOptions& options) {
  if (options.deadline.count() <= 0) {
    return absl::InvalidArgumentError("ClientOptions.deadline: must be positive");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("ClientOptions.max_attempts: must be at least 1");
  }
  if (options.release_flush_interval.count() < 0) {
    return absl::InvalidArgumentError("ClientOptions.release_flush_interval: must not be negative");
  }
  if (options.max_release_batch < 1) {
    return absl::InvalidArgumentError("ClientOptions.max_release_batch: must be at least 1");
  }
  if (options.tls_cert_chain.empty() != options.tls_private_key.empty()) {
    return absl::InvalidArgumentError(
        "ClientOptions.tls_cert_chain and tls_private_key: give both or neither");
  }
  return absl::OkStatus();
}

}  // namespace

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return "SUCCESS";
    case Outcome::kFailure:
      return "FAILURE";
    case Outcome::kTimeout:
      return "TIMEOUT";
  }
  return "UNKNOWN";
}

const char* ReleaseStateName(ReleaseState state) {
  switch (state) {
    case ReleaseState::kReleased:
      return "RELEASED";
    case ReleaseState::kAlreadyReleased:
      return "ALREADY_RELEASED";
    case ReleaseState::kExpired:
      return "EXPIRED";
    case ReleaseState::kQueued:
      return "QUEUED";
  }
  return "UNKNOWN";
}

namespace internal {

// Shared by a Client, its Leases and Retries: the channel, the stub and, in
// stream mode, the PickStream session and the queue of releases.
class ClientCore {
 public:
  ClientCore(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
      : channel_(std::move(channel)),
        stub_(v1::Picker::NewStub(channel_)),
        options_(std::move(options)) {
    if (options_.use_stream) flusher_ = std::thread([this] { FlushLoop(); });
  }

  ~ClientCore() { Shutdown(); }

  const ClientOptions& options() const { return options_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  absl::StatusOr<Lease> Pick(const PickOptions& options, const std::shared_ptr<ClientCore>& self) {
    absl::StatusOr<v1::PickResponse> response =
        StreamMode() ? StreamPick(options) : UnaryPick(options);
    if (!response.ok()) return response.status();
    Lease lease;
    lease.core_ = self;
    lease.open_ = true;
    lease.upstream_ = options.upstream;
    lease.target_ = response->target();
    lease.zone_ = response->zone();
    lease.lease_id_ = response->lease_id();
    lease.lease_ttl_ = ToMillis(response->lease_ttl());
    if (response->has_hash()) lease.hash_ = response->hash();
    for (const v1::SetCookie& c : response->set_cookies()) {
      lease.set_cookies_.push_back(SetCookie{c.name(), c.value(), ToMillis(c.ttl()), c.path()});
    }
    lease.picked_at_ = SteadyClock::now();
    return lease;
  }

  // Releases a lease: queued in stream mode, a unary call otherwise.
  absl::StatusOr<ReleaseState> ReleaseLease(const std::string& upstream, uint64_t lease_id,
                                            Outcome outcome,
                                            std::optional<std::chrono::nanoseconds> latency,
                                            absl::string_view load_report) {
    if (StreamMode()) {
      std::lock_guard lock(mu_);
      if (!shutdown_) {
        QueueReleaseLocked(MakeRelease(upstream, lease_id, outcome, latency, load_report));
        return ReleaseState::kQueued;
      }
    }
    return UnaryRelease(upstream, lease_id, outcome, latency, load_report);
  }

  absl::StatusOr<ReleaseState> UnaryRelease(const std::string& upstream, uint64_t lease_id,
                                            Outcome outcome,
                                            std::optional<std::chrono::nanoseconds> latency,
                                            absl::string_view load_report = {}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.deadline);
    v1::ReleaseResponse response;
    grpc::Status status = stub_->Release(
        &context, MakeRelease(upstream, lease_id, outcome, latency, load_report), &response);
    if (!status.ok()) return FromGrpc(status);
    switch (response.state()) {
      case v1::ReleaseResponse::RELEASED:
        return ReleaseState::kReleased;
      case v1::ReleaseResponse::ALREADY_RELEASED:
        return ReleaseState::kAlreadyReleased;
      case v1::ReleaseResponse::EXPIRED:
        return ReleaseState::kExpired;
      default:
        return absl::InternalError(
            absl::StrCat("Release: unexpected state ", static_cast<int>(response.state())));
    }
  }

  absl::Status Flush() {
    if (!options_.use_stream) return absl::OkStatus();
    std::unique_lock lock(mu_);
    if (pending_.empty()) return absl::OkStatus();
    return FlushLocked(lock);
  }

  // Sends the queued releases and ends the stream. Idempotent.
  void Shutdown() {
    {
      std::lock_guard lock(mu_);
      if (shutdown_) return;
      shutdown_ = true;
    }
    flusher_cv_.notify_all();
    if (flusher_.joinable()) flusher_.join();

    std::shared_ptr<Session> session;
    v1::PickStreamRequest last;
    {
      std::lock_guard lock(mu_);
      session = std::move(session_);
      for (v1::ReleaseRequest& r : pending_) *last.add_releases() = std::move(r);
      pending_.clear();
    }
    if (session != nullptr) {
      if (last.releases_size() > 0) Write(*session, last);
      {
        std::lock_guard write_lock(session->write_mu);
        if (!session->broken) session->stream->WritesDone();
        session->writes_done = true;
      }
      // The server answers the releases in order, then ends the stream.
      std::unique_lock lock(mu_);
      if (!session_end_cv_.wait_for(lock, options_.deadline, [&] { return session->ended; })) {
        session->context.TryCancel();
      }
      dead_sessions_.push_back(std::move(session));
    }
    std::vector<std::shared_ptr<Session>> dead;
    {
      std::lock_guard lock(mu_);
      dead.swap(dead_sessions_);
    }
    for (auto& s : dead) {
      if (s->reader.joinable()) s->reader.join();
    }
  }

 private:
  // The answer a Pick on the stream waits for.
  struct Waiter {
    std::condition_variable cv;
    std::string upstream;
    bool done = false;
    // The Pick gave up waiting: a lease in the answer is released at once.
    bool abandoned = false;
    // The stream ended before the answer.
    bool stream_failed = false;
    absl::Status status;
    v1::PickResponse response;
  };

  // One PickStream call.
  struct Session {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::PickStreamRequest, v1::PickStreamResponse>> stream;
    std::thread reader;
    // Serialises writes and WritesDone.
    std::mutex write_mu;
    std::atomic<bool> broken{false};  // no more writes (written under write_mu)
    bool writes_done = false;         // guarded by write_mu
    // Guarded by ClientCore::mu_.
    absl::flat_hash_map<uint64_t, std::shared_ptr<Waiter>> waiters;
    bool ended = false;
  };

  bool StreamMode() {
    if (!options_.use_stream) return false;
    std::lock_guard lock(mu_);
    return !shutdown_;
  }

  absl::StatusOr<v1::PickResponse> UnaryPick(const PickOptions& options) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.deadline);
    v1::PickResponse response;
    grpc::Status status = stub_->Pick(&context, ToProto(options), &response);
    if (!status.ok()) return FromGrpc(status);
    return response;
  }

  absl::StatusOr<v1::PickResponse> StreamPick(const PickOptions& options) {
    const auto deadline = SteadyClock::now() + options_.deadline;
    const v1::PickRequest pick = ToProto(options);
    absl::Status last_error;
    // A stream that broke (e.g. the server restarted) is replaced once; no
    // lease can leak, since the server releases the leases of a stream that
    // ended.
    for (int attempt = 0; attempt < 2 && SteadyClock::now() < deadline; ++attempt) {
      auto waiter = std::make_shared<Waiter>();
      waiter->upstream = options.upstream;
      std::shared_ptr<Session> session;
      v1::PickStreamRequest message;
      uint64_t request_id;
      {
        std::unique_lock lock(mu_);
        if (shutdown_) {
          lock.unlock();
          return UnaryPick(options);
        }
        session = SessionLocked();
        request_id = next_request_id_++;
        message.set_request_id(request_id);
        *message.mutable_pick() = pick;
        TakePendingLocked(message);
        session->waiters[request_id] = waiter;
      }
      if (!Write(*session, message)) {
        // Releases in the lost message were of leases on this or older
        // streams, all ended: the server has released them already.
        std::lock_guard lock(mu_);
        session->waiters.erase(request_id);
        last_error = absl::UnavailableError("PickStream: the stream is broken");
        continue;
      }
      std::unique_lock lock(mu_);
      if (!waiter->cv.wait_until(lock, deadline, [&] { return waiter->done; })) {
        waiter->abandoned = true;
        return absl::DeadlineExceededError(absl::StrCat("Pick: no answer on PickStream within ",
                                                        options_.deadline.count(), " ms"));
      }
      if (waiter->stream_failed) {
        last_error = waiter->status;
        continue;
      }
      if (!waiter->status.ok()) return waiter->status;
      return std::move(waiter->response);
    }
    if (last_error.ok()) {
      last_error = absl::DeadlineExceededError("Pick: deadline exceeded before the pick was sent");
    }
    return last_error;
  }

  // The live session, a new one if there is none.
  std::shared_ptr<Session> SessionLocked() {
    if (session_ != nullptr && !session_->broken && !session_->ended) return session_;
    if (session_ != nullptr) dead_sessions_.push_back(std::move(session_));
    // Join readers of sessions that have ended (they need mu_ no more).
    for (auto it = dead_sessions_.begin(); it != dead_sessions_.end();) {
      if ((*it)->ended) {
        if ((*it)->reader.joinable()) (*it)->reader.join();
        it = dead_sessions_.erase(it);
      } else {
        ++it;
      }
    }
    auto session = std::make_shared<Session>();
    // The headers go with the first message: creating the call never blocks.
    session->context.set_initial_metadata_corked(true);
    session->stream = stub_->PickStream(&session->context);
    // The session outlives its reader: session_ or dead_sessions_ holds it
    // until the reader is joined.
    session->reader = std::thread([this, s = session.get()] { ReadLoop(s); });
    session_ = session;
    return session;
  }

  bool Write(Session& session, const v1::PickStreamRequest& message) {
    std::lock_guard lock(session.write_mu);
    if (session.broken || session.writes_done) return false;
    if (!session.stream->Write(message)) {
      session.broken = true;
      return false;
    }
    return true;
  }

  void ReadLoop(Session* session) {
    v1::PickStreamResponse response;
    while (session->stream->Read(&response)) {
      std::lock_guard lock(mu_);
      auto it = session->waiters.find(response.request_id());
      if (it == session->waiters.end()) continue;
      std::shared_ptr<Waiter> waiter = std::move(it->second);
      session->waiters.erase(it);
      if (waiter->abandoned) {
        // Nobody takes this lease: give it back.
        if (response.code() == 0 && response.pick().lease_id() != 0) {
          QueueReleaseLocked(MakeRelease(waiter->upstream, response.pick().lease_id(),
                                         Outcome::kSuccess, std::nullopt));
        }
        continue;
      }
      waiter->done = true;
      if (response.code() == 0) {
        waiter->response = std::move(*response.mutable_pick());
      } else {
        waiter->status =
            absl::Status(static_cast<absl::StatusCode>(response.code()), response.message());
      }
      waiter->cv.notify_one();
    }
    {
      std::lock_guard write_lock(session->write_mu);
      session->broken = true;
    }
    const grpc::Status status = session->stream->Finish();
    std::lock_guard lock(mu_);
    session->ended = true;
    for (auto& [id, waiter] : session->waiters) {
      waiter->done = true;
      waiter->stream_failed = true;
      waiter->status = absl::UnavailableError(
          absl::StrCat("PickStream ended before the answer: ", FromGrpc(status).ToString()));
      waiter->cv.notify_one();
    }
    session->waiters.clear();
    session_end_cv_.notify_all();
  }

  void QueueReleaseLocked(v1::ReleaseRequest release) {
    if (pending_.empty()) first_pending_at_ = SteadyClock::now();
    pending_.push_back(std::move(release));
    if (pending_.size() == 1 || pending_.size() >= options_.max_release_batch) {
      flusher_cv_.notify_one();
    }
  }

  void TakePendingLocked(v1::PickStreamRequest& message) {
    for (v1::ReleaseRequest& r : pending_) *message.add_releases() = std::move(r);
    pending_.clear();
  }

  // Sends the queued releases (mu_ held on entry and exit, not while
  // writing). With no live stream they are dropped: they are of leases on
  // streams that ended, which the server has released already.
  absl::Status FlushLocked(std::unique_lock<std::mutex>& lock) {
    v1::PickStreamRequest message;
    TakePendingLocked(message);
    if (session_ == nullptr || session_->broken || session_->ended) return absl::OkStatus();
    std::shared_ptr<Session> session = session_;
    lock.unlock();
    const bool ok = Write(*session, message);
    lock.lock();
    if (!ok) return absl::UnavailableError("PickStream: the stream broke while sending releases");
    return absl::OkStatus();
  }

  void FlushLoop() {
    std::unique_lock lock(mu_);
    while (!shutdown_) {
      if (pending_.empty()) {
        flusher_cv_.wait(lock);
        continue;
      }
      const auto due = first_pending_at_ + options_.release_flush_interval;
      if (pending_.size() < options_.max_release_batch && SteadyClock::now() < due) {
        flusher_cv_.wait_until(lock, due);
        continue;
      }
      FlushLocked(lock).IgnoreError();
    }
  }

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Picker::Stub> stub_;
  const ClientOptions options_;

  std::mutex mu_;
  std::condition_variable flusher_cv_;
  std::condition_variable session_end_cv_;
  bool shutdown_ = false;                                // guarded by mu_
  std::shared_ptr<Session> session_;                     // guarded by mu_
  std::vector<std::shared_ptr<Session>> dead_sessions_;  // guarded by mu_
  uint64_t next_request_id_ = 1;                         // guarded by mu_
  std::vector<v1::ReleaseRequest> pending_;              // guarded by mu_
  SteadyClock::time_point first_pending_at_;             // guarded by mu_
  std::thread flusher_;
};

}  // namespace internal

// ---- Lease ----

Lease::Lease(Lease&& other) noexcept { *this = std::move(other); }

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this == &other) return *this;
  if (open_) Release().IgnoreError();
  core_ = std::move(other.core_);
  open_ = std::exchange(other.open_, false);
  upstream_ = std::move(other.upstream_);
  target_ = std::move(other.target_);
  zone_ = std::move(other.zone_);
  lease_id_ = other.lease_id_;
  lease_ttl_ = other.lease_ttl_;
  hash_ = other.hash_;
  set_cookies_ = std::move(other.set_cookies_);
  outcome_ = other.outcome_;
  latency_ = other.latency_;
  load_report_ = std::move(other.load_report_);
  picked_at_ = other.picked_at_;
  return *this;
}

Lease::~Lease() {
  if (open_) Release().IgnoreError();
}

std::chrono::nanoseconds Lease::latency() const {
  if (latency_) return *latency_;
  if (picked_at_ == std::chrono::steady_clock::time_point()) return std::chrono::nanoseconds(0);
  return std::chrono::steady_clock::now() - picked_at_;
}

absl::StatusOr<ReleaseState> Lease::Release() {
  if (!open_ || core_ == nullptr) return ReleaseState::kAlreadyReleased;
  open_ = false;
  std::shared_ptr<internal::ClientCore> core = std::move(core_);
  return core->ReleaseLease(upstream_, lease_id_, outcome_, latency(), load_report_);
}

absl::Status Lease::set_load_report(absl::string_view serialized) {
  v1::OrcaLoadReport report;
  if (!report.ParseFromArray(serialized.data(), static_cast<int>(serialized.size()))) {
    return absl::InvalidArgumentError(
        "load_report: not a serialized ORCA OrcaLoadReport (the bytes of an "
        "endpoint-load-metrics-bin trailer)");
  }
  load_report_.assign(serialized.data(), serialized.size());
  return absl::OkStatus();
}

uint64_t Lease::Detach() {
  open_ = false;
  core_.reset();
  return lease_id_;
}

// ---- Retry ----

Retry::Retry(std::shared_ptr<internal::ClientCore> core, PickOptions options, int max_attempts)
    : core_(std::move(core)), options_(std::move(options)), max_attempts_(max_attempts) {}

absl::StatusOr<Lease> Retry::Next() {
  if (attempts_ >= max_attempts_) {
    return absl::FailedPreconditionError(
        absl::StrCat("Retry: all ", max_attempts_, " attempts made (max_attempts)"));
  }
  PickOptions options = options_;
  options.exclude.insert(options.exclude.end(), tried_.begin(), tried_.end());
  absl::StatusOr<Lease> lease = core_->Pick(options, core_);
  if (!lease.ok()) return lease.status();
  ++attempts_;
  tried_.push_back(lease->target());
  return lease;
}

// ---- Client ----

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const std::string& target_address,
                                                       const ClientOptions& options) {
  if (target_address.empty()) {
    return absl::InvalidArgumentError("target_address: is required (host:port)");
  }
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_cert_chain = options.tls_cert_chain;
    ssl.pem_private_key = options.tls_private_key;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  return Create(grpc::CreateChannel(target_address, credentials), options);
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(std::shared_ptr<grpc::Channel> channel,
                                                       const ClientOptions& options) {
  if (channel == nullptr) return absl::InvalidArgumentError("channel: is required");
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  return std::unique_ptr<Client>(
      new Client(std::make_shared<internal::ClientCore>(std::move(channel), options)));
}

Client::Client(std::shared_ptr<internal::ClientCore> core) : core_(std::move(core)) {}

Client::~Client() { core_->Shutdown(); }

absl::StatusOr<Lease> Client::Pick(const PickOptions& options) {
  return core_->Pick(options, core_);
}

Retry Client::NewRetry(const PickOptions& options) {
  return Retry(core_, options, core_->options().max_attempts);
}

absl::StatusOr<RetryResult> Client::PickWithRetry(
    const PickOptions& options, const std::function<Outcome(const Lease&)>& attempt) {
  Retry retry = NewRetry(options);
  RetryResult result;
  while (retry.attempts() < core_->options().max_attempts) {
    absl::StatusOr<Lease> lease = retry.Next();
    if (!lease.ok()) {
      if (result.attempts == 0) return lease.status();
      break;
    }
    const Outcome outcome = attempt(*lease);
    lease->set_outcome(outcome);
    lease->Release().IgnoreError();
    result.attempts = retry.attempts();
    result.tried = retry.tried();
    result.outcome = outcome;
    if (outcome == Outcome::kSuccess) break;
  }
  return result;
}

absl::StatusOr<ReleaseState> Client::Release(const std::string& upstream, uint64_t lease_id,
                                             Outcome outcome,
                                             std::optional<std::chrono::nanoseconds> latency,
                                             absl::string_view load_report) {
  return core_->UnaryRelease(upstream, lease_id, outcome, latency, load_report);
}

absl::Status Client::Flush() { return core_->Flush(); }

const ClientOptions& Client::options() const { return core_->options(); }

std::shared_ptr<grpc::Channel> Client::channel() const { return core_->channel(); }

}  // namespace picker
