#include "server/etcd/membership.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "server/core/hash/hash.h"
#include "server/core/thread_name.h"
#include "server/etcd/member.pb.h"
#include "spdlog/spdlog.h"

namespace picker::etcd {
namespace {

std::string MemberJson(const Member& m) {
  v1::Member message;
  message.set_id(m.id);
  message.set_address(m.address);
  message.set_boot(m.boot);
  message.set_admin_address(m.admin_address);
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json);
  return json;
}

std::optional<Member> ParseMember(const std::string& json) {
  v1::Member message;
  if (!google::protobuf::util::JsonStringToMessage(json, &message).ok()) return std::nullopt;
  return Member{message.id(), message.address(), message.boot(), message.admin_address()};
}

}  // namespace

const Member* OwnerOf(absl::Span<const Member> members, absl::string_view upstream) {
  const Member* owner = nullptr;
  uint64_t best = 0;
  for (const Member& m : members) {
    const uint64_t score = core::XxHash64(absl::StrCat(m.id, "/", upstream), 0);
    if (owner == nullptr || score > best || (score == best && m.id < owner->id)) {
      owner = &m;
      best = score;
    }
  }
  return owner;
}

Membership::Membership(EtcdClient& client, Options options)
    : client_(client),
      options_(std::move(options)),
      key_prefix_(options_.prefix + "members/"),
      self_{options_.id, options_.address, options_.boot, options_.admin_address} {}

absl::StatusOr<std::unique_ptr<Membership>> Membership::Join(EtcdClient& client, Options options) {
  std::unique_ptr<Membership> membership(new Membership(client, std::move(options)));
  if (absl::Status s = membership->Register(); !s.ok()) return s;
  absl::StatusOr<int64_t> revision = membership->LoadMembers();
  if (!revision.ok()) return revision.status();
  membership->keepalive_ = std::thread([m = membership.get()] { m->KeepAliveLoop(); });
  membership->watch_ = std::thread([m = membership.get()] { m->WatchLoop(); });
  return membership;
}

Membership::~Membership() {
  Leave();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (keepalive_context_) keepalive_context_->TryCancel();
    if (watch_context_) watch_context_->TryCancel();
  }
  stop_cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
  if (watch_.joinable()) watch_.join();
}

absl::Status Membership::Register() {
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> lease = client_.LeaseGrant(options_.ttl.count());
  if (!lease.ok()) return lease.status();
  granted_ttl_ = std::chrono::seconds(lease->ttl());
  lease_.store(lease->id(), std::memory_order_release);
  etcdserverpb::TxnRequest txn;
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(key_prefix_ + self_.id);
  put->set_value(MemberJson(self_));
  put->set_lease(lease->id());
  absl::StatusOr<etcdserverpb::TxnResponse> done = client_.Txn(txn);
  return done.status();
}

void Membership::Leave() {
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    if (left_) return;
    left_ = true;
    lease = lease_.load(std::memory_order_acquire);
  }
  // The key goes with the lease: every replica's watch sees it at once.
  if (absl::Status s = client_.LeaseRevoke(lease); !s.ok()) {
    spdlog::warn("etcd: cannot leave the members at once ({}); the others take over after {} s",
                 std::string(s.message()), granted_ttl_.count());
  }
}

void Membership::Confirm(bool confirmed) {
  if (confirmed_.exchange(confirmed) == confirmed) return;
  if (confirmed) {
    spdlog::info("etcd: membership confirmed again; ownership follows the members again");
  } else {
    spdlog::error(
        "etcd: cannot keep this replica's membership alive; its ownership is unconfirmed "
        "(it keeps serving its last configuration and the upstreams it owned)");
  }
}

bool Membership::KeepAliveOnce() {
  // One request and its answer per stream, bounded by a deadline: a
  // blocking read on a long stream could not tell a silent etcd from a
  // quiet one.
  std::unique_ptr<grpc::ClientContext> context = client_.StreamContext();
  context->set_deadline(std::chrono::system_clock::now() + granted_ttl_ / 2);
  auto stream = client_.lease().LeaseKeepAlive(context.get());
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease_.load(std::memory_order_acquire));
  etcdserverpb::LeaseKeepAliveResponse response;
  const bool answered = stream->Write(request) && stream->Read(&response);
  stream->WritesDone();
  stream->Finish().IgnoreError();
  if (!answered) return false;
  if (response.ttl() > 0) return true;
  // The lease expired (etcd was out of reach too long): join again.
  spdlog::warn("etcd: this replica's lease expired; registering again");
  return Register().ok();
}

