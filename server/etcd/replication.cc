#include "server/etcd/replication.h"

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace picker::etcd {

Replication::Replication(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Replication>> Replication::Connect(Options options) {
  std::unique_ptr<Replication> r(new Replication(std::move(options)));
  absl::StatusOr<std::unique_ptr<EtcdClient>> client = EtcdClient::Connect(r->options_.client);
  if (!client.ok()) return client.status();
  r->client_ = *std::move(client);
  r->client_->CountIn(&r->stats_);
  absl::StatusOr<std::unique_ptr<EtcdStore>> store =
      EtcdStore::Open(*r->client_, r->options_.prefix);
  if (!store.ok()) return store.status();
  r->store_ = *std::move(store);
  r->view_ = std::make_unique<ReplicasView>(*r->store_, r->stats_);
  return r;
}

Replication::~Replication() {
  view_->Attach(nullptr);
  membership_.reset();
}

absl::Status Replication::Join(const std::string& id, const std::string& address,
                               const std::string& admin_address) {
  Membership::Options options;
  options.prefix = options_.prefix;
  options.id = id;
  options.address = address;
  options.admin_address = admin_address;
  options.boot = store_->boot();
  options.ttl = options_.member_ttl;
  absl::StatusOr<std::unique_ptr<Membership>> membership = Membership::Join(*client_, options);
  if (!membership.ok()) return membership.status();
  membership_ = *std::move(membership);
  view_->Attach(membership_.get());
  spdlog::info("etcd: joined as replica {} at {} (boot {}, lease TTL {} s)", id, address,
               store_->boot(), membership_->granted_ttl().count());
  return absl::OkStatus();
}

std::unique_ptr<HealthShare> Replication::ShareHealth(const core::SnapshotMap& snapshots,
                                                      core::HealthEvents& next) {
  return std::make_unique<HealthShare>(*client_, options_.prefix, snapshots, *view_, next);
}

void Replication::Leave() {
  if (membership_) membership_->Leave();
}

}  // namespace picker::etcd
