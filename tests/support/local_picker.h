// picker's control and data planes in one process over a store, without
// gRPC: what the core's tests and benchmarks drive. Its methods have the
// shapes of the admin and data-plane operations; writes go through the
// control plane (the store's change feed) as picker-server's do.
//
//   core::MemoryStore store;
//   testing::LocalPicker picker(store);
//   picker.CreateUpstream(config);
//   absl::StatusOr<data::PickOutput> pick = picker.Pick(input);
#ifndef PICKER_TESTS_SUPPORT_LOCAL_PICKER_H_
#define PICKER_TESTS_SUPPORT_LOCAL_PICKER_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/control/control_plane.h"
#include "server/core/address.h"
#include "server/core/changes.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/core/store.h"
#include "server/data/data_plane.h"

namespace picker::testing {

using core::TargetPatch;
using data::Outcome;
using data::PickInput;
using data::PickOutput;

class LocalPicker {
 public:
  struct Options {
    core::Limits limits;
    uint64_t max_leases_per_upstream = 1000000;
    core::Millis expiry_granularity{10};
  };

  explicit LocalPicker(core::Store& store) : LocalPicker(store, Options()) {}
  LocalPicker(core::Store& store, Options options) {
    control_ =
        *control::ControlPlane::Start(store, snapshots_, writer_stats_, {.limits = options.limits});
    data_ = std::make_unique<data::DataPlane>(
        snapshots_, *control_, store.boot(),
        data::DataPlane::Options{
            .max_leases_per_upstream = {options.max_leases_per_upstream, "max_leases"},
            .expiry_granularity = options.expiry_granularity});
  }
  ~LocalPicker() {
    data_.reset();
    control_.reset();
  }

  using SnapshotOr = absl::StatusOr<std::shared_ptr<const core::UpstreamSnapshot>>;

  SnapshotOr CreateUpstream(core::UpstreamConfig config) {
    return Snapshot(control_->Write(core::CreateUpstream{std::move(config)}));
  }
  SnapshotOr UpdateUpstream(core::UpstreamConfig config) {
    return Snapshot(control_->Write(core::UpdateUpstream{std::move(config)}));
  }
  absl::Status DeleteUpstream(const std::string& name) {
    return control_->Write(core::DeleteUpstream{name}).status();
  }
  absl::StatusOr<core::TargetConfig> PutTarget(const std::string& upstream, TargetPatch patch) {
    const std::string address = patch.address;
    absl::StatusOr<control::WriteResult> w = control_->Write(core::PutTarget{upstream, patch});
    if (!w.ok()) return w.status();
    const std::string canonical = *core::CanonicalAddress(address, "address");
    for (const core::StoredTarget& t : w->record->targets) {
      if (t.config.address == canonical) return t.config;
    }
    return absl::InternalError("the target written is not in the record");
  }
  absl::Status DeleteTarget(const std::string& upstream, const std::string& address) {
    return control_->Write(core::DeleteTarget{upstream, address}).status();
  }
  SnapshotOr ReplaceTargets(const std::string& upstream, std::vector<core::TargetConfig> targets) {
    return Snapshot(control_->Write(core::ReplaceTargets{upstream, std::move(targets)}));
  }
  SnapshotOr SetTargetHealth(const std::string& upstream, const std::string& address,
                             core::HealthOverride health_override) {
    return Snapshot(control_->Write(core::SetTargetHealth{upstream, address, health_override}));
  }

  std::shared_ptr<const core::UpstreamSnapshot> Find(absl::string_view name) const {
    return snapshots_.Find(name);
  }
  std::vector<std::shared_ptr<const core::UpstreamSnapshot>> List() const {
    return snapshots_.List();
  }

  absl::StatusOr<PickOutput> Pick(const PickInput& input) { return data_->Pick(input); }
  absl::StatusOr<core::LeaseState> Release(absl::string_view upstream, uint64_t lease_id,
                                           Outcome outcome,
                                           std::optional<std::chrono::nanoseconds> latency,
                                           const core::LoadReport* load_report = nullptr) {
    return data_->Release(upstream, lease_id, outcome, latency, load_report);
  }
  bool Abandon(uint64_t lease_id) { return data_->Abandon(lease_id); }

  // What the active health prober does after flipping a live flag.
  void MarkHealthChanged(const std::string& upstream) { control_->HealthChanged(upstream); }
  // Expires the leases that are due now, racing the data plane's timer.
  void RunMaintenance() { data_->leases().ExpireDue(core::LeaseTable::Clock::now()); }

  core::LeaseTable& leases() { return data_->leases(); }
  control::ControlPlane& control() { return *control_; }
  data::DataPlane& data() { return *data_; }
  core::SnapshotMap& snapshots() { return snapshots_; }

 private:
  static SnapshotOr Snapshot(absl::StatusOr<control::WriteResult> written) {
    if (!written.ok()) return written.status();
    return written->snapshot;
  }

  core::SnapshotMap snapshots_;
  core::WriterStats writer_stats_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<data::DataPlane> data_;
};

}  // namespace picker::testing

#endif  // PICKER_TESTS_SUPPORT_LOCAL_PICKER_H_
