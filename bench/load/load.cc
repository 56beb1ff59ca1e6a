#include "bench/load/load.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "bench/load/echo.grpc.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"

namespace picker::bench {
namespace {

namespace v1 = ::picker::v1;

// Every call carries a deadline, so a run ends even if the server hangs.
constexpr std::chrono::seconds kCallDeadline{10};

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kCallDeadline;
}

uint64_t NanosBetween(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// What the slots of one run share: the measurement window, the stop flag,
// and the count of slots still running.
struct Shared {
  Clock::time_point measure_start;
  Clock::time_point measure_end;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;

  Clock::duration phase{0};  // 0: no phases.

  // Where an op answered at `end` counts: nothing outside the window,
  // otherwise 0 (off phase, or no phases) or 1 (on phase).
  int Kind(Clock::time_point end) const {
    if (end < measure_start || end > measure_end) return -1;
    return phase.count() == 0 ? 0 : static_cast<int>((end - measure_start) / phase % 2);
  }
  void SlotDone() {
    // Notified under the lock: once the last slot unlocks, the run may
    // destroy the slots, and this thread touches nothing after.
    std::lock_guard lock(mu);
    --running;
    cv.notify_all();
  }
};

// One closed loop: a single op outstanding at a time. Its stats are touched
// only by its own callbacks, which gRPC runs one after another, so they need
// no lock; the run reads them after the slot is done.
class Slot {
 public:
  explicit Slot(Shared& shared) : shared_(shared) {}
  virtual ~Slot() = default;
  virtual void Start() = 0;

  Measured measured[2];  // By Shared::Kind: off phases (or all), on phases.
  uint64_t errors = 0;
  std::string first_error;

 protected:
  // The window's part that an op answered at `end` counts in, if any.
  Measured* CountedAt(Clock::time_point end) {
    const int kind = shared_.Kind(end);
    return kind < 0 ? nullptr : &measured[kind];
  }
  void Error(const std::string& what) {
    // Errors count whenever they happen: a warmup full of errors is worth
    // knowing about too.
    ++errors;
    if (first_error.empty()) first_error = what;
  }
  Shared& shared_;
};

std::unique_ptr<grpc::ClientContext> NewContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(Deadline());
  return context;
}

// An op of two unary calls in a row (Pick then Release, or two Echo calls).
class UnaryCycleSlot : public Slot {
 public:
  using Slot::Slot;
  void Start() override { Next(); }

 protected:
  using Done = std::function<void(grpc::Status)>;
  // Each starts one call with the given context; `done` runs on completion.
  virtual void CallFirst(grpc::ClientContext* context, Done done) = 0;
  virtual void CallSecond(grpc::ClientContext* context, Done done) = 0;
  // Checks the first call's answer and prepares the second; false skips it.
  virtual bool AfterFirst() { return true; }

 private:
  void Next() {
    if (shared_.stop.load(std::memory_order_relaxed)) {
      shared_.SlotDone();
      return;
    }
    // Each call gets a fresh context (a context serves one call only); the
    // previous one ended with its callback, so it can go now.
    first_context_ = NewContext();
    op_start_ = Clock::now();
    CallFirst(first_context_.get(), [this](grpc::Status status) { OnFirst(status); });
  }

  void OnFirst(const grpc::Status& status) {
    first_end_ = Clock::now();
    if (!status.ok()) {
      Error(absl::StrCat("first call: ", status.error_code(), " ", status.error_message()));
      Next();
      return;
    }
    if (!AfterFirst()) {
      Next();
      return;
    }
    second_context_ = NewContext();
    CallSecond(second_context_.get(), [this](grpc::Status status) { OnSecond(status); });
  }

  void OnSecond(const grpc::Status& status) {
    const Clock::time_point end = Clock::now();
    if (!status.ok()) {
      Error(absl::StrCat("second call: ", status.error_code(), " ", status.error_message()));
    } else if (Measured* counted = CountedAt(end)) {
      ++counted->ops;
      counted->latency.Record(NanosBetween(op_start_, end));
      counted->first_call.Record(NanosBetween(op_start_, first_end_));
    }
    Next();
  }

