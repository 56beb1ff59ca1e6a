#include "server/etcd/replicas_view.h"

#include <algorithm>

namespace picker::etcd {

std::optional<core::Replicas::Peer> ReplicasView::OwnerOf(absl::string_view upstream) const {
  const Membership* membership = membership_.load();
  if (membership == nullptr) return std::nullopt;
  const Member owner = membership->OwnerOf(upstream);
  // No member seen at all (etcd never reached): serve here.
  if (owner.id.empty() || owner.id == membership->self().id) return std::nullopt;
  return Peer{owner.id, owner.address, owner.admin_address};
}

std::optional<core::Replicas::Peer> ReplicasView::IssuerOf(uint64_t boot) const {
  const Membership* membership = membership_.load();
  if (membership == nullptr || boot == membership->self().boot) return std::nullopt;
  const std::optional<Member> issuer = membership->MemberWithBoot(boot);
  if (!issuer || issuer->id == membership->self().id) return std::nullopt;
  return Peer{issuer->id, issuer->address, issuer->admin_address};
}

std::vector<core::Replicas::Peer> ReplicasView::Members() const {
  std::vector<Peer> peers;
  const Membership* membership = membership_.load();
  if (membership == nullptr) return peers;
  for (const Member& m : membership->members())
    peers.push_back(Peer{m.id, m.address, m.admin_address});
  return peers;
}

std::string ReplicasView::self_id() const {
  const Membership* membership = membership_.load();
  return membership == nullptr ? std::string() : membership->self().id;
}

bool ReplicasView::confirmed() const {
  const Membership* membership = membership_.load();
  return membership != nullptr && membership->confirmed();
}

uint64_t ReplicasView::revision_lag() const {
  const uint64_t etcd = store_.etcd_revision();
  const uint64_t caught_up = store_.caught_up_revision();
  return etcd > caught_up ? etcd - caught_up : 0;
}

}  // namespace picker::etcd
