// Fuzzes the gRPC services' request handling from raw wire bytes: a real
// api::Server (both listeners, on 127.0.0.1) over the real planes, and each
// input sent as the request bytes of one of its methods through a generic
// stub, as a hostile client would send them. The first byte picks the
// method; for PickStream the rest is cut into messages, each prefixed by its
// length in one byte. Nothing may crash, every call must end with a status a
// client can act on (never INTERNAL, UNKNOWN, UNIMPLEMENTED or DATA_LOSS),
// and the server keeps answering.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "server/api/server.h"
#include "server/control/control_plane.h"
#include "server/data/data_plane.h"
#include "server/metrics/metrics.h"

namespace {

constexpr const char* kMethods[] = {
    "/picker.v1.Picker/Pick",
    "/picker.v1.Picker/Release",
    "/picker.v1.Admin/CreateUpstream",
    "/picker.v1.Admin/GetUpstream",
    "/picker.v1.Admin/ListUpstreams",
    "/picker.v1.Admin/UpdateUpstream",
    "/picker.v1.Admin/DeleteUpstream",
    "/picker.v1.Admin/PutTarget",
    "/picker.v1.Admin/DeleteTarget",
    "/picker.v1.Admin/ReplaceTargets",
    "/picker.v1.Admin/ListTargets",
    "/picker.v1.Admin/SetTargetHealth",
    "/picker.v1.Admin/GetUpstreamHealth",
    "/picker.v1.Admin/PreviewChange",
    "/picker.v1.Admin/ExplainPick",
    "/picker.v1.Picker/ListMembers",
};
constexpr size_t kUnary = sizeof(kMethods) / sizeof(kMethods[0]);

struct World {
  picker::core::MemoryStore store;
  picker::core::SnapshotMap snapshots;
  picker::core::WriterStats writer_stats;
  picker::core::ProcessStats stats;
  picker::core::SoloReplica replicas;
  std::unique_ptr<picker::control::ControlPlane> control;
  std::unique_ptr<picker::data::DataPlane> data;
  std::unique_ptr<picker::metrics::Metrics> metrics;
  std::unique_ptr<picker::api::Server> server;
  std::shared_ptr<grpc::Channel> data_channel, admin_channel;
  std::unique_ptr<grpc::GenericStub> data_stub, admin_stub;

  World() {
    // Small limits keep the state (and each input's cost) bounded.
    picker::control::ControlPlane::Options options;
    options.limits = {.upstreams = {32, "upstreams"},
                      .targets_per_upstream = {64, "targets"},
                      .hash_policies = {4, "hash_policies"}};
    control = *picker::control::ControlPlane::Start(store, snapshots, writer_stats, options);
    data = std::make_unique<picker::data::DataPlane>(snapshots, *control, store.boot(),
                                                     picker::data::DataPlane::Options{});
    metrics = std::make_unique<picker::metrics::Metrics>(snapshots, writer_stats, replicas, false,
                                                         "fuzz", &stats);
    picker::api::ServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.admin_listen = "127.0.0.1:0";
    server_options.max_message_bytes = 1 << 20;
    server_options.max_connections = 16;
    server_options.stats = &stats;
    server =
        *picker::api::Server::Start(server_options, *control, *data, snapshots, replicas, *metrics);
    data_channel = grpc::CreateChannel(server->data_address(), grpc::InsecureChannelCredentials());
    admin_channel =
        grpc::CreateChannel(server->admin_address(), grpc::InsecureChannelCredentials());
    data_stub = std::make_unique<grpc::GenericStub>(data_channel);
    admin_stub = std::make_unique<grpc::GenericStub>(admin_channel);
  }
};

World& TheWorld() {
  static World* world = new World();  // Never destroyed: the process ends.
  return *world;
}

bool Acceptable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::DATA_LOSS:
      return false;
    default:
      return true;
  }
}

grpc::ByteBuffer Buffer(const uint8_t* data, size_t size) {
  grpc::Slice slice(data, size);
  return grpc::ByteBuffer(&slice, 1);
}

void Unary(World& w, const char* method, const uint8_t* data, size_t size) {
  grpc::GenericStub& stub =
      std::string(method).find("Picker") != std::string::npos ? *w.data_stub : *w.admin_stub;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request = Buffer(data, size), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard lock(mu);
    status = std::move(s);
    done = true;
    cv.notify_one();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!Acceptable(status.error_code())) __builtin_trap();
}

void Stream(World& w, const uint8_t* data, size_t size) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto call = w.data_stub->PrepareCall(&context, "/picker.v1.Picker/PickStream", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  size_t at = 0;
  while (ok && at < size) {
    const size_t length = std::min<size_t>(data[at], size - at - 1);
    grpc::ByteBuffer message = Buffer(data + at + 1, length);
    at += 1 + length;
    call->Write(message, reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
  }
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  // Read every answer, then the status.
  grpc::ByteBuffer answer;
  do {
    call->Read(&answer, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
  } while (ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!Acceptable(status.error_code())) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  World& w = TheWorld();
  const size_t method = data[0] % (kUnary + 1);
  if (method == kUnary) {
    Stream(w, data + 1, size - 1);
  } else {
    Unary(w, kMethods[method], data + 1, size - 1);
  }
  return 0;
}
