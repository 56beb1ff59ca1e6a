// picker::Client: the C++ client of picker's data plane (picker.v1.Picker).
//
//   auto client = picker::Client::Create("127.0.0.1:50051");
//   absl::StatusOr<picker::Lease> lease = (*client)->Pick({.upstream = "demo"});
//   if (!lease.ok()) return lease.status();
//   bool ok = SendRequestTo(lease->target());
//   lease->set_outcome(ok ? picker::Outcome::kSuccess : picker::Outcome::kFailure);
//   // The lease is released (with its outcome and the measured latency) when
//   // it goes out of scope, or explicitly with lease->Release().
//
// Pick opens a lease: the chosen target's active-request count stays up by one
// until the lease is released. A Lease is move-only and releases itself in its
// destructor, so a request that ends by an early return or an exception still
// gives its count back.
//
// With ClientOptions::use_stream, picks go over one long-lived PickStream and
// releases are batched: they ride along with the next pick, or are flushed
// after ClientOptions::release_flush_interval, or when the Client is
// destroyed.
//
// With ClientOptions::route_to_owner, the client learns the replicas from
// picker.v1.Picker/ListMembers and sends each upstream's picks straight to
// the replica that owns it (no forwarding hop between replicas), falling
// back to another replica when the owner cannot be reached.
//
// Client is thread-safe. A Lease is owned by one thread at a time. A Lease may
// outlive its Client; it is then released with a unary Release call.
//
// This library carries the generated code of picker's protos (picker/v1/
// picker.pb.h, picker.grpc.pb.h, admin.pb.h, admin.grpc.pb.h are installed with
// it, so the Admin stubs can be used too). Do not link it into a program that
// also links another copy of that generated code.
#ifndef PICKER_CLIENT_H_
#define PICKER_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace picker {

namespace internal {
class ClientCore;
class Router;
}  // namespace internal

// How the request sent to a picked target ended. FAILURE and TIMEOUT count
// towards passive health (ejection after consecutive failures).
enum class Outcome { kSuccess, kFailure, kTimeout };

// What a release did.
enum class ReleaseState {
  // The lease was open and is now released.
  kReleased,
  // The lease had already been released; nothing changed.
  kAlreadyReleased,
  // The lease had expired (its TTL passed); nothing changed.
  kExpired,
  // Stream mode: the release is queued and goes to the server with the next
  // pick or flush; the server does not answer releases on a stream.
  kQueued,
};

const char* OutcomeName(Outcome outcome);
const char* ReleaseStateName(ReleaseState state);

struct ClientOptions {
  // Deadline of each RPC (a pick over the stream waits at most this long for
  // its answer; releases too).
  std::chrono::milliseconds deadline{1000};
  // Most picks PickWithRetry makes for one request (the first one included).
  int max_attempts = 3;
  // Picks over a long-lived PickStream, with releases batched onto it.
  bool use_stream = false;
  // Stream mode: queued releases are sent at the latest this long after the
  // first of them was queued, when no pick takes them along first.
  std::chrono::milliseconds release_flush_interval{10};
  // Stream mode: this many queued releases are flushed at once.
  size_t max_release_batch = 256;
  // TLS: when true, the channel uses TLS with these PEM strings (an empty
  // root_certs means the system's roots; cert_chain/private_key for mutual
  // TLS).
  bool tls = false;
  std::string tls_root_certs;
  std::string tls_cert_chain;
  std::string tls_private_key;
  // Replicas (picker-server with --etcd-endpoints): send each upstream's
  // picks and releases straight to the replica that owns it, as
  // ListMembers' ownership rule says, instead of through the configured
  // address (which then forwards them: one more hop). The members are read
  // at the first pick, every membership_refresh_interval, and soon after a
  // replica could not be reached. A pick whose replica cannot be reached
  // (UNAVAILABLE with no connection) is sent to the next replica in the
  // rule's order, then to the configured address. A single server, or one
  // that does not know ListMembers, is used as without this option.
  // Members' channels are made with the TLS settings above, so their
  // advertised addresses (--advertise-address) must be reachable from here.
  bool route_to_owner = false;
  std::chrono::milliseconds membership_refresh_interval{30000};
  // Who is calling, sent with every pick (PickRequest.client_service and
  // client_tags): upstreams with per-client configurations (Kong Mesh's
  // MeshService, MeshSubset and MeshServiceSubset policies) balance this
  // client's picks by the one that matches. A pick's own PickOptions
  // fields take precedence.
  std::string client_service;
  std::map<std::string, std::string> client_tags;
};

