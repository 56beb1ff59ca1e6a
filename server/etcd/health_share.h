// The health that no admin write makes (passive ejections, the active
// checks' verdicts), shared through etcd so that a new owner of an upstream
// starts with the health its last owner saw, instead of every target
// healthy.
//
// It stands between the health's sources (the data plane, the prober) and
// the control plane: each HealthChanged goes on to the control plane at
// once and, for an upstream this replica owns, is written to etcd by the
// share's own thread, never by the caller. When the members change, the
// share reads back the health of every upstream this replica has come to
// own and applies it before the control plane rebuilds the snapshot.
//
//   HealthShare share(client, "/picker/", snapshots, replicas, *control);
//   DataPlane data(snapshots, share, ...);   // ejections go through it
//   Prober prober(share, ...);               // so do the checks' verdicts
//
// Key: <prefix>health/<upstream>, an etcd::v1::UpstreamHealth as JSON that
// lists only the targets ejected or failing their checks (no key: all
// healthy). A write etcd refuses is tried again a second later; while etcd
// is out of reach the replica goes on with the health it has.
#ifndef PICKER_SERVER_ETCD_HEALTH_SHARE_H_
#define PICKER_SERVER_ETCD_HEALTH_SHARE_H_

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/core/health_events.h"
#include "server/core/replicas.h"
#include "server/core/snapshot_map.h"
#include "server/etcd/client.h"

namespace picker::etcd {

class HealthShare final : public core::HealthEvents {
 public:
  // Every argument must outlive the share; `next` gets every event.
  HealthShare(EtcdClient& client, const std::string& prefix, const core::SnapshotMap& snapshots,
              const core::Replicas& replicas, core::HealthEvents& next);
  ~HealthShare() override;  // Stops the thread; what is not written yet is not.
  HealthShare(const HealthShare&) = delete;
  HealthShare& operator=(const HealthShare&) = delete;

  void HealthChanged(const std::string& upstream) override;

 private:
  void Loop();
  // Writes the health of `upstream` if this replica owns it and it changed
  // since the last write; false when etcd refused it.
  bool Publish(const std::string& upstream);
  // The upstreams this replica owns now and did not at the last look.
  std::vector<std::string> NewlyOwned();
  // Reads the shared health of `upstreams` and applies it to their targets;
  // false when etcd could not be read.
  bool Adopt(const std::vector<std::string>& upstreams);

  EtcdClient& client_;
  const std::string key_prefix_;  // <prefix>health/
  const core::SnapshotMap& snapshots_;
  const core::Replicas& replicas_;
  core::HealthEvents& next_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> pending_;  // Guarded by mu_: to publish.
  bool stopping_ = false;          // Guarded by mu_.

  // The share's thread only.
  absl::flat_hash_map<std::string, std::string> published_;  // Upstream -> JSON written.
  std::vector<std::string> members_seen_;                    // Member ids at the last look.
  std::thread thread_;
};

}  // namespace picker::etcd

#endif  // PICKER_SERVER_ETCD_HEALTH_SHARE_H_