  std::unique_ptr<grpc::ClientContext> first_context_;
  std::unique_ptr<grpc::ClientContext> second_context_;
  Clock::time_point op_start_;
  Clock::time_point first_end_;
};

class PickReleaseSlot final : public UnaryCycleSlot {
 public:
  PickReleaseSlot(Shared& shared, v1::Picker::Stub* stub, const std::string& upstream,
                  bool send_hash, uint64_t seed)
      : UnaryCycleSlot(shared), stub_(stub), send_hash_(send_hash), random_(seed) {
    pick_.set_upstream(upstream);
    release_.set_upstream(upstream);
    release_.set_outcome(v1::ReleaseRequest::SUCCESS);
  }

 protected:
  void CallFirst(grpc::ClientContext* context, Done done) override {
    if (send_hash_) pick_.set_hash(random_());
    picked_.Clear();
    stub_->async()->Pick(context, &pick_, &picked_, std::move(done));
  }
  bool AfterFirst() override {
    release_.set_lease_id(picked_.lease_id());
    released_.Clear();
    return true;
  }
  void CallSecond(grpc::ClientContext* context, Done done) override {
    stub_->async()->Release(
        context, &release_, &released_, [this, done = std::move(done)](grpc::Status status) {
          // A lease picked a moment ago must be RELEASED;
          // anything else means picker lost track of it.
          if (status.ok() && released_.state() != v1::ReleaseResponse::RELEASED) {
            status = grpc::Status(grpc::StatusCode::INTERNAL,
                                  absl::StrCat("release answered state ", released_.state()));
          }
          done(status);
        });
  }

 private:
  v1::Picker::Stub* stub_;
  const bool send_hash_;
  std::mt19937_64 random_;
  v1::PickRequest pick_;
  v1::PickResponse picked_;
  v1::ReleaseRequest release_;
  v1::ReleaseResponse released_;
};

class EchoUnarySlot final : public UnaryCycleSlot {
 public:
  EchoUnarySlot(Shared& shared, Echo::Stub* stub) : UnaryCycleSlot(shared), stub_(stub) {}

 protected:
  void CallFirst(grpc::ClientContext* context, Done done) override {
    request_.set_id(request_.id() + 1);
    stub_->async()->Unary(context, &request_, &response_, std::move(done));
  }
  void CallSecond(grpc::ClientContext* context, Done done) override {
    stub_->async()->Unary(context, &request_, &response_, std::move(done));
  }

 private:
  Echo::Stub* stub_;
  EchoMessage request_;
  EchoMessage response_;
};

// One bidi stream with one message outstanding: write, read the answer,
// write the next. An op is a message's round trip.
template <typename Request, typename Response>
class StreamSlot : public Slot, public grpc::ClientBidiReactor<Request, Response> {
 public:
  using Slot::Slot;

  void Start() override {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              shared_.measure_end - Clock::now()) +
                          kCallDeadline);
    Open(&context_);
    Send();
    this->StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (finishing_ || !ok) return;  // A failed write ends the stream; OnDone follows.
    Step();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // The stream ended; OnDone follows.
    const Clock::time_point end = Clock::now();
    if (std::string error = Check(response_); !error.empty()) {
      Error(error);
    } else if (Measured* counted = CountedAt(end)) {
      ++counted->ops;
      counted->latency.Record(NanosBetween(sent_, end));
    }
    Step();
  }

  void OnDone(const grpc::Status& status) override {
    if (!status.ok())
      Error(absl::StrCat("stream: ", status.error_code(), " ", status.error_message()));
    shared_.SlotDone();
  }

 protected:
  // Starts the RPC on `context` with this reactor.
  virtual void Open(grpc::ClientContext* context) = 0;
  // Fills the next message; `request` still holds the previous one.
  virtual void Prepare(Request& request, const Response& previous_answer) = 0;
  // A last message to send before closing (releases only), if any.
  virtual bool PrepareLast(Request& request) { return false; }
  // "" if the answer is a success, otherwise what went wrong.
  virtual std::string Check(const Response& response) = 0;

 private:
  void Send() {
    Prepare(request_, response_);
    // The write and the read must both complete before the next message:
    // their callbacks may come in either order.
    outstanding_.store(2, std::memory_order_relaxed);
    sent_ = Clock::now();
    this->StartWrite(&request_);
    this->StartRead(&response_);
  }

  void Step() {
    if (outstanding_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!shared_.stop.load(std::memory_order_relaxed)) {
      Send();
      return;
    }
    finishing_ = true;
    if (PrepareLast(request_)) {
      this->StartWriteLast(&request_, grpc::WriteOptions());
    } else {
      this->StartWritesDone();
    }
  }

  grpc::ClientContext context_;
  Request request_;
  Response response_;
  std::atomic<int> outstanding_{0};
  bool finishing_ = false;
  Clock::time_point sent_;
};

