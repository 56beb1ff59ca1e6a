// The two gRPC listeners of picker-server: data (Picker) and admin (Admin),
// both with grpc.health.v1 and reflection, and their drain. (The metrics
// listener is server/http's HttpServer, wired by picker-server.)
//
// Folder: server/api is the gRPC layer: it validates, maps messages and
// translates status codes, and owns no threads or policies. It may use
// control/, data/, metrics/ and core/.
#ifndef PICKER_SERVER_API_SERVER_H_
#define PICKER_SERVER_API_SERVER_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/control/control_plane.h"
#include "server/core/replicas.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/data/data_plane.h"
#include "server/metrics/metrics.h"

namespace picker::api {

struct ServerOptions {
  std::string listen = "0.0.0.0:50051";
  std::string admin_listen = "127.0.0.1:50052";
  // PEM contents. With a certificate and key, both gRPC listeners serve TLS;
  // with a client CA too, clients must present a certificate it signed.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Required bearer token for picker.v1.Admin; empty = none.
  std::string admin_token;
  // Largest request accepted on the admin listener (a ReplaceTargets of
  // many targets is large).
  int max_message_bytes = 64 << 20;
  // Largest request accepted on the data listener, which needs no
  // credentials: a Pick is a few hundred bytes.
  int max_data_message_bytes = 64 << 10;
  // Answers a PickStream may hold unwritten before it stops reading.
  size_t max_pending_stream_answers = 64;
  // Open connections per plaintext listener; more are closed at once.
  size_t max_connections = 1000;
  // Counters of the accept loops and the overload manager's flag; may be
  // null (no overload manager, connections not counted).
  core::ProcessStats* stats = nullptr;
};

// Streams one connection may have open at once on the data listener, so
// that a client's streams, each holding at most max_pending_stream_answers,
// bound what one connection costs.
inline constexpr int kMaxConcurrentStreams = 1000;

class Server {
 public:
  // Binds every listener; a taken or bad address is an error naming it.
  // The planes, snapshots, replicas and metrics must outlive the server.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       control::ControlPlane& control,
                                                       data::DataPlane& data,
                                                       const core::SnapshotMap& snapshots,
                                                       const core::Replicas& replicas,
                                                       metrics::Metrics& metrics);
  ~Server();

  // The bound addresses (the real port when 0 was asked for).
  const std::string& data_address() const { return data_address_; }
  const std::string& admin_address() const { return admin_address_; }

  // Drains: health turns NOT_SERVING, listeners stop taking calls, in-flight
  // calls get until `grace` to finish. Connections still open once the last
  // call has ended (idle client channels) are closed then, not at `grace`.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  // During Shutdown: closes the connections left once no call has been
  // served for a moment, until `drained` or `deadline`.
  void CloseIdleConnections(std::chrono::steady_clock::time_point deadline,
                            const std::atomic<bool>& drained);
  std::unique_ptr<Impl> impl_;
  std::string data_address_, admin_address_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_SERVER_H_
