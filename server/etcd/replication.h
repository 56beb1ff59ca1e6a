// Everything a replica needs in etcd mode, assembled: the etcd client, the
// store over etcd, this replica's membership, and the view of which replica
// owns what.
//
//   auto replication = Replication::Connect(options);        // before the planes
//   ControlPlane::Start((*replication)->store(), ...);
//   ... bind the listeners ...
//   (*replication)->Join("a", "10.0.0.1:50051");             // then serve
//   (*replication)->Leave();                                 // on SIGTERM, first
#ifndef PICKER_SERVER_ETCD_REPLICATION_H_
#define PICKER_SERVER_ETCD_REPLICATION_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/replicas.h"
#include "server/etcd/client.h"
#include "server/etcd/etcd_store.h"
#include "server/etcd/health_share.h"
#include "server/etcd/membership.h"
#include "server/etcd/replicas_view.h"

namespace picker::etcd {

class Replication {
 public:
  struct Options {
    ClientOptions client;
    std::string prefix = "/picker/";
    std::chrono::seconds member_ttl{5};
  };

  // Connects and counts this start's boot in etcd.
  static absl::StatusOr<std::unique_ptr<Replication>> Connect(Options options);
  ~Replication();  // Leaves, if not yet.

  core::Store& store() { return *store_; }
  const core::Replicas& replicas() const { return *view_; }
  // Registers this replica (its data listener bound at `address`).
  // `address` and `admin_address`: where peers reach this replica's data
  // and admin listeners.
  absl::Status Join(const std::string& id, const std::string& address,
                    const std::string& admin_address);
  // Gives up the membership at once, so ownership moves now.
  void Leave();
  const Membership* membership() const { return membership_.get(); }
  // Shares the health that no admin write makes (see health_share.h):
  // the data plane and the prober report to it, and it passes every event
  // on to `next`. The share must be destroyed before `next` and this.
  std::unique_ptr<HealthShare> ShareHealth(const core::SnapshotMap& snapshots,
                                           core::HealthEvents& next);

 private:
  explicit Replication(Options options);

  const Options options_;
  core::ReplicaStats stats_;
  std::unique_ptr<EtcdClient> client_;
  std::unique_ptr<EtcdStore> store_;
  std::unique_ptr<ReplicasView> view_;
  std::unique_ptr<Membership> membership_;
};

}  // namespace picker::etcd

#endif  // PICKER_SERVER_ETCD_REPLICATION_H_