class PickStreamSlot final : public StreamSlot<v1::PickStreamRequest, v1::PickStreamResponse> {
 public:
  PickStreamSlot(Shared& shared, v1::Picker::Stub* stub, const std::string& upstream,
                 bool send_hash, uint64_t seed)
      : StreamSlot(shared),
        stub_(stub),
        upstream_(upstream),
        send_hash_(send_hash),
        random_(seed) {}

 protected:
  void Open(grpc::ClientContext* context) override { stub_->async()->PickStream(context, this); }
  void Prepare(v1::PickStreamRequest& request, const v1::PickStreamResponse& previous) override {
    if (request.request_id() == 0) {
      request.mutable_pick()->set_upstream(upstream_);
    }
    request.set_request_id(request.request_id() + 1);
    if (send_hash_) request.mutable_pick()->set_hash(random_());
    // The previous lease's release rides along with the next pick, as a
    // client that picks at a high rate would send it.
    request.clear_releases();
    if (previous.code() == 0 && previous.pick().lease_id() != 0) {
      AddRelease(request, previous.pick().lease_id());
    }
  }
  bool PrepareLast(v1::PickStreamRequest& request) override {
    // Releases the last lease rather than leaving it to be abandoned, so the
    // server's counters end where they started.
    const uint64_t last = last_lease_;
    request.Clear();
    if (last == 0) return false;
    AddRelease(request, last);
    return true;
  }
  std::string Check(const v1::PickStreamResponse& response) override {
    last_lease_ = response.code() == 0 ? response.pick().lease_id() : 0;
    if (response.code() != 0)
      return absl::StrCat("pick: ", response.code(), " ", response.message());
    if (response.request_id() != expected_id_ + 1) {
      return absl::StrCat("answer to request ", response.request_id(), ", expected ",
                          expected_id_ + 1);
    }
    ++expected_id_;
    return "";
  }

 private:
  void AddRelease(v1::PickStreamRequest& request, uint64_t lease_id) {
    v1::ReleaseRequest* release = request.add_releases();
    release->set_upstream(upstream_);
    release->set_lease_id(lease_id);
    release->set_outcome(v1::ReleaseRequest::SUCCESS);
  }

  v1::Picker::Stub* stub_;
  const std::string upstream_;
  const bool send_hash_;
  std::mt19937_64 random_;
  uint64_t last_lease_ = 0;
  uint64_t expected_id_ = 0;
};

class EchoStreamSlot final : public StreamSlot<EchoMessage, EchoMessage> {
 public:
  EchoStreamSlot(Shared& shared, Echo::Stub* stub) : StreamSlot(shared), stub_(stub) {}

 protected:
  void Open(grpc::ClientContext* context) override { stub_->async()->Stream(context, this); }
  void Prepare(EchoMessage& request, const EchoMessage&) override {
    request.set_id(request.id() + 1);
  }
  std::string Check(const EchoMessage& response) override {
    if (response.id() != ++expected_id_) return absl::StrCat("echo of ", response.id());
    return "";
  }

 private:
  Echo::Stub* stub_;
  uint64_t expected_id_ = 0;
};

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // Channels of one process to one address otherwise share a connection;
  // each should have its own, so --channels means connections.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// Flips a target's weight between 100 and 50 (a snapshot rebuild each time).