// A replica as ListMembers answers it.
struct Member {
  std::string id;       // Its --replica-id.
  std::string address;  // Its data listener (--advertise-address).
  bool operator==(const Member&) const = default;
};

// The owner of `upstream` among `members`: the member with the highest
// XXH64(id + "/" + upstream) (seed 0), ties to the smaller id; nullopt when
// `members` is empty. The same rule as the server's.
std::optional<Member> OwnerOf(const std::vector<Member>& members, absl::string_view upstream);

// One pick's request: the upstream and the request's attributes that hash
// policies read.
struct PickOptions {
  std::string upstream;
  // Header values by name (matched case-insensitively by the server). Several
  // values of one header: join them sorted and concatenated, as Envoy hashes.
  std::map<std::string, std::string> headers;
  std::map<std::string, std::string> cookies;
  std::map<std::string, std::string> query_params;
  std::string source_ip;
  std::map<std::string, std::string> filter_state;
  // The client's zone, for locality-aware picks (and the tag kuma.io/zone).
  std::string client_zone;
  // This pick's client service and tags, over ClientOptions' (a tag given
  // here replaces the one of the same key there).
  std::string client_service;
  std::map<std::string, std::string> client_tags;
  // A request hash to use directly (consistent-hashing strategies).
  std::optional<uint64_t> hash;
  // Targets to avoid (best effort: the server still answers when it cannot).
  std::vector<std::string> exclude;
};

// A cookie the server asks the client to set (Cookie hash policy with a ttl).
struct SetCookie {
  std::string name;
  std::string value;
  std::chrono::milliseconds ttl{0};
  std::string path;
};

// An open lease on a target. Move-only; released in the destructor unless
// released or detached before.
class Lease {
 public:
  Lease() = default;  // An empty lease (valid() is false); releasing it is a no-op.
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  // True while the lease is held (picked, not yet released or detached).
  bool valid() const { return open_; }

  const std::string& upstream() const { return upstream_; }
  // The chosen target, `host:port`.
  const std::string& target() const { return target_; }
  const std::string& zone() const { return zone_; }
  uint64_t lease_id() const { return lease_id_; }
  std::chrono::milliseconds lease_ttl() const { return lease_ttl_; }
  // The request hash the server used (consistent-hashing strategies).
  std::optional<uint64_t> hash() const { return hash_; }
  const std::vector<SetCookie>& set_cookies() const { return set_cookies_; }

  // The outcome reported on release. Default kSuccess.
  void set_outcome(Outcome outcome) { outcome_ = outcome; }
  Outcome outcome() const { return outcome_; }
  // The latency reported on release. Unless set, the time from the end of
  // Pick to the release.
  void set_latency(std::chrono::nanoseconds latency) { latency_ = latency; }
  // The latency that a release now would report.
  std::chrono::nanoseconds latency() const;
  // The backend's ORCA load report for this request, passed on with the
  // release as it is: the bytes of its `endpoint-load-metrics-bin` trailer
  // (a serialized xds.data.orca.v3.OrcaLoadReport). Feeds the upstream's
  // weighted_round_robin strategy. INVALID_ARGUMENT if the bytes do not
  // parse (the lease keeps no report then).
  absl::Status set_load_report(absl::string_view serialized);

  // Releases the lease now with its outcome and latency. In stream mode the
  // release is queued (kQueued). A second call is a no-op that answers
  // kAlreadyReleased. On an RPC error the lease counts as released locally
  // (the server expires it after its TTL).
  absl::StatusOr<ReleaseState> Release();
  // Gives up the lease without releasing it (it stays open on the server until
  // released by id with Client::Release, or until its TTL). Returns its id.
  uint64_t Detach();

 private:
  friend class internal::ClientCore;

