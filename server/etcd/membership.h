// The replicas sharing an etcd cluster, and which of them owns which
// upstream.
//
// Each replica registers under `<prefix>members/<id>` with an etcd lease
// that it keeps alive (its keep-alive and watch streams require a leader,
// so a replica cut off from the quorum notices). Every replica watches the
// members, and all compute the same owner of an upstream from the same
// membership: the live member with the highest XXH64(member_id + "/" +
// upstream_name) (seed 0), ties to the smaller id. The owner serves the
// upstream's picks and releases, so that its counts are all clients'.
//
//   auto membership = Membership::Join(client, {.id = "a", .address = "10.0.0.1:50051", ...});
//   const Member* owner = (*membership)->OwnerOf("users");
//
// While etcd cannot be reached the replica keeps its last view of the
// members (and so serves the upstreams it owned): its ownership is then
// unconfirmed (confirmed() false), and it says so once in the log.
#ifndef PICKER_SERVER_ETCD_MEMBERSHIP_H_
#define PICKER_SERVER_ETCD_MEMBERSHIP_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/etcd/client.h"

namespace picker::etcd {

struct Member {
  std::string id;
  std::string address;  // Its data listener, as peers and clients reach it.
  uint64_t boot = 0;
  std::string admin_address;  // Its admin listener, as peers reach it.
  bool operator==(const Member&) const = default;
};

// The owner of `upstream` among `members` (null when there is none).
const Member* OwnerOf(absl::Span<const Member> members, absl::string_view upstream);

class Membership {
 public:
  struct Options {
    std::string prefix = "/picker/";
    std::string id;
    std::string address;
    uint64_t boot = 0;
    std::string admin_address;
    // Asked of etcd, which grants whole seconds, 2 at least.
    std::chrono::seconds ttl{5};
  };

  // Registers this replica and starts following the members. `client`
  // must outlive the membership.
  static absl::StatusOr<std::unique_ptr<Membership>> Join(EtcdClient& client, Options options);
  // Leaves (if not yet) and stops.
  ~Membership();

  // Gives up the membership at once (revokes the lease), so that the
  // others take over this replica's upstreams without waiting for the TTL.
  void Leave();

  // The live members as last seen, by id.
  std::vector<Member> members() const;
  // The owner of `upstream` in that view; empty id when none.
  Member OwnerOf(absl::string_view upstream) const;
  // The member whose boot is `boot` (the issuer of a lease), if live.
  std::optional<Member> MemberWithBoot(uint64_t boot) const;
  const Member& self() const { return self_; }
  // False while the lease could not be kept alive for a TTL.
  bool confirmed() const { return confirmed_.load(std::memory_order_acquire); }
  std::chrono::seconds granted_ttl() const { return granted_ttl_; }
  // Called, on the membership's thread, after each change of the members.
  void OnChange(std::function<void()> callback);

 private:
  Membership(EtcdClient& client, Options options);
  absl::Status Register();
  void KeepAliveLoop();
  bool KeepAliveOnce();
  void WatchLoop();
  bool WatchOnce();
  absl::StatusOr<int64_t> LoadMembers();
  void SetMembers(std::vector<Member> members);
  void Confirm(bool confirmed);

  EtcdClient& client_;
  const Options options_;
  const std::string key_prefix_;  // <prefix>members/
  const Member self_;
  std::chrono::seconds granted_ttl_{0};
  std::atomic<int64_t> lease_{0};
  std::atomic<bool> confirmed_{true};

  mutable std::mutex mu_;
  std::vector<Member> members_;  // By id.
  std::function<void()> on_change_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool left_ = false;
  std::unique_ptr<grpc::ClientContext> keepalive_context_;
  std::unique_ptr<grpc::ClientContext> watch_context_;
  std::thread keepalive_;
  std::thread watch_;
};

}  // namespace picker::etcd

#endif  // PICKER_SERVER_ETCD_MEMBERSHIP_H_
