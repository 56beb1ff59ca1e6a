#include "server/etcd/health_share.h"

#include <algorithm>
#include <chrono>

#include "google/protobuf/util/json_util.h"
#include "server/core/thread_name.h"
#include "server/etcd/member.pb.h"
#include "server/etcd/membership.h"
#include "spdlog/spdlog.h"

namespace picker::etcd {
namespace {

// How often the thread looks at the members (a replica that takes an
// upstream over serves it before it has read its health: this long at most,
// and an etcd read), and how soon it tries again what etcd refused.
constexpr std::chrono::milliseconds kLookPeriod(50);
constexpr std::chrono::seconds kRetryPeriod(1);

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What `snapshot`'s targets hold of the health that is shared, as JSON;
// empty when every target is healthy by that account.
std::string HealthJson(const core::UpstreamSnapshot& snapshot) {
  v1::UpstreamHealth health;
  const int64_t now = NowMs();
  for (const core::SnapshotTarget& t : snapshot.targets()) {
    const int64_t until = t.live->ejected_until_ms.load(std::memory_order_acquire);
    const bool failing = t.live->active_unhealthy.load(std::memory_order_acquire);
    if (until <= now && !failing) continue;
    v1::TargetHealth* target = health.add_targets();
    target->set_address(t.config.address);
    if (until > now) target->set_ejected_until_ms(until);
    target->set_ejections(t.live->ejections.load(std::memory_order_relaxed));
    target->set_active_unhealthy(failing);
  }
  std::string json;
  if (health.targets_size() > 0) (void)google::protobuf::util::MessageToJsonString(health, &json);
  return json;
}

// Sets `snapshot`'s targets' shared health to what `health` says (targets
// it does not list are healthy by that account).
void Apply(const v1::UpstreamHealth& health, const core::UpstreamSnapshot& snapshot) {
  absl::flat_hash_map<std::string, const v1::TargetHealth*> by_address;
  for (const v1::TargetHealth& t : health.targets()) by_address[t.address()] = &t;
  const int64_t now = NowMs();
  const bool checked = snapshot.config().active.interval.count() > 0;
  for (const core::SnapshotTarget& t : snapshot.targets()) {
    auto it = by_address.find(t.config.address);
    const v1::TargetHealth* shared = it == by_address.end() ? nullptr : it->second;
    core::TargetLive& live = *t.live;
    if (shared != nullptr && shared->ejected_until_ms() > now) {
      live.ejected_until_ms.store(shared->ejected_until_ms(), std::memory_order_release);
    } else if (live.ejected_until_ms.load(std::memory_order_acquire) > now) {
      live.ejected_until_ms.store(0, std::memory_order_release);  // From an earlier ownership.
    }
    if (shared != nullptr) live.ejections.store(shared->ejections(), std::memory_order_relaxed);
    // Without checks nothing would ever give a verdict back.
    if (checked) {
      live.active_unhealthy.store(shared != nullptr && shared->active_unhealthy(),
                                  std::memory_order_release);
    }
  }
}

}  // namespace

HealthShare::HealthShare(EtcdClient& client, const std::string& prefix,
                         const core::SnapshotMap& snapshots, const core::Replicas& replicas,
                         core::HealthEvents& next)
    : client_(client),
      key_prefix_(prefix + "health/"),
      snapshots_(snapshots),
      replicas_(replicas),
      next_(next) {
  thread_ = std::thread([this] { Loop(); });
}

HealthShare::~HealthShare() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void HealthShare::HealthChanged(const std::string& upstream) {
  next_.HealthChanged(upstream);
  {
    std::lock_guard lock(mu_);
    if (!pending_.insert(upstream).second) return;
  }
  cv_.notify_one();
}

void HealthShare::Loop() {
  core::NameThisThread("health-share");
  std::set<std::string> failed;  // Publishes and adoptions etcd refused.
  std::vector<std::string> adopt_again;
  auto retry_at = std::chrono::steady_clock::now();
  while (true) {
    std::set<std::string> pending;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, kLookPeriod, [this] { return stopping_ || !pending_.empty(); });
      if (stopping_) return;
      pending.swap(pending_);
    }
    std::vector<std::string> adopt = NewlyOwned();
    const auto now = std::chrono::steady_clock::now();
    if (now >= retry_at) {
      pending.merge(failed);
      adopt.insert(adopt.end(), adopt_again.begin(), adopt_again.end());
      failed.clear();
      adopt_again.clear();
    }
    bool refused = false;
    if (!adopt.empty() && !Adopt(adopt)) {
      adopt_again.insert(adopt_again.end(), adopt.begin(), adopt.end());
      refused = true;
    }
    for (const std::string& upstream : pending) {
      if (!Publish(upstream)) {
        failed.insert(upstream);
        refused = true;
      }
    }
    // The next retry is a period after the first refusal since the last
    // one, not after each: a refusal every look must not postpone it.
    if (refused && now >= retry_at) retry_at = now + kRetryPeriod;
  }
}