  std::shared_ptr<internal::ClientCore> core_;
  bool open_ = false;
  std::string upstream_;
  std::string target_;
  std::string zone_;
  uint64_t lease_id_ = 0;
  std::chrono::milliseconds lease_ttl_{0};
  std::optional<uint64_t> hash_;
  std::vector<SetCookie> set_cookies_;
  Outcome outcome_ = Outcome::kSuccess;
  std::optional<std::chrono::nanoseconds> latency_;
  std::string load_report_;  // Serialized; empty = none.
  std::chrono::steady_clock::time_point picked_at_;
};

// What PickWithRetry did.
struct RetryResult {
  // The outcome of the last attempt (kSuccess if any attempt succeeded).
  Outcome outcome = Outcome::kFailure;
  // Attempts made.
  int attempts = 0;
  // Targets tried, in order.
  std::vector<std::string> tried;
};

// Picks for the attempts of one request, each excluding the targets already
// tried (Envoy's previous-hosts retry predicate). Made by Client::NewRetry;
// usable on one thread.
class Retry {
 public:
  // The lease of the next attempt; its target is excluded from the later
  // ones. FAILED_PRECONDITION once max_attempts picks were made.
  absl::StatusOr<Lease> Next();
  int attempts() const { return attempts_; }
  const std::vector<std::string>& tried() const { return tried_; }

 private:
  friend class Client;
  Retry(std::shared_ptr<internal::Router> router, PickOptions options, int max_attempts);

  std::shared_ptr<internal::Router> router_;
  PickOptions options_;
  int max_attempts_;
  int attempts_ = 0;
  std::vector<std::string> tried_;
};

class Client {
 public:
  // A client of the picker data plane at `target_address` ("host:port", or any
  // gRPC target URI). INVALID_ARGUMENT for an empty address or bad options.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const std::string& target_address,
                                                        const ClientOptions& options = {});
  // A client over an existing channel (its credentials and arguments).
  static absl::StatusOr<std::unique_ptr<Client>> Create(std::shared_ptr<grpc::Channel> channel,
                                                        const ClientOptions& options = {});

  // Flushes queued releases and closes the stream. Leases still open stay
  // valid and are released with a unary call (in stream mode, the server has
  // already released those picked on the stream, as abandoned).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Picks a target and opens a lease on it. Errors are the server's (NOT_FOUND
  // unknown upstream, UNAVAILABLE no target can be picked, ...) or the
  // transport's (UNAVAILABLE, DEADLINE_EXCEEDED).
  absl::StatusOr<Lease> Pick(const PickOptions& options);

  // Attempts for one request: see Retry.
  Retry NewRetry(const PickOptions& options);

  // Runs `attempt` on picked targets until it returns kSuccess or max_attempts
  // picks were made; each pick excludes the targets already tried, and each
  // lease is released with the outcome `attempt` returned. A pick error ends
  // the retries: it is returned if no attempt was made, else the result says
  // how the last attempt ended.
  absl::StatusOr<RetryResult> PickWithRetry(const PickOptions& options,
                                            const std::function<Outcome(const Lease&)>& attempt);

  // Releases a lease by id (e.g. one detached, or picked by another process).
  // With route_to_owner it goes to the upstream's owner, which passes it on
  // to the replica that issued the lease if that is another one. (A Lease
  // releases itself at the replica that answered its pick.)
  // `load_report`: as Lease::set_load_report's bytes; empty for none.
  absl::StatusOr<ReleaseState> Release(const std::string& upstream, uint64_t lease_id,
                                       Outcome outcome = Outcome::kSuccess,
                                       std::optional<std::chrono::nanoseconds> latency = {},
                                       absl::string_view load_report = {});

  // Stream mode: sends the queued releases now. No-op otherwise.
  absl::Status Flush();

  // route_to_owner: the members as last read (empty until the first pick,
  // or when the server does not know ListMembers), and the owner of an
  // upstream among them.
  std::vector<Member> Members() const;
  std::optional<Member> OwnerOf(absl::string_view upstream) const;

  const ClientOptions& options() const;
  // The channel to the configured address.
  std::shared_ptr<grpc::Channel> channel() const;

 private:
  explicit Client(std::shared_ptr<internal::Router> router);
  std::shared_ptr<internal::Router> router_;
};

}  // namespace picker

#endif  // PICKER_CLIENT_H_