// The `pass`th write to `target`: even passes move it off its created
// weight (100 to 50, 50 to 100), odd passes move it back. With mixed weights
// the upstream so stays weighted throughout.
v1::PutTargetRequest WeightFlip(const std::string& upstream, const BenchTarget& target,
                                uint64_t pass) {
  v1::PutTargetRequest request;
  request.set_upstream(upstream);
  request.mutable_target()->set_address(target.address);
  const uint32_t flipped = target.weight == 100 ? 50 : 100;
  request.mutable_target()->set_weight(pass % 2 == 0 ? flipped : target.weight);
  return request;
}

// A run's connections, and a stub of each service on each.
struct Connections {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::Picker::Stub>> picker_stubs;
  std::vector<std::unique_ptr<Echo::Stub>> echo_stubs;

  // Opens options.channels connections; false (with the error in `result`)
  // if one cannot connect.
  bool Open(const LoadOptions& options, RunResult* result) {
    for (int i = 0; i < std::max(1, options.channels); ++i) {
      channels.push_back(NewChannel(options.address));
      if (!channels.back()->WaitForConnected(Deadline())) {
        result->first_error = absl::StrCat("cannot connect to ", options.address);
        result->errors = 1;
        return false;
      }
      picker_stubs.push_back(v1::Picker::NewStub(channels.back()));
      echo_stubs.push_back(Echo::NewStub(channels.back()));
    }
    return true;
  }
};

// The run's closed loops, of its workload, spread over the connections.
std::vector<std::unique_ptr<Slot>> NewSlots(const LoadOptions& options,
                                            const Connections& connections, Shared& shared) {
  std::vector<std::unique_ptr<Slot>> slots;
  std::random_device seeds;
  for (int i = 0; i < options.concurrency; ++i) {
    const size_t c = static_cast<size_t>(i) % connections.channels.size();
    v1::Picker::Stub* picker = connections.picker_stubs[c].get();
    Echo::Stub* echo = connections.echo_stubs[c].get();
    switch (options.workload) {
      case Workload::kPickerUnary:
        slots.push_back(std::make_unique<PickReleaseSlot>(shared, picker, options.upstream,
                                                          options.send_hash, seeds()));
        break;
      case Workload::kPickerStream:
        slots.push_back(std::make_unique<PickStreamSlot>(shared, picker, options.upstream,
                                                         options.send_hash, seeds()));
        break;
      case Workload::kEchoUnary:
        slots.push_back(std::make_unique<EchoUnarySlot>(shared, echo));
        break;
      case Workload::kEchoStream:
        slots.push_back(std::make_unique<EchoStreamSlot>(shared, echo));
        break;
    }
  }
  return slots;
}

// Waits out the measured window, calling the window's and the phases'
// callbacks on time, and sets the seconds each part of `result` measured.
void MeasureWindow(const LoadOptions& options, const Shared& shared, RunResult* result) {
  std::this_thread::sleep_until(shared.measure_start);
  if (options.on_window_start) options.on_window_start();
  if (shared.phase.count() > 0) {
    // Phase k (from 0) covers [start + k * phase, start + (k + 1) * phase),
    // cut at the window's end; odd phases are on.
    for (int64_t k = 0;; ++k) {
      const Clock::time_point begin = shared.measure_start + k * shared.phase;
      if (begin >= shared.measure_end) break;
      const Clock::time_point end = std::min(begin + shared.phase, shared.measure_end);
      Measured& part = k % 2 == 1 ? result->on : result->window;
      part.seconds += std::chrono::duration<double>(end - begin).count();
      if (k > 0) {
        std::this_thread::sleep_until(begin);
        if (options.on_phase) options.on_phase(k % 2 == 1);
      }
    }
  } else {
    result->window.seconds =
        std::chrono::duration<double>(shared.measure_end - shared.measure_start).count();
  }
  std::this_thread::sleep_until(shared.measure_end);
  if (options.on_window_end) options.on_window_end();
}

