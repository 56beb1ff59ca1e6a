#include "server/metrics/metrics.h"

#include <limits>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/gauge.h"
#include "prometheus/metric_family.h"

namespace picker::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily NewFamily(const char* name, const char* help, MetricType type) {
  MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

ClientMetric::Label L(const char* name, std::string value) {
  return ClientMetric::Label{name, std::move(value)};
}

ClientMetric Counter(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

ClientMetric Gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

// Reads every upstream's snapshot and live counters at scrape time.
class UpstreamCollector : public prometheus::Collectable {
 public:
  UpstreamCollector(const core::Registry& registry, bool per_target)
      : registry_(registry), per_target_(per_target) {}

  std::vector<MetricFamily> Collect() const override {
    MetricFamily picks = NewFamily("picker_picks_total", "Picks by upstream, strategy and result.",
                                   MetricType::Counter);
    MetricFamily releases = NewFamily(
        "picker_releases_total",
        "Ended leases by upstream and outcome (success, failure, timeout, expired, abandoned).",
        MetricType::Counter);
    MetricFamily active = NewFamily("picker_active_requests",
                                    "Picks not yet released or expired.", MetricType::Gauge);
    MetricFamily targets = NewFamily(
        "picker_targets", "Targets by state (healthy, unhealthy, disabled for weight 0).",
        MetricType::Gauge);
    MetricFamily ejections = NewFamily("picker_ejections_total",
                                       "Passive-health ejections.", MetricType::Counter);
    MetricFamily panic_picks = NewFamily(
        "picker_panic_picks_total", "Picks made while the upstream was in panic mode.",
        MetricType::Counter);
    MetricFamily expired = NewFamily("picker_leases_expired_total",
                                     "Leases that reached their TTL unreleased.",
                                     MetricType::Counter);
    MetricFamily panic = NewFamily("picker_upstream_panic",
                                   "1 while the upstream is in panic mode.", MetricType::Gauge);
    MetricFamily rebuild = NewFamily(
        "picker_table_rebuild_duration_seconds",
        "Time the latest snapshot of the upstream took to build its ring, table or queue.",
        MetricType::Gauge);
    MetricFamily request_duration = NewFamily(
        "picker_request_duration_seconds", "Request latency reported by clients in Release.",
        MetricType::Histogram);
    MetricFamily target_active = NewFamily(
        "picker_target_active_requests", "Active requests per target (--metrics-per-target).",
        MetricType::Gauge);

    for (const auto& snapshot : registry_.List()) {
      const core::UpstreamConfig& config = snapshot->config();
      const core::UpstreamLive& live = snapshot->live();
      const std::string& name = config.name;
      const char* strategy = core::StrategyName(config.load_balancer.kind);
      for (size_t i = 0; i < core::kPickResultCount; ++i) {
        picks.metric.push_back(
            Counter({L("upstream", name), L("strategy", strategy),
                     L("result", core::PickResultName(static_cast<core::PickResult>(i)))},
                    live.counters.picks[i].load(std::memory_order_relaxed)));
      }
      for (size_t i = 0; i < core::kReleaseOutcomeCount; ++i) {
        releases.metric.push_back(Counter(
            {L("upstream", name),
             L("outcome", core::ReleaseOutcomeName(static_cast<core::ReleaseOutcome>(i)))},
            live.counters.releases[i].load(std::memory_order_relaxed)));
      }
      active.metric.push_back(
          Gauge({L("upstream", name)}, live.active_requests.load(std::memory_order_relaxed)));
      uint32_t healthy = 0, unhealthy = 0, disabled = 0;
      for (const core::SnapshotTarget& t : snapshot->targets()) {
        if (t.config.weight == 0) {
          ++disabled;
        } else if (t.healthy) {
          ++healthy;
        } else {
          ++unhealthy;
        }
        if (per_target_) {
          target_active.metric.push_back(
              Gauge({L("upstream", name), L("target", t.config.address)},
                    t.live->active_requests.load(std::memory_order_relaxed)));
        }
      }
      targets.metric.push_back(Gauge({L("upstream", name), L("state", "healthy")}, healthy));
      targets.metric.push_back(Gauge({L("upstream", name), L("state", "unhealthy")}, unhealthy));
      targets.metric.push_back(Gauge({L("upstream", name), L("state", "disabled")}, disabled));
      ejections.metric.push_back(Counter(
          {L("upstream", name)}, live.counters.ejections.load(std::memory_order_relaxed)));
      panic_picks.metric.push_back(Counter(
          {L("upstream", name)}, live.counters.panic_picks.load(std::memory_order_relaxed)));
      expired.metric.push_back(Counter(
          {L("upstream", name)},
          live.counters.releases[static_cast<size_t>(core::ReleaseOutcome::kExpired)].load(
              std::memory_order_relaxed)));
      panic.metric.push_back(Gauge({L("upstream", name)}, snapshot->panic() ? 1 : 0));
      rebuild.metric.push_back(
          Gauge({L("upstream", name), L("strategy", strategy)},
                std::chrono::duration<double>(snapshot->build_duration()).count()));

      ClientMetric histogram;
      histogram.label = {L("upstream", name)};
      const core::DurationHistogram& h = live.counters.request_duration;
      uint64_t cumulative = 0;
      for (size_t i = 0; i < core::DurationHistogram::kBounds.size(); ++i) {
        cumulative += h.BucketCount(i);
        histogram.histogram.bucket.push_back({cumulative, core::DurationHistogram::kBounds[i]});
      }
      cumulative += h.BucketCount(core::DurationHistogram::kBounds.size());
      histogram.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
      histogram.histogram.sample_count = cumulative;
      histogram.histogram.sample_sum = h.SumSeconds();
      request_duration.metric.push_back(std::move(histogram));
    }
    std::vector<MetricFamily> out = {picks,       releases, active, targets, ejections,
                                     panic_picks, expired,  panic,  rebuild, request_duration};
    if (per_target_) out.push_back(std::move(target_active));
    return out;
  }

 private:
  const core::Registry& registry_;
  const bool per_target_;
};

}  // namespace

Metrics::Metrics(const core::Registry& registry, bool per_target, const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  // Buckets from 1us to 10ms: a pick is an in-memory operation.
  pick_duration_ = &prometheus::BuildHistogram()
                        .Name("picker_pick_duration_seconds")
                        .Help("Time picker spends answering a Pick, excluding the transport.")
                        .Register(*registry_)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                                     1e-3, 2.5e-3, 1e-2});
  unknown_upstream_picks_ = &prometheus::BuildCounter()
                                 .Name("picker_unknown_upstream_picks_total")
                                 .Help("Picks that named an upstream that does not exist.")
                                 .Register(*registry_)
                                 .Add({});
  admin_operations_ = &prometheus::BuildCounter()
                           .Name("picker_admin_operations_total")
                           .Help("Admin RPCs by method and gRPC status code.")
                           .Register(*registry_);
  prometheus::BuildGauge()
      .Name("picker_build_info")
      .Help("Build information; always 1.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  upstreams_ = std::make_shared<UpstreamCollector>(registry, per_target);
}

void Metrics::CountAdminOperation(const std::string& method, const std::string& code) {
  admin_operations_->Add({{"method", method}, {"code", code}}).Increment();
}

}  // namespace picker::metrics
