// core::Replicas over the etcd membership: which replica owns an upstream
// and which issued a lease, as this replica sees the members now.
#ifndef PICKER_SERVER_ETCD_REPLICAS_VIEW_H_
#define PICKER_SERVER_ETCD_REPLICAS_VIEW_H_

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "server/core/replicas.h"
#include "server/etcd/etcd_store.h"
#include "server/etcd/membership.h"

namespace picker::etcd {

//
// Until a membership is attached (the replica joins once its data listener
// is bound), it serves everything here.
class ReplicasView final : public core::Replicas {
 public:
  // Both must outlive the view.
  ReplicasView(const EtcdStore& store, core::ReplicaStats& stats) : store_(store), stats_(stats) {}
  // `membership` must outlive the view.
  void Attach(const Membership* membership) { membership_.store(membership); }

  std::optional<Peer> OwnerOf(absl::string_view upstream) const override;
  std::optional<Peer> IssuerOf(uint64_t boot) const override;
  std::vector<Peer> Members() const override;
  std::string self_id() const override;
  bool shared() const override { return true; }
  bool confirmed() const override;
  uint64_t revision_lag() const override;
  core::ReplicaStats& stats() const override { return stats_; }

 private:
  std::atomic<const Membership*> membership_{nullptr};
  const EtcdStore& store_;
  core::ReplicaStats& stats_;
};

}  // namespace picker::etcd

#endif  // PICKER_SERVER_ETCD_REPLICAS_VIEW_H_
