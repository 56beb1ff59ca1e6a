// The data plane: finds an upstream's published snapshot, picks a target,
// keeps the leases, releases them, and feeds the outcomes to passive
// health. It only reads what the control plane publishes (SnapshotMap) and
// reports health changes back (HealthEvents): it never takes the control
// plane's lock, and a pick allocates nothing it can avoid.
//
//   DataPlane data(snapshots, control_plane, store.boot(), {});
//   absl::StatusOr<PickOutput> pick = data.Pick({.upstream = "users"});
//   data.Release("users", pick->lease_id, Outcome::kSuccess, latency);
//
// Folder: server/data owns the pick path and the leases. It may use core/
// only.
#ifndef PICKER_SERVER_DATA_DATA_PLANE_H_
#define PICKER_SERVER_DATA_DATA_PLANE_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/core/changes.h"
#include "server/core/hash/hash_policy.h"
#include "server/core/health_events.h"
#include "server/core/leases.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/core/upstream.h"

namespace picker::data {

struct PickInput {
  absl::string_view upstream;
  const core::RequestAttributesView* attributes = nullptr;  // May be null.
  absl::string_view client_zone;
  // Who is calling, for the upstream's per-client configurations.
  absl::string_view client_service;
  const core::ClientTagsView* client_tags = nullptr;  // May be null.
  absl::Span<const std::string* const> exclude;       // Addresses, any spelling.
  std::optional<uint64_t> hash;
};

struct PickOutput {
  std::shared_ptr<const core::UpstreamSnapshot> snapshot;  // Keeps `target` alive.
  const core::SnapshotTarget* target = nullptr;
  uint64_t lease_id = 0;
  core::Millis lease_ttl{0};
  std::optional<uint64_t> hash;  // Set for consistent-hashing strategies.
  std::vector<core::GeneratedCookie> cookies;
};

enum class Outcome : uint8_t { kSuccess, kFailure, kTimeout };

// What a pick would choose now, and why (ExplainPick).
struct PickExplanation {
  std::shared_ptr<const core::UpstreamSnapshot> snapshot;  // Target indices point into it.
  std::string client_zone;
  // "request" (PickRequest.hash), "hash_policies", or "random": no hash, so
  // hashed choices and the locality priority are random.
  std::string hash_source;
  std::optional<uint64_t> hash;
  std::vector<core::PolicyTrace> policies;  // One per hash policy.
  // The per-client configuration the pick used (index in the upstream's
  // client_configs), or nullopt for the upstream's own.
  std::optional<size_t> client_config;
  // The snapshot whose strategy decides: `snapshot` itself, or its
  // per-client one (owned by `snapshot`; target indices are the same).
  const core::UpstreamSnapshot* balancer = nullptr;
  core::SnapshotExplanation choice;
  // Targets that cannot be chosen: "weight_zero", "unhealthy" (the
  // target's reasons say which checks), "other_priority", "excluded",
  // "circuit_breaker".
  struct LeftOut {
    uint32_t target;
    std::string reason;
  };
  std::vector<LeftOut> left_out;
};

class DataPlane {
 public:
  struct Options {
    // Outstanding leases (active requests) per upstream; Pick answers
    // RESOURCE_EXHAUSTED beyond.
    core::Limit max_leases_per_upstream{1000000, "max_leases_per_upstream"};
    // Leases expire at most this late: the expiry timer wakes no more
    // often than this under load.
    core::Millis expiry_granularity{10};
    // The overload manager's flag and refusal count (may be null): while
    // overloaded, new picks answer RESOURCE_EXHAUSTED. They still look
    // their upstream up, which lets this thread drop the snapshots it
    // cached of upstreams deleted since, so that memory can fall.
    core::ProcessStats* stats = nullptr;
  };

  // `snapshots` and `health` must outlive the data plane. `boot` is the
  // store's (lease_id.h).
  DataPlane(const core::SnapshotMap& snapshots, core::HealthEvents& health, uint64_t boot,
            Options options);
  ~DataPlane();  // Stops the expiry timer.
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  absl::StatusOr<PickOutput> Pick(const PickInput& input);
  // What Pick(input) would choose now, and why: takes no lease and moves
  // no counter, cursor or schedule.
  absl::StatusOr<PickExplanation> Explain(const PickInput& input) const;
  // Ends a lease. The latency and the backend's load report, when given,
  // feed the upstream's strategy if it balances on them (PeakEwma,
  // WeightedRoundRobin); the latency also feeds the request histogram.
  absl::StatusOr<core::LeaseState> Release(absl::string_view upstream, uint64_t lease_id,
                                           Outcome outcome,
                                           std::optional<std::chrono::nanoseconds> latency,
                                           const core::LoadReport* load_report = nullptr);
  // True when `upstream` is published.
  bool Knows(absl::string_view upstream) const { return snapshots_.Find(upstream) != nullptr; }
  // Ends a lease whose client went away (counted as abandoned).
  bool Abandon(uint64_t lease_id) { return leases_.Abandon(lease_id); }

  core::LeaseTable& leases() { return leases_; }

 private:
  // RESOURCE_EXHAUSTED while the overload manager says so.
  absl::Status CheckOverload() const;
  // RESOURCE_EXHAUSTED when the upstream holds as many leases as it may.
  absl::Status CheckCapacity(const core::UpstreamSnapshot& snapshot) const;
  // The request's hash: given, from the hash policies, or random (nullopt
  // when `random` is false).
  std::optional<uint64_t> RequestHash(const core::UpstreamSnapshot& snapshot,
                                      const PickInput& input,
                                      std::vector<core::GeneratedCookie>* cookies, bool random,
                                      std::vector<core::PolicyTrace>* trace = nullptr) const;
  // Chooses a target and opens its lease.
  absl::Status Choose(const core::UpstreamSnapshot& snapshot, const PickInput& input,
                      PickOutput& out);
  // Passive health: counts an outcome against the target, ejecting it when
  // it reaches the limit.
  void RecordOutcome(const core::UpstreamSnapshot& snapshot,
                     const std::shared_ptr<core::TargetLive>& target, Outcome outcome);
  // Feeds what the release reports to the strategy that balances on it,
  // lock-free: the latency to PeakEwma's EWMA, the load report to
  // WeightedRoundRobin's weight.
  static void RecordLoad(const core::UpstreamSnapshot& snapshot, core::TargetLive& target,
                         Outcome outcome, std::optional<std::chrono::nanoseconds> latency,
                         const core::LoadReport* load_report);
  void ExpiryLoop();

  const core::SnapshotMap& snapshots_;
  core::HealthEvents& health_;
  const Options options_;
  core::LeaseTable leases_;
  std::mutex ejection_mu_;  // Serialises ejection decisions.

  std::mutex expiry_mu_;
  std::condition_variable expiry_cv_;
  bool expiry_woken_ = false;
  bool stopping_ = false;
  std::thread expiry_;
};

}  // namespace picker::data

#endif  // PICKER_SERVER_DATA_DATA_PLANE_H_