bool HealthShare::Publish(const std::string& upstream) {
  if (replicas_.OwnerOf(upstream)) return true;  // Its owner shares it.
  std::shared_ptr<const core::UpstreamSnapshot> snapshot = snapshots_.Find(upstream);
  const std::string json = snapshot ? HealthJson(*snapshot) : "";
  auto it = published_.find(upstream);
  if (it == published_.end() ? json.empty() : it->second == json) return true;
  etcdserverpb::TxnRequest txn;
  etcdserverpb::RequestOp* op = txn.add_success();
  if (json.empty()) {
    op->mutable_request_delete_range()->set_key(key_prefix_ + upstream);
  } else {
    op->mutable_request_put()->set_key(key_prefix_ + upstream);
    op->mutable_request_put()->set_value(json);
  }
  absl::StatusOr<etcdserverpb::TxnResponse> done = client_.Txn(txn);
  if (!done.ok()) {
    spdlog::warn("etcd: cannot share the health of upstream {}: {}", upstream,
                 done.status().ToString());
    return false;
  }
  if (json.empty()) {
    published_.erase(upstream);
  } else {
    published_[upstream] = json;
  }
  return true;
}

std::vector<std::string> HealthShare::NewlyOwned() {
  std::vector<Member> members;
  for (const core::Replicas::Peer& peer : replicas_.Members()) members.push_back({peer.id});
  std::vector<std::string> ids;
  for (const Member& m : members) ids.push_back(m.id);
  // Before this replica joins it serves everything and takes nothing over.
  if (members.empty() || ids == members_seen_) return {};
  std::vector<Member> before;
  for (const std::string& id : members_seen_) before.push_back({id});
  members_seen_ = std::move(ids);
  const std::string self = replicas_.self_id();
  std::vector<std::string> newly;
  for (const auto& snapshot : snapshots_.List()) {
    const std::string& name = snapshot->config().name;
    const Member* owner = OwnerOf(members, name);
    const Member* owner_before = OwnerOf(before, name);
    if (owner != nullptr && owner->id == self &&
        (owner_before == nullptr || owner_before->id != self)) {
      newly.push_back(name);
    }
  }
  return newly;
}

bool HealthShare::Adopt(const std::vector<std::string>& upstreams) {
  etcdserverpb::RangeRequest range;
  range.set_key(key_prefix_);
  range.set_range_end(PrefixEnd(key_prefix_));
  absl::StatusOr<etcdserverpb::RangeResponse> response = client_.Range(range);
  if (!response.ok()) {
    spdlog::warn("etcd: cannot read the shared health of {} upstreams taken over: {}",
                 upstreams.size(), response.status().ToString());
    return false;
  }
  absl::flat_hash_map<std::string, v1::UpstreamHealth> shared;
  for (const mvccpb::KeyValue& kv : response->kvs()) {
    v1::UpstreamHealth health;
    if (google::protobuf::util::JsonStringToMessage(kv.value(), &health).ok()) {
      shared[kv.key().substr(key_prefix_.size())] = std::move(health);
    } else {
      spdlog::error("etcd key {}: not a picker health record; ignored", kv.key());
    }
  }
  size_t unhealthy = 0;
  for (const std::string& name : upstreams) {
    std::shared_ptr<const core::UpstreamSnapshot> snapshot = snapshots_.Find(name);
    if (!snapshot) continue;
    const v1::UpstreamHealth& health = shared[name];
    unhealthy += static_cast<size_t>(health.targets_size());
    Apply(health, *snapshot);
    // What it holds now is what is shared: no need to write it back.
    const std::string json = HealthJson(*snapshot);
    if (json.empty()) {
      published_.erase(name);
    } else {
      published_[name] = json;
    }
    next_.HealthChanged(name);
  }
  spdlog::info(
      "etcd: took over {} upstreams, with the health their last owner shared ({} "
      "targets ejected or failing checks)",
      upstreams.size(), unhealthy);
  return true;
}

}  // namespace picker::etcd