// Stops the loops and waits for them; false (with the hang in `result`) if
// some did not stop.
bool StopSlots(Shared& shared, std::vector<std::unique_ptr<Slot>>& slots, RunResult* result) {
  shared.stop.store(true, std::memory_order_relaxed);
  std::unique_lock lock(shared.mu);
  // Bounded by the calls' deadlines; the extra margin covers their
  // callbacks.
  if (shared.cv.wait_for(lock, kCallDeadline * 2, [&] { return shared.running == 0; })) {
    return true;
  }
  // Slots still running own their memory: leak them rather than free it
  // under a callback, and report the hang.
  result->first_error = absl::StrCat(shared.running, " loops did not stop");
  result->errors += static_cast<uint64_t>(shared.running);
  for (auto& slot : slots) slot.release();
  return false;
}

}  // namespace

void Measured::Merge(const Measured& other) {
  ops += other.ops;
  latency.Merge(other.latency);
  first_call.Merge(other.first_call);
}

RunResult RunClosedLoop(const LoadOptions& options) {
  RunResult result;
  Connections connections;
  if (!connections.Open(options, &result)) return result;

  Shared shared;
  shared.measure_start = Clock::now() + std::chrono::duration_cast<Clock::duration>(options.warmup);
  shared.measure_end =
      shared.measure_start + std::chrono::duration_cast<Clock::duration>(options.duration);
  shared.phase = std::chrono::duration_cast<Clock::duration>(options.phase);
  std::vector<std::unique_ptr<Slot>> slots = NewSlots(options, connections, shared);
  shared.running = static_cast<int>(slots.size());
  for (auto& slot : slots) slot->Start();

  MeasureWindow(options, shared, &result);
  if (!StopSlots(shared, slots, &result)) return result;
  for (const auto& slot : slots) {
    result.window.Merge(slot->measured[0]);
    result.on.Merge(slot->measured[1]);
    result.errors += slot->errors;
    if (result.first_error.empty()) result.first_error = slot->first_error;
  }
  return result;
}

// ---------------------------------------------------------------------------
// Baseline server.

