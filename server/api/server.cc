#include "server/api/server.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_posix.h"
#include "server/api/admin_service.h"
#include "server/api/picker_service.h"
#include "server/api/reflection.h"
#include "server/net/acceptor.h"
#include "spdlog/spdlog.h"

namespace picker::api {
namespace {

// "host:port" with the port replaced by the one actually bound.
std::string WithPort(const std::string& address, int port) {
  const size_t colon = address.rfind(':');
  return absl::StrCat(address.substr(0, colon), ":", port);
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const ServerOptions& options) {
  if (options.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      options.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                    : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = options.tls_client_ca;
  ssl.pem_key_cert_pairs.push_back({options.tls_key, options.tls_cert});
  return grpc::SslServerCredentials(ssl);
}

// One gRPC listener: its server, the accept loop that feeds it, and, with
// TLS, gRPC's acceptor of connections picker accepted.
struct Listener {
  std::unique_ptr<net::Acceptor> acceptor;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> tls_acceptor;
  std::unique_ptr<grpc::Server> server;
};

// How `listener`'s accept loop gives gRPC a connection: as a plaintext
// channel, or to gRPC's own TLS handshake (gRPC 1.51 takes a descriptor in
// plaintext only through grpc::AddInsecureChannelFromFd).
net::Acceptor::HandOver HandOverTo(const Listener& listener) {
  if (listener.tls_acceptor == nullptr) {
    return [server = listener.server.get()](int fd) { grpc::AddInsecureChannelFromFd(server, fd); };
  }
  return [tls = listener.tls_acceptor.get(), from = listener.acceptor->listen_fd()](int fd) {
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters connection;
    connection.listener_fd = from;
    connection.fd = fd;
    tls->HandleNewConnection(&connection);
  };
}

// `reflection`, when given, replaces gRPC's reflection plugin. picker
// accepts the listener's connections itself (net::Acceptor), with or
// without TLS, so that --max-connections holds and a shortage of
// descriptors does not stop the listener for good.
absl::StatusOr<Listener> StartGrpc(const ServerOptions& options, const std::string& address,
                                   grpc::Service* service, const char* what, core::Listener which,
                                   int max_message_bytes, LimitedReflection* reflection) {
  Listener listener;
  const size_t i = static_cast<size_t>(which);
  core::ProcessStats* stats = options.stats;
  auto acceptor =
      net::Acceptor::Listen({.address = address,
                             .flag = what,
                             .max_connections = options.max_connections,
                             .open = stats != nullptr ? &stats->connections[i] : nullptr,
                             .refused = stats != nullptr ? &stats->connections_refused[i] : nullptr,
                             .failures = stats != nullptr ? &stats->accept_failures[i] : nullptr});
  if (!acceptor.ok()) return acceptor.status();
  listener.acceptor = *std::move(acceptor);
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.RegisterService(service);
  if (reflection != nullptr) {
    builder.SetOption(WithoutReflectionPlugin());
    builder.RegisterCallbackGenericService(reflection);
  }
  if (!options.tls_cert.empty()) {
    listener.tls_acceptor = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
        Credentials(options));
  }
  listener.server = builder.BuildAndStart();
  if (!listener.server) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve on ", address, " (", what, "): gRPC did not start"));
  }
  listener.acceptor->Start(HandOverTo(listener));
  return listener;
}

// How this replica reaches its peers' data listeners: as a client of the
// same TLS (presenting its own certificate, for mutual TLS), or in plain.
std::shared_ptr<grpc::ChannelCredentials> PeerCredentials(const ServerOptions& options) {
  if (options.tls_cert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls_client_ca.empty() ? options.tls_cert : options.tls_client_ca;
  ssl.pem_cert_chain = options.tls_cert;
  ssl.pem_private_key = options.tls_key;
  return grpc::SslCredentials(ssl);
}

}  // namespace

struct Server::Impl {
  Impl(const ServerOptions& options, control::ControlPlane& control, data::DataPlane& data_plane,
       const core::SnapshotMap& snapshots, const core::Replicas& replicas,
       metrics::Metrics& metrics)
      : forwarder(PeerCredentials(options), replicas),
        picker(data_plane, metrics, calls, replicas, forwarder,
               {.max_pending_stream_answers = options.max_pending_stream_answers}),
        admin(control, data_plane, snapshots, metrics, options.admin_token, calls, options.stats,
              &replicas, &forwarder) {}
  CallTracker calls;  // Before the services, which hold it.
  Forwarder forwarder;
  PickerService picker;
  AdminService admin;
  // The data listener's reflection describes its own services only.
  LimitedReflection data_reflection{{"picker.v1.Picker", "grpc.health.v1.Health"}};
  std::unique_ptr<grpc::Server> data;
  std::unique_ptr<grpc::Server> admin_server;
  // gRPC's acceptors of TLS connections (null in plaintext), and after
  // them the accept loops that feed them: the loops stop first.
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> data_tls, admin_tls;
  std::unique_ptr<net::Acceptor> data_acceptor, admin_acceptor;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(std::chrono::milliseconds(0)); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options, control::ControlPlane& control, data::DataPlane& data_plane,
    const core::SnapshotMap& snapshots, const core::Replicas& replicas, metrics::Metrics& metrics) {
  // Reflection finds grpc.health.v1 only if its descriptor is linked in;
  // naming a message keeps the linker from dropping it.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!options.tls_client_ca.empty() && options.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  auto impl = std::make_unique<Impl>(options, control, data_plane, snapshots, replicas, metrics);

  auto data = StartGrpc(options, options.listen, &impl->picker, "--listen", core::Listener::kData,
                        options.max_data_message_bytes, &impl->data_reflection);
  if (!data.ok()) return data.status();
  impl->data_acceptor = std::move(data->acceptor);
  impl->data_tls = std::move(data->tls_acceptor);
  impl->data = std::move(data->server);
  auto admin = StartGrpc(options, options.admin_listen, &impl->admin, "--admin-listen",
                         core::Listener::kAdmin, options.max_message_bytes, nullptr);
  if (!admin.ok()) return admin.status();
  impl->admin_acceptor = std::move(admin->acceptor);
  impl->admin_tls = std::move(admin->tls_acceptor);
  impl->admin_server = std::move(admin->server);

  std::unique_ptr<Server> server(new Server(std::move(impl)));
  server->data_address_ = WithPort(options.listen, server->impl_->data_acceptor->port());
  server->admin_address_ = WithPort(options.admin_listen, server->impl_->admin_acceptor->port());
  return server;
}

void Server::CloseIdleConnections(std::chrono::steady_clock::time_point deadline,
                                  const std::atomic<bool>& drained) {
  // A client keeps its channel open when its calls are done (most do), and
  // gRPC would wait for it to the deadline. Once no call has been served for
  // a moment (the last answers reach their clients meanwhile), the
  // connections left are closed, as gRPC-Go's GracefulStop does; calls
  // picker does not count (health watches, reflection) end with them.
  constexpr auto kQuiet = std::chrono::milliseconds(100);
  const auto started = std::chrono::steady_clock::now();
  auto quiet_since = started;
  bool closing = false;
  while (!drained.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto now = std::chrono::steady_clock::now();
    if (impl_->calls.calls() > 0) {
      quiet_since = now;
    } else if (now - quiet_since >= kQuiet) {
      if (!closing) {
        closing = true;
        spdlog::info("drain: no call in flight after {} ms, closing the connections left",
                     std::chrono::duration_cast<std::chrono::milliseconds>(now - started).count());
      }
      // Repeated while the drains last: a connection that came in before
      // the listeners closed is cut too.
      for (grpc::Server* s : {impl_->data.get(), impl_->admin_server.get()}) {
        if (s != nullptr) grpc_server_cancel_all_calls(s->c_server());
      }
      quiet_since = now;
    }
  }
}

void Server::Shutdown(std::chrono::milliseconds grace) {
  if (!impl_) return;
  const auto started = std::chrono::steady_clock::now();
  // The listeners close before health turns NOT_SERVING, so that a client
  // told NOT_SERVING finds them closed: the other way round, a quick client
  // could still get a new call in between. The core shutdown does not block
  // (grpc::Server::Shutdown below waits for it); calls already open, health
  // watches among them, go on, so watchers still hear NOT_SERVING.
  // picker's own accept loops stop first: no connection comes in after.
  for (net::Acceptor* a : {impl_->data_acceptor.get(), impl_->admin_acceptor.get()}) {
    if (a != nullptr) a->Stop();
  }
  grpc_completion_queue* shutdown_cq = grpc_completion_queue_create_for_pluck(nullptr);
  std::vector<grpc::Server*> listeners;
  for (grpc::Server* s : {impl_->data.get(), impl_->admin_server.get()}) {
    if (s == nullptr) continue;
    listeners.push_back(s);
    grpc_server_shutdown_and_notify(s->c_server(), shutdown_cq, s);
  }
  std::atomic<bool> drained_all{false};
  std::thread closer(
      [this, started, grace, &drained_all] { CloseIdleConnections(started + grace, drained_all); });
  for (grpc::Server* s : listeners) {
    if (s->GetHealthCheckService() != nullptr) s->GetHealthCheckService()->SetServingStatus(false);
  }
  // grpc::Server::Shutdown blocks until its calls end and every client has
  // closed its connection, or the deadline. The two listeners drain in
  // parallel: one after the other, the admin listener's calls would get
  // only what the data listener's drain left of the window.
  const auto deadline = std::chrono::system_clock::now() + grace;
  std::thread admin_drain([this, deadline] {
    if (impl_->admin_server) impl_->admin_server->Shutdown(deadline);
  });
  if (impl_->data) impl_->data->Shutdown(deadline);
  admin_drain.join();
  drained_all.store(true);
  closer.join();
  // Both shutdowns are complete now, so their notifications are queued.
  for (grpc::Server* s : listeners) {
    grpc_completion_queue_pluck(shutdown_cq, s, gpr_inf_future(GPR_CLOCK_REALTIME), nullptr);
  }
  grpc_completion_queue_shutdown(shutdown_cq);
  grpc_completion_queue_destroy(shutdown_cq);
  const auto drained = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (drained >= grace) {
    spdlog::info("drain: timeout of {} ms reached, calls and connections still open were cut",
                 grace.count());
  } else {
    spdlog::info("drain: in-flight calls finished in {} ms", drained.count());
  }
  impl_.reset();
}

}  // namespace picker::api