void Membership::KeepAliveLoop() {
  core::NameThisThread("etcd-keepalive");
  auto last_ok = std::chrono::steady_clock::now();
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (stop_cv_.wait_for(lock, granted_ttl_ / 3, [this] { return stopping_ || left_; })) {
        return;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (KeepAliveOnce()) {
      last_ok = now;
      Confirm(true);
    } else if (now - last_ok >= granted_ttl_) {
      Confirm(false);
    }
  }
}

absl::StatusOr<int64_t> Membership::LoadMembers() {
  etcdserverpb::RangeRequest range;
  range.set_key(key_prefix_);
  range.set_range_end(PrefixEnd(key_prefix_));
  absl::StatusOr<etcdserverpb::RangeResponse> response = client_.Range(range);
  if (!response.ok()) return response.status();
  std::vector<Member> members;
  for (const mvccpb::KeyValue& kv : response->kvs()) {
    if (std::optional<Member> m = ParseMember(kv.value())) members.push_back(*std::move(m));
  }
  SetMembers(std::move(members));
  return response->header().revision();
}

void Membership::SetMembers(std::vector<Member> members) {
  std::sort(members.begin(), members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  std::function<void()> callback;
  {
    std::lock_guard lock(mu_);
    if (members == members_) return;
    members_ = std::move(members);
    callback = on_change_;
  }
  if (callback) callback();
}

bool Membership::WatchOnce() {
  absl::StatusOr<int64_t> revision = LoadMembers();
  if (!revision.ok()) return false;
  std::unique_ptr<grpc::ClientContext> context = client_.StreamContext();
  grpc::ClientContext* raw = context.get();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return true;
    watch_context_ = std::move(context);
  }
  auto stream = client_.watch().Watch(raw);
  etcdserverpb::WatchRequest request;
  request.mutable_create_request()->set_key(key_prefix_);
  request.mutable_create_request()->set_range_end(PrefixEnd(key_prefix_));
  request.mutable_create_request()->set_start_revision(*revision + 1);
  if (!stream->Write(request)) return false;
  etcdserverpb::WatchResponse response;
  while (stream->Read(&response)) {
    if (response.canceled() || response.compact_revision() > 0) break;
    if (response.events_size() == 0) continue;
    std::vector<Member> members = this->members();
    for (const mvccpb::Event& e : response.events()) {
      const std::string id = e.kv().key().substr(key_prefix_.size());
      std::erase_if(members, [&](const Member& m) { return m.id == id; });
      if (e.type() == mvccpb::Event::PUT) {
        if (std::optional<Member> m = ParseMember(e.kv().value())) members.push_back(*m);
      }
    }
    SetMembers(std::move(members));
  }
  stream->Finish().IgnoreError();
  return false;
}

void Membership::WatchLoop() {
  core::NameThisThread("etcd-members");
  while (true) {
    WatchOnce();
    std::unique_lock lock(mu_);
    if (stop_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) {
      return;
    }
  }
}

std::vector<Member> Membership::members() const {
  std::lock_guard lock(mu_);
  return members_;
}

Member Membership::OwnerOf(absl::string_view upstream) const {
  std::lock_guard lock(mu_);
  const Member* owner = etcd::OwnerOf(members_, upstream);
  return owner == nullptr ? Member{} : *owner;
}

std::optional<Member> Membership::MemberWithBoot(uint64_t boot) const {
  std::lock_guard lock(mu_);
  for (const Member& m : members_) {
    if (m.boot == boot) return m;
  }
  return std::nullopt;
}

void Membership::OnChange(std::function<void()> callback) {
  std::lock_guard lock(mu_);
  on_change_ = std::move(callback);
}

}  // namespace picker::etcd