namespace {

class EchoStreamReactor final : public grpc::ServerBidiReactor<EchoMessage, EchoMessage> {
 public:
  EchoStreamReactor() { StartRead(&message_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&message_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    StartRead(&message_);
  }
  void OnDone() override { delete this; }

 private:
  EchoMessage message_;
};

// As picker's PickStream reactor: the next read is started as soon as the
// answer's write is, and writes queue under a mutex, so the read and the
// write complete on gRPC's threads independently.
class OverlappingEchoStreamReactor final
    : public grpc::ServerBidiReactor<EchoMessage, EchoMessage> {
 public:
  OverlappingEchoStreamReactor() { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) {
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    pending_.push_back(request_);
    if (!writing_) {
      writing_ = true;
      StartWrite(&pending_.front());
    }
    StartRead(&request_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    pending_.pop_front();
    if (ok && !pending_.empty()) {
      StartWrite(&pending_.front());
      return;
    }
    writing_ = false;
    if (!ok) pending_.clear();
    MaybeFinishLocked();
  }
  void OnDone() override { delete this; }

 private:
  void MaybeFinishLocked() {
    if (reads_done_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }
  EchoMessage request_;
  std::mutex mu_;
  std::deque<EchoMessage> pending_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

class EchoService final : public Echo::CallbackService {
 public:
  explicit EchoService(bool overlap = false) : overlap_(overlap) {}

 private:
  const bool overlap_;
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, const EchoMessage* request,
                                  EchoMessage* response) override {
    response->set_id(request->id());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerBidiReactor<EchoMessage, EchoMessage>* Stream(
      grpc::CallbackServerContext* context) override {
    if (overlap_) return new OverlappingEchoStreamReactor();
    return new EchoStreamReactor();
  }
};

// A synchronous-API service, as picker's Admin service is: a server with one
// runs its own polling threads.
class SyncEchoService final : public Echo::Service {
  grpc::Status Unary(grpc::ServerContext* context, const EchoMessage* request,
                     EchoMessage* response) override {
    response->set_id(request->id());
    return grpc::Status::OK;
  }
};

}  // namespace

struct EchoServer::Impl {
  explicit Impl(bool overlap) : service(overlap) {}
  EchoService service;
  SyncEchoService second_service;
  std::unique_ptr<grpc::Server> server;
  // picker-server runs its admin listener as a second grpc::Server in the
  // same process, whose threads take part in polling too.
  std::unique_ptr<grpc::Server> second;
};

EchoServer::EchoServer(bool like_picker, bool overlap) : impl_(std::make_unique<Impl>(overlap)) {
  if (like_picker) {
    // Both are process-wide switches read by the builder, as in picker-server.
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  grpc::ServerBuilder builder;
  // As picker-server does, so that the baseline differs from it only in the
  // handler.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&impl_->service);
  impl_->server = builder.BuildAndStart();
  if (impl_->server && port != 0) address_ = absl::StrCat("127.0.0.1:", port);
  if (like_picker) {
    grpc::ServerBuilder second;
    second.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int second_port = 0;
    second.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &second_port);
    second.RegisterService(&impl_->second_service);
    impl_->second = second.BuildAndStart();
  }
}

EchoServer::~EchoServer() {
  for (auto* server : {impl_->server.get(), impl_->second.get()}) {
    if (server) server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
}

// ---------------------------------------------------------------------------
// Admin.

bool SetStrategy(const std::string& strategy, v1::LoadBalancer* lb) {
  if (strategy == "round_robin") {
    lb->mutable_round_robin();
  } else if (strategy == "least_request") {
    lb->mutable_least_request();
  } else if (strategy == "ring_hash") {
    lb->mutable_ring_hash();
  } else if (strategy == "random") {
    lb->mutable_random();
  } else if (strategy == "maglev") {
    lb->mutable_maglev();
  } else {
    return false;
  }
  return true;
}

namespace {

// Creates the upstream of `create`; one left by an earlier run is deleted
// first, so that the bench starts afresh.
grpc::Status CreateAfresh(v1::Admin::Stub& stub, const v1::CreateUpstreamRequest& create) {
  v1::Upstream created;
  grpc::Status status = stub.CreateUpstream(NewContext().get(), create, &created);
  if (status.error_code() != grpc::StatusCode::ALREADY_EXISTS) return status;
  v1::DeleteUpstreamRequest del;
  del.set_name(create.upstream().name());
  v1::DeleteUpstreamResponse ignored;
  status = stub.DeleteUpstream(NewContext().get(), del, &ignored);
  if (!status.ok()) return status;
  return stub.CreateUpstream(NewContext().get(), create, &created);
}

// The `count` bench targets of `upstream`, as a request, and in `targets`.
v1::ReplaceTargetsRequest BenchTargets(const std::string& upstream, int count, bool mixed_weights,
                                       std::vector<BenchTarget>* targets) {
  v1::ReplaceTargetsRequest replace;
  replace.set_upstream(upstream);
  for (int i = 0; i < count; ++i) {
    // Documentation addresses would do as well; picker never connects to them.
    std::string address = absl::StrCat("10.0.", i / 250, ".", i % 250 + 1, ":8080");
    v1::Target* target = replace.add_targets();
    const uint32_t weight = mixed_weights && i % 2 == 1 ? 50 : 100;
    target->set_address(address);
    target->set_weight(weight);
    targets->push_back(BenchTarget{std::move(address), weight});
  }
  return replace;
}

}  // namespace

SetupResult SetUpUpstream(const std::string& admin_address, const std::string& upstream,
                          const std::string& strategy, int count, bool mixed_weights) {
  SetupResult result;
  auto channel = NewChannel(admin_address);
  auto stub = v1::Admin::NewStub(channel);
  if (!channel->WaitForConnected(Deadline())) {
    result.error = absl::StrCat("cannot connect to the admin listener ", admin_address);
    return result;
  }
  v1::CreateUpstreamRequest create;
  v1::Upstream* u = create.mutable_upstream();
  u->set_name(upstream);
  if (!SetStrategy(strategy, u->mutable_load_balancer())) {
    result.error =
        absl::StrCat("--strategy ", strategy,
                     ": not one of round_robin, least_request, ring_hash, random, maglev");
    return result;
  }
  // Passive health off: a benchmark's outcomes are all successes anyway, and
  // the upstream should never change under the load for reasons of its own.
  u->mutable_health_checks()->mutable_passive()->set_consecutive_failures(0);
  if (grpc::Status status = CreateAfresh(*stub, create); !status.ok()) {
    result.error = absl::StrCat("CreateUpstream ", upstream, ": ", status.error_code(), " ",
                                status.error_message());
    return result;
  }
  v1::ReplaceTargetsRequest replace = BenchTargets(upstream, count, mixed_weights, &result.targets);
  v1::ReplaceTargetsResponse replaced;
  grpc::Status status = stub->ReplaceTargets(NewContext().get(), replace, &replaced);
  if (!status.ok()) {
    result.error =
        absl::StrCat("ReplaceTargets: ", status.error_code(), " ", status.error_message());
    result.targets.clear();
  }
  return result;
}

struct AdminWriter::Impl {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Admin::Stub> stub;
  std::string upstream;
  std::vector<BenchTarget> targets;
  double per_sec;
  grpc::StatusCode expected;
  std::thread thread;
  std::atomic<bool> stop{false};
  std::atomic<bool> active{true};

  std::mutex mu;  // Guards what follows; completions come on gRPC threads.
  std::condition_variable cv;
  int in_flight = 0;
  Stats stats;

  // One write in flight: its request, answer and context live here until
  // its callback.
  struct Call {
    grpc::ClientContext context;
    v1::PutTargetRequest request;
    v1::Target response;
    Clock::time_point start;
  };

  void Loop() {
    // Open loop: writes are due at fixed times whatever the answers take; at
    // most kMaxInFlight wait at once, so a stalled server bounds the backlog.
    constexpr int kMaxInFlight = 64;
    const auto interval =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / per_sec));
    const Clock::time_point begin = Clock::now();
    Clock::time_point due = begin;
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_until(due);
      due += interval;
      if (!active.load(std::memory_order_relaxed)) continue;
      {
        std::lock_guard lock(mu);
        if (in_flight >= kMaxInFlight) {
          ++stats.errors;
          if (stats.first_error.empty()) stats.first_error = "too many writes in flight (skipped)";
          continue;
        }
        ++in_flight;
      }
      auto* call = new Call;
      call->context.set_deadline(Deadline());
      call->request = WeightFlip(upstream, targets[n % targets.size()], n / targets.size());
      ++n;
      call->start = Clock::now();
      stub->async()->PutTarget(&call->context, &call->request, &call->response,
                               [this, call](grpc::Status status) {
                                 const Clock::time_point end = Clock::now();
                                 std::lock_guard lock(mu);
                                 if (status.error_code() == expected) {
                                   ++stats.writes;
                                   stats.latency.Record(NanosBetween(call->start, end));
                                 } else {
                                   ++stats.errors;
                                   if (stats.first_error.empty()) {
                                     stats.first_error = status.error_message();
                                   }
                                 }
                                 delete call;
                                 --in_flight;
                                 cv.notify_all();
                               });
    }
    std::unique_lock lock(mu);
    cv.wait_for(lock, kCallDeadline * 2, [&] { return in_flight == 0; });
    stats.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  }
};

AdminWriter::AdminWriter(const std::string& admin_address, std::string upstream,
                         std::vector<BenchTarget> targets, double writes_per_sec,
                         grpc::StatusCode expected)
    : impl_(std::make_unique<Impl>()) {
  impl_->channel = NewChannel(admin_address);
  impl_->stub = v1::Admin::NewStub(impl_->channel);
  impl_->upstream = std::move(upstream);
  impl_->targets = std::move(targets);
  impl_->per_sec = writes_per_sec;
  impl_->expected = expected;
}

AdminWriter::~AdminWriter() {
  if (impl_->thread.joinable()) Stop();
}

void AdminWriter::Start(bool active) {
  impl_->active.store(active, std::memory_order_relaxed);
  impl_->thread = std::thread([this] { impl_->Loop(); });
}

void AdminWriter::SetActive(bool active) { impl_->active.store(active, std::memory_order_relaxed); }

AdminWriter::Stats AdminWriter::Stop() {
  impl_->stop.store(true, std::memory_order_relaxed);
  if (impl_->thread.joinable()) impl_->thread.join();
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace picker::bench
