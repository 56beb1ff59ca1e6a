// Which replica serves an upstream's live state, when several replicas
// share a store: its owner. The gRPC layer asks before it serves a pick or
// a release here, and forwards to the owner (or the lease's issuer)
// otherwise. A single server has no Replicas: everything is served here.
//
//   if (std::optional<Peer> owner = replicas->OwnerOf("users")) {
//     ... forward to owner->address ...
//   }
#ifndef PICKER_SERVER_CORE_REPLICAS_H_
#define PICKER_SERVER_CORE_REPLICAS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace picker::core {

// The calls that are forwarded to an owner, by index in ReplicaStats.
enum class Forwarded : uint8_t {
  kPick,
  kRelease,
  kPickStream,
  kAbandon,
  kUpstreamHealth,
  kExplainPick
};
inline constexpr size_t kForwardedCount = 6;
const char* ForwardedName(Forwarded call);

// Counts the replicas' machinery keeps, read by the metrics.
struct ReplicaStats {
  std::array<std::atomic<uint64_t>, kForwardedCount> forwarded{};

  // etcd requests by operation and gRPC code name.
  void CountRequest(absl::string_view op, absl::string_view code);
  std::map<std::pair<std::string, std::string>, uint64_t> Requests() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_;  // Guarded by mu_.
};

class Replicas {
 public:
  struct Peer {
    std::string id;
    std::string address;        // Its data listener.
    std::string admin_address;  // Its admin listener; empty when unknown.
  };
  virtual ~Replicas() = default;

  // The owner of `upstream` when it is another replica; nullopt when this
  // replica owns it (or sees no member at all).
  virtual std::optional<Peer> OwnerOf(absl::string_view upstream) const = 0;
  // The live replica whose start issued leases of `boot`; nullopt when it
  // is this one or none is alive.
  virtual std::optional<Peer> IssuerOf(uint64_t boot) const = 0;
  // The live replicas, by id.
  virtual std::vector<Peer> Members() const = 0;
  virtual std::string self_id() const = 0;
  // True when replicas share the configuration (etcd mode): a lease of
  // another boot may then be another replica's.
  virtual bool shared() const = 0;
  // False while this replica's membership is unconfirmed (etcd out of
  // reach).
  virtual bool confirmed() const = 0;
  // How far behind etcd the configuration this replica applied is, in
  // revisions.
  virtual uint64_t revision_lag() const = 0;
  virtual ReplicaStats& stats() const = 0;
};

// A server running alone: it owns everything. Its id and address are set
// once its data listener is bound.
class SoloReplica final : public Replicas {
 public:
  void Set(std::string id, std::string address) {
    std::lock_guard lock(mu_);
    self_ = Peer{std::move(id), std::move(address)};
  }
  std::optional<Peer> OwnerOf(absl::string_view) const override { return std::nullopt; }
  std::optional<Peer> IssuerOf(uint64_t) const override { return std::nullopt; }
  std::vector<Peer> Members() const override {
    std::lock_guard lock(mu_);
    return {self_};
  }
  std::string self_id() const override {
    std::lock_guard lock(mu_);
    return self_.id;
  }
  bool shared() const override { return false; }
  bool confirmed() const override { return true; }
  uint64_t revision_lag() const override { return 0; }
  ReplicaStats& stats() const override { return stats_; }

 private:
  mutable std::mutex mu_;
  Peer self_;  // Guarded by mu_.
  mutable ReplicaStats stats_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_REPLICAS_H_
