// Prometheus metrics of picker, exposed on --metrics-listen at /metrics.
//
// Per-upstream figures are read from the core's atomics when Prometheus
// scrapes (the published snapshots and their live counters), so picks never
// look up a labelled series. Labels are bounded: upstream names (from
// configuration), strategies, results, outcomes, states; `target` only with
// --metrics-per-target. Nothing on the pick path takes a lock: the pick
// latency histogram is a core::PerThreadDurationHistogram (a shard per
// thread) that the collector adds up at scrape time.
//
//   Metrics metrics(snapshots, writer_stats, /*per_target=*/false, "0.1.0");
//   metrics.pick_duration().Observe(elapsed);       // on the pick path
//   ScrapeHandler scrape(metrics);                   // GET /metrics (scrape.h)
//
// Folder: server/metrics owns the metric names and the /metrics handler.
// It reads core/ and serves through http/.
#ifndef PICKER_SERVER_METRICS_METRICS_H_
#define PICKER_SERVER_METRICS_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#include "server/core/replicas.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/metrics/process_collector.h"

namespace picker::metrics {

class Metrics {
 public:
  // `snapshots`, `writer`, `replicas` and `process` (the guards' and
  // store's figures; may be null) must outlive the metrics.
  Metrics(const core::SnapshotMap& snapshots, const core::WriterStats& writer,
          const core::Replicas& replicas, bool per_target, const std::string& version,
          const core::ProcessStats* process = nullptr);

  // What the exposer serves: the prometheus-cpp registry of the metrics
  // kept here, the collector that reads upstreams at scrape time, and the
  // process_* series.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const {
    return {registry_, collector_, process_};
  }

  // Pick latency inside picker (from request to answer), all upstreams.
  core::PerThreadDurationHistogram& pick_duration() { return pick_duration_; }
  // Picks naming an upstream that does not exist (not labelled by the
  // client-supplied name, which is unbounded).
  prometheus::Counter& unknown_upstream_picks() { return *unknown_upstream_picks_; }
  // Admin RPCs by method and gRPC status code name.
  void CountAdminOperation(const std::string& method, const std::string& code);
  // A Release (unary, or riding on a PickStream) that failed, by gRPC code.
  void CountReleaseError(const std::string& code);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  core::PerThreadDurationHistogram pick_duration_{core::kPickDurationBounds};
  std::shared_ptr<prometheus::Collectable> collector_;
  std::shared_ptr<prometheus::Collectable> process_ = std::make_shared<ProcessCollector>();
  prometheus::Counter* unknown_upstream_picks_;
  prometheus::Family<prometheus::Counter>* admin_operations_;
  prometheus::Family<prometheus::Counter>* release_errors_;
};

}  // namespace picker::metrics

#endif  // PICKER_SERVER_METRICS_METRICS_H_
