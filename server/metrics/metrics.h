// Prometheus metrics of picker, exposed on --metrics-listen at /metrics.
//
// Per-upstream figures are read from the core's atomics when Prometheus
// scrapes (UpstreamCollector), so picks never look up a labelled series.
// Labels are bounded: upstream names (from configuration), strategies,
// results, outcomes, states; `target` only with --metrics-per-target.
// Nothing on the pick path takes a lock: the pick latency histogram is a
// core::DurationHistogram (relaxed atomics) that the collector also reads at
// scrape time.
#ifndef PICKER_SERVER_METRICS_METRICS_H_
#define PICKER_SERVER_METRICS_METRICS_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/core/registry.h"
#include "server/core/stats.h"
#include "server/health/prober.h"
#include "server/metrics/process_collector.h"

namespace picker::metrics {

class Metrics {
 public:
  // `prober`, when set, adds the active health checks' counts; both it and
  // `registry` must outlive the metrics.
  Metrics(const core::Registry& registry, const health::Prober* prober, bool per_target,
          const std::string& version);

  // What the exposer serves: the prometheus-cpp registry of the metrics
  // kept here, the collector that reads upstreams at scrape time, and the
  // process_* series.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables() const {
    return {registry_, collector_, process_};
  }

  // Pick latency inside picker (from request to answer), all upstreams.
  core::DurationHistogram& pick_duration() { return pick_duration_; }
  // Picks naming an upstream that does not exist (not labelled by the
  // client-supplied name, which is unbounded).
  prometheus::Counter& unknown_upstream_picks() { return *unknown_upstream_picks_; }
  // Admin RPCs by method and gRPC status code name.
  void CountAdminOperation(const std::string& method, const std::string& code);
  // One group commit of the admin writer: how long the store took to make
  // it durable, and how many admin writes it answered.
  void ObserveStoreCommit(std::chrono::nanoseconds duration, size_t writes);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  core::DurationHistogram pick_duration_{core::kPickDurationBounds};
  std::shared_ptr<prometheus::Collectable> collector_;
  std::shared_ptr<prometheus::Collectable> process_ = std::make_shared<ProcessCollector>();
  prometheus::Counter* unknown_upstream_picks_;
  prometheus::Family<prometheus::Counter>* admin_operations_;
  prometheus::Histogram* store_commit_duration_;
  prometheus::Histogram* store_commit_writes_;
};

}  // namespace picker::metrics

#endif  // PICKER_SERVER_METRICS_METRICS_H_
