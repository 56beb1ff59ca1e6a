#include "picker/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "picker/v1/picker.grpc.pb.h"

// Header-only xxHash: the installed library then needs no libxxhash at link
// time in the projects that use it.
#define XXH_INLINE_ALL
#include <xxhash.h>

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

v1::PickRequest ToProto(const PickOptions& options, const ClientOptions& client) {
  v1::PickRequest request;
  request.set_client_service(options.client_service.empty() ? client.client_service
                                                            : options.client_service);
  for (const auto* tags : {&client.client_tags, &options.client_tags}) {
    for (const auto& [k, v] : *tags) (*request.mutable_client_tags())[k] = v;
  }
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
  if (options.route_to_owner && options.membership_refresh_interval.count() <= 0) {
    return absl::InvalidArgumentError(
        "ClientOptions.membership_refresh_interval: must be positive with route_to_owner");
  }
  if (options.tls_cert_chain.empty() != options.tls_private_key.empty()) {
    return absl::InvalidArgumentError(
        "ClientOptions.tls_cert_chain and tls_private_key: give both or neither");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ChannelCredentials> Credentials(const ClientOptions& options) {
  if (!options.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls_root_certs;
  ssl.pem_cert_chain = options.tls_cert_chain;
  ssl.pem_private_key = options.tls_private_key;
  return grpc::SslCredentials(ssl);
}

// `members` in the ownership rule's order for `upstream`: the owner first,
// then the member that owns it once the owner is gone, and so on (removing
// the highest score leaves the next one highest).
std::vector<Member> InOwnerOrder(const std::vector<Member>& members, absl::string_view upstream) {
  std::vector<std::pair<uint64_t, const Member*>> scored;
  scored.reserve(members.size());
  for (const Member& m : members) {
    const std::string key = absl::StrCat(m.id, "/", upstream);
    scored.emplace_back(XXH64(key.data(), key.size(), 0), &m);
  }
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second->id < b.second->id;
  });
  std::vector<Member> ordered;
  ordered.reserve(scored.size());
  for (const auto& [score, m] : scored) ordered.push_back(*m);
  return ordered;
}

}  // namespace

