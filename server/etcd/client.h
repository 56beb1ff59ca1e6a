// A client of etcd's v3 gRPC API (KV, Lease, Watch, Auth) over stubs
// generated from etcd's own API definitions: the calls picker's etcd store
// and membership make, with etcd's TLS and authentication, failover between
// endpoints, and errors that name etcd.
//
//   auto client = EtcdClient::Connect({.endpoints = {"http://127.0.0.1:2379"}});
//   absl::StatusOr<etcdserverpb::RangeResponse> r = (*client)->Range(request);
//
// Folder: server/etcd owns picker's etcd mode (this client, the store over
// etcd, the replicas' membership). It may use core/ and store/'s record
// schema.
#ifndef PICKER_SERVER_ETCD_CLIENT_H_
#define PICKER_SERVER_ETCD_CLIENT_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/core/replicas.h"

namespace picker::etcd {

struct ClientOptions {
  // URLs: http://host:port or https://host:port (TLS).
  std::vector<std::string> endpoints;
  // PEM contents, for https endpoints: the CA that signed etcd's
  // certificate, and this client's certificate and key (etcd's
  // --client-cert-auth).
  std::string cacert, cert, key;
  // etcd's authentication, when it is enabled.
  std::string user, password;
  // Bound on a whole unary call, every endpoint tried included; each
  // endpoint gets an equal share (at least 1s), so a hung member leaves
  // time to try the next one. Admin clients commonly wait 5s: this
  // answers them first.
  std::chrono::milliseconds timeout{3000};
};

// The key right after every key that starts with `prefix`: a range over
// [prefix, PrefixEnd(prefix)) is the prefix's keys.
std::string PrefixEnd(const std::string& prefix);

class EtcdClient {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(ClientOptions options);

  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request);
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> LeaseGrant(int64_t ttl_seconds);
  absl::Status LeaseRevoke(int64_t lease_id);

  // A context for a long-lived stream (Watch, LeaseKeepAlive): with the
  // auth token, and `hasleader`, as etcd's clients mark them, so that a
  // member cut off from the quorum refuses the stream instead of stalling.
  std::unique_ptr<grpc::ClientContext> StreamContext();
  etcdserverpb::Watch::Stub& watch();
  etcdserverpb::Lease::Stub& lease();

  // The endpoint calls go to now.
  std::string endpoint() const;
  // Counts every unary call by operation and code there (metrics).
  void CountIn(core::ReplicaStats* stats) { stats_ = stats; }

 private:
  struct Endpoint {
    std::string url;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Auth::Stub> auth;
  };
  explicit EtcdClient(ClientOptions options) : options_(std::move(options)) {}
  // Runs `call` against the current endpoint, moving to the next one when
  // it is unreachable, and authenticating again when the token expired.
  template <typename Call>
  absl::Status Run(const char* what, Call call);
  template <typename Call>
  absl::Status RunOnce(const char* what, Call call);
  std::unique_ptr<grpc::ClientContext> UnaryContext(std::chrono::milliseconds within) const;
  absl::Status Authenticate(Endpoint& endpoint);
  Endpoint& Current();

  const ClientOptions options_;
  core::ReplicaStats* stats_ = nullptr;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  mutable std::mutex token_mu_;
  std::string token_;  // Guarded by token_mu_.
};

}  // namespace picker::etcd

#endif  // PICKER_SERVER_ETCD_CLIENT_H_
