// GET /status.json: what the status page shows, read from the published
// snapshots and their live counters at request time (nothing is added to
// the pick path). A page of upstreams at a time, filtered by name; the
// totals cover every upstream. README's "Status page" documents the shape.
//
//   StatusReport report(snapshots, {.version = "0.1.0", .started = ...});
//   absl::StatusOr<PageQuery> query = ParsePageQuery(request);   // 400 on error
//   std::string json = report.Json(*query);
//
// Folder: server/status owns the status page and its JSON. It reads core/,
// renders configuration with api/convert (the Admin API's own JSON names),
// and serves through http/.
#ifndef PICKER_SERVER_STATUS_REPORT_H_
#define PICKER_SERVER_STATUS_REPORT_H_

#include <chrono>
#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/replicas.h"
#include "server/core/snapshot_map.h"
#include "server/http/http.h"
#include "server/http/json.h"
#include "server/status/rates.h"

namespace picker::status {

// Which upstreams a request asks for: names containing `filter` (ASCII
// case-insensitive), `size` of them from the `offset`-th, in name order.
struct PageQuery {
  static constexpr size_t kDefaultSize = 50;
  static constexpr size_t kMaxSize = 500;
  std::string filter;
  size_t offset = 0;
  size_t size = kDefaultSize;
};

// The query string's filter, offset and size; INVALID_ARGUMENT naming the
// parameter for a value out of range or not a number.
absl::StatusOr<PageQuery> ParsePageQuery(const http::Request& request);

struct ProcessInfo {
  std::string version;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point started_wall = std::chrono::system_clock::now();
  // The replicas this process is one of (it must outlive the report); the
  // page names this replica and each upstream's owner when they share etcd.
  const core::Replicas* replicas = nullptr;
};

class StatusReport {
 public:
  // `snapshots` must outlive the report.
  StatusReport(const core::SnapshotMap& snapshots, ProcessInfo process);

  // The JSON document. Thread-safe.
  std::string Json(const PageQuery& query);

 private:
  struct Now {
    RateTracker::Clock::time_point steady;
    std::chrono::system_clock::time_point wall;
  };
  using Snapshots = std::vector<std::shared_ptr<const core::UpstreamSnapshot>>;
  void WriteProcess(http::JsonWriter& json, const Now& now) const;
  void WriteReplica(http::JsonWriter& json) const;
  void WriteTotals(http::JsonWriter& json, const Snapshots& all, const Now& now);
  void WriteUpstream(http::JsonWriter& json, const core::UpstreamSnapshot& snapshot,
                     const Now& now);
  void WriteTargets(http::JsonWriter& json, const core::UpstreamSnapshot& snapshot, const Now& now);

  const core::SnapshotMap& snapshots_;
  const ProcessInfo process_;
  RateTracker rates_;
};

}  // namespace picker::status

#endif  // PICKER_SERVER_STATUS_REPORT_H_