std::optional<Member> OwnerOf(const std::vector<Member>& members, absl::string_view upstream) {
  if (members.empty()) return std::nullopt;
  return InOwnerOrder(members, upstream).front();
}

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

  absl::StatusOr<std::vector<Member>> ListMembers() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.deadline);
    v1::ListMembersResponse response;
    grpc::Status status = stub_->ListMembers(&context, v1::ListMembersRequest(), &response);
    if (!status.ok()) return FromGrpc(status);
    std::vector<Member> members;
    for (const v1::Member& m : response.members()) members.push_back(Member{m.id(), m.address()});
    return members;
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
    grpc::Status status = stub_->Pick(&context, ToProto(options, options_), &response);
    if (!status.ok()) return FromGrpc(status);
    return response;
  }

  absl::StatusOr<v1::PickResponse> StreamPick(const PickOptions& options) {
    const auto deadline = SteadyClock::now() + options_.deadline;
    const v1::PickRequest pick = ToProto(options, options_);
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

// What a Client uses: the ClientCore of the configured address and, with
// route_to_owner, one ClientCore per member address, each with its own
// channel (and stream). A Lease keeps the ClientCore that picked it, so its
// release goes to the replica that issued it.
class Router {
 public:
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string&)>;

  // `seed_address`: the configured address ("" when unknown), so that a
  // member listening there reuses the seed's channel.
  Router(std::shared_ptr<ClientCore> seed, std::string seed_address, ChannelFactory factory)
      : seed_(std::move(seed)),
        seed_address_(std::move(seed_address)),
        factory_(std::move(factory)) {
    if (options().route_to_owner) refresher_ = std::thread([this] { RefreshLoop(); });
  }
  ~Router() { Shutdown(); }

  const ClientOptions& options() const { return seed_->options(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return seed_->channel(); }

  absl::StatusOr<Lease> Pick(const PickOptions& options) {
    if (!Routing()) return seed_->Pick(options, seed_);
    absl::Status first_error;
    for (const std::shared_ptr<ClientCore>& core : Candidates(options.upstream)) {
      absl::StatusOr<Lease> lease = core->Pick(options, core);
      if (lease.ok() || !Unreachable(lease.status(), *core)) return lease;
      if (first_error.ok()) first_error = lease.status();
      RequestRefresh();
    }
    return first_error;
  }

  absl::StatusOr<ReleaseState> Release(const std::string& upstream, uint64_t lease_id,
                                       Outcome outcome,
                                       std::optional<std::chrono::nanoseconds> latency,
                                       absl::string_view load_report) {
    if (!Routing()) {
      return seed_->UnaryRelease(upstream, lease_id, outcome, latency, load_report);
    }
    absl::Status first_error;
    for (const std::shared_ptr<ClientCore>& core : Candidates(upstream)) {
      absl::StatusOr<ReleaseState> state =
          core->UnaryRelease(upstream, lease_id, outcome, latency, load_report);
      if (state.ok() || !Unreachable(state.status(), *core)) return state;
      if (first_error.ok()) first_error = state.status();
      RequestRefresh();
    }
    return first_error;
  }

  absl::Status Flush() {
    absl::Status result;
    for (const std::shared_ptr<ClientCore>& core : AllCores()) result.Update(core->Flush());
    return result;
  }

  std::vector<Member> Members() {
    std::lock_guard lock(mu_);
    return members_;
  }

  void Shutdown() {
    {
      std::lock_guard lock(mu_);
      if (shutdown_) return;
      shutdown_ = true;
    }
    refresh_cv_.notify_all();
    if (refresher_.joinable()) refresher_.join();
    for (const std::shared_ptr<ClientCore>& core : AllCores()) core->Shutdown();
  }

 private:
  // After a failed refresh, or when a replica could not be reached, the
  // members are read again at most this often.
  static constexpr std::chrono::milliseconds kMinRefreshGap{200};

  // With route_to_owner, also reads the members once before the first call.
  bool Routing() {
    if (!options().route_to_owner) return false;
    EnsureLoaded();
    return true;
  }

  // A transport failure, not the server's answer: a server that answers
  // UNAVAILABLE (no target can be picked) leaves its connection READY, and
  // another replica would only forward the pick back to the same owner.
  static bool Unreachable(const absl::Status& status, ClientCore& core) {
    return absl::IsUnavailable(status) && core.channel()->GetState(false) != GRPC_CHANNEL_READY;
  }

  // Where `upstream`'s calls go, in order: its owner, then the members that
  // would own it next, then the configured address. With one member or
  // none (a single server, an old server) the configured address alone, as
  // without routing: a lone server's advertised address may not be
  // reachable from clients.
  std::vector<std::shared_ptr<ClientCore>> Candidates(absl::string_view upstream) {
    std::vector<std::shared_ptr<ClientCore>> out;
    {
      std::lock_guard lock(mu_);
      if (members_.size() > 1) {
        for (const Member& m : InOwnerOrder(members_, upstream))
          out.push_back(cores_.at(m.address));
      }
    }
    if (std::find(out.begin(), out.end(), seed_) == out.end()) out.push_back(seed_);
    return out;
  }

  std::vector<std::shared_ptr<ClientCore>> AllCores() {
    std::vector<std::shared_ptr<ClientCore>> out = {seed_};
    std::lock_guard lock(mu_);
    for (const auto& [address, core] : cores_) {
      if (core != seed_) out.push_back(core);
    }
    return out;
  }

  // The first pick reads the members itself, so that it already goes to
  // the owner.
  void EnsureLoaded() {
    {
      std::lock_guard lock(mu_);
      if (first_read_done_) return;
    }
    std::lock_guard refresh_lock(refresh_mu_);
    {
      std::lock_guard lock(mu_);
      if (first_read_done_) return;
    }
    RefreshLocked();
  }

  // Reads the members from the configured address, else from any member.
  // Keeps the last view when none answers. Requires refresh_mu_.
  void RefreshLocked() {
    for (const std::shared_ptr<ClientCore>& core : AllCores()) {
      absl::StatusOr<std::vector<Member>> members = core->ListMembers();
      if (members.ok()) return Install(*std::move(members));
      // A server older than ListMembers: its address is used alone.
      if (core == seed_ && absl::IsUnimplemented(members.status())) return Install({});
    }
    std::lock_guard lock(mu_);
    first_read_done_ = true;
    refreshed_at_ = SteadyClock::now();
    refresh_wanted_ = true;  // Try again soon.
  }

  void Install(std::vector<Member> members) {
    std::vector<std::shared_ptr<ClientCore>> retired;
    {
      std::lock_guard lock(mu_);
      absl::flat_hash_map<std::string, std::shared_ptr<ClientCore>> cores;
      for (const Member& m : members) {
        std::shared_ptr<ClientCore>& core = cores[m.address];
        if (auto it = cores_.find(m.address); it != cores_.end()) {
          core = it->second;
        } else if (m.address == seed_address_) {
          core = seed_;
        } else {
          core = std::make_shared<ClientCore>(factory_(m.address), options());
        }
      }
      for (auto& [address, core] : cores_) {
        if (!cores.contains(address)) retired.push_back(std::move(core));
      }
      cores_ = std::move(cores);
      members_ = std::move(members);
      first_read_done_ = true;
      refreshed_at_ = SteadyClock::now();
      refresh_wanted_ = false;
    }
    // Cores of members that left end here (outside mu_: ending a stream
    // waits for it), unless a Lease still holds theirs.
    retired.clear();
  }

  void RequestRefresh() {
    {
      std::lock_guard lock(mu_);
      refresh_wanted_ = true;
    }
    refresh_cv_.notify_one();
  }

  void RefreshLoop() {
    std::unique_lock lock(mu_);
    while (!shutdown_) {
      const auto due = refreshed_at_ +
                       (refresh_wanted_ ? kMinRefreshGap : options().membership_refresh_interval);
      if (first_read_done_ && SteadyClock::now() < due) {
        refresh_cv_.wait_until(lock, due);
        continue;
      }
      lock.unlock();
      {
        std::lock_guard refresh_lock(refresh_mu_);
        RefreshLocked();
      }
      lock.lock();
    }
  }

  const std::shared_ptr<ClientCore> seed_;
  const std::string seed_address_;
  const ChannelFactory factory_;

  std::mutex refresh_mu_;  // One membership read at a time.
  std::mutex mu_;
  std::condition_variable refresh_cv_;
  bool shutdown_ = false;                                                // guarded by mu_
  bool first_read_done_ = false;                                         // guarded by mu_
  bool refresh_wanted_ = false;                                          // guarded by mu_
  SteadyClock::time_point refreshed_at_;                                 // guarded by mu_
  std::vector<Member> members_;                                          // guarded by mu_
  absl::flat_hash_map<std::string, std::shared_ptr<ClientCore>> cores_;  // guarded by mu_
  std::thread refresher_;
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

Retry::Retry(std::shared_ptr<internal::Router> router, PickOptions options, int max_attempts)
    : router_(std::move(router)), options_(std::move(options)), max_attempts_(max_attempts) {}

absl::StatusOr<Lease> Retry::Next() {
  if (attempts_ >= max_attempts_) {
    return absl::FailedPreconditionError(
        absl::StrCat("Retry: all ", max_attempts_, " attempts made (max_attempts)"));
  }
  PickOptions options = options_;
  options.exclude.insert(options.exclude.end(), tried_.begin(), tried_.end());
  absl::StatusOr<Lease> lease = router_->Pick(options);
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
  std::shared_ptr<grpc::ChannelCredentials> credentials = Credentials(options);
  auto seed = std::make_shared<internal::ClientCore>(
      grpc::CreateChannel(target_address, credentials), options);
  return std::unique_ptr<Client>(new Client(std::make_shared<internal::Router>(
      std::move(seed), target_address, [credentials](const std::string& address) {
        return grpc::CreateChannel(address, credentials);
      })));
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(std::shared_ptr<grpc::Channel> channel,
                                                       const ClientOptions& options) {
  if (channel == nullptr) return absl::InvalidArgumentError("channel: is required");
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::shared_ptr<grpc::ChannelCredentials> credentials = Credentials(options);
  auto seed = std::make_shared<internal::ClientCore>(std::move(channel), options);
  return std::unique_ptr<Client>(new Client(std::make_shared<internal::Router>(
      std::move(seed), "", [credentials](const std::string& address) {
        return grpc::CreateChannel(address, credentials);
      })));
}

Client::Client(std::shared_ptr<internal::Router> router) : router_(std::move(router)) {}

Client::~Client() { router_->Shutdown(); }

absl::StatusOr<Lease> Client::Pick(const PickOptions& options) { return router_->Pick(options); }

Retry Client::NewRetry(const PickOptions& options) {
  return Retry(router_, options, router_->options().max_attempts);
}

absl::StatusOr<RetryResult> Client::PickWithRetry(
    const PickOptions& options, const std::function<Outcome(const Lease&)>& attempt) {
  Retry retry = NewRetry(options);
  RetryResult result;
  while (retry.attempts() < router_->options().max_attempts) {
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
  return router_->Release(upstream, lease_id, outcome, latency, load_report);
}

absl::Status Client::Flush() { return router_->Flush(); }

std::vector<Member> Client::Members() const { return router_->Members(); }

std::optional<Member> Client::OwnerOf(absl::string_view upstream) const {
  return picker::OwnerOf(router_->Members(), upstream);
}

const ClientOptions& Client::options() const { return router_->options(); }

std::shared_ptr<grpc::Channel> Client::channel() const { return router_->channel(); }

}  // namespace picker
