// Where admin state is kept durably. The registry writes through this
// interface before it acknowledges a change, so an embedded file store and a
// shared store (etcd, for several replicas) can stand behind it alike.
#ifndef PICKER_SERVER_CORE_STORE_H_
#define PICKER_SERVER_CORE_STORE_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/config.h"
#include "server/core/upstream.h"

namespace picker::core {

struct StoredTarget {
  TargetConfig config;
  HealthOverride health_override = HealthOverride::kNone;
  bool operator==(const StoredTarget&) const = default;
};

// Everything stored about one upstream; written whole, atomically.
struct UpstreamRecord {
  UpstreamConfig config;
  std::vector<StoredTarget> targets;  // Host-set order.
  bool operator==(const UpstreamRecord&) const = default;
};

class Store {
 public:
  virtual ~Store() = default;
  // Every stored upstream. A damaged store is an error, never a silent loss.
  virtual absl::StatusOr<std::vector<UpstreamRecord>> Load() = 0;
  // Durable when it returns OK.
  virtual absl::Status Put(const UpstreamRecord& record) = 0;
  virtual absl::Status Delete(absl::string_view name) = 0;
  // A number greater than every earlier call's, across restarts (for lease ids).
  virtual absl::StatusOr<uint64_t> NextEpoch() = 0;

  // Group commit, for the admin writer, which runs the writes that queued up
  // together. Between BeginBatch and CommitBatch, a Put or Delete called from
  // the thread that began the batch may only stage its change: it still
  // fails at once on a write error, but it is durable only once CommitBatch
  // returns OK, which makes every staged change durable with as few syncs as
  // the store can (a failed CommitBatch leaves an unknown part of them
  // durable). Calls from other threads stay durable when they return. A
  // store without staging keeps these defaults.
  virtual void BeginBatch() {}
  virtual absl::Status CommitBatch() { return absl::OkStatus(); }
};

// Keeps state in memory only: for tests and for --data-dir "".
class MemoryStore : public Store {
 public:
  absl::StatusOr<std::vector<UpstreamRecord>> Load() override;
  absl::Status Put(const UpstreamRecord& record) override;
  absl::Status Delete(absl::string_view name) override;
  absl::StatusOr<uint64_t> NextEpoch() override;

 private:
  std::mutex mu_;
  std::map<std::string, UpstreamRecord, std::less<>> records_;
  uint64_t epoch_ = 0;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STORE_H_
