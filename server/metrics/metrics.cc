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

ClientMetric Histogram(std::vector<ClientMetric::Label> labels, const core::DurationHistogram& h) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += h.BucketCount(i);
    m.histogram.bucket.push_back({cumulative, h.bounds()[i]});
  }
  cumulative += h.BucketCount(h.bounds().size());
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = h.SumSeconds();
  return m;
}

// Reads every upstream's snapshot and live counters, the pick latency
// histogram and the health checks' counts at scrape time.
class Collector : public prometheus::Collectable {
 public:
  Collector(const core::Registry& registry, const health::Prober* prober,
            const core::DurationHistogram& pick_duration, bool per_target)
      : registry_(registry),
        prober_(prober),
        pick_duration_(pick_duration),
        per_target_(per_target) {}

  std::vector<MetricFamily> Collect() const override {
    MetricFamily picks = NewFamily("picker_picks_total", "Picks by upstream, strategy and result.",
                                   MetricType::Counter);
    MetricFamily releases = NewFamily(
        "picker_releases_total",
        "Ended leases by upstream and outcome (success, failure, timeout, expired, abandoned).",
        MetricType::Counter);
    MetricFamily active = NewFamily("picker_active_requests", "Picks not yet released or expired.",
                                    MetricType::Gauge);
    MetricFamily targets =
        NewFamily("picker_targets", "Targets by state (healthy, unhealthy, disabled for weight 0).",
                  MetricType::Gauge);
    MetricFamily ejections =
        NewFamily("picker_ejections_total", "Passive-health ejections.", MetricType::Counter);
    MetricFamily panic_picks =
        NewFamily("picker_panic_picks_total", "Picks made while the upstream was in panic mode.",
                  MetricType::Counter);
    MetricFamily expired =
        NewFamily("picker_leases_expired_total", "Leases that reached their TTL unreleased.",
                  MetricType::Counter);
    MetricFamily panic = NewFamily("picker_upstream_panic",
                                   "1 while the upstream is in panic mode.", MetricType::Gauge);
    MetricFamily rebuild = NewFamily(
        "picker_table_rebuild_duration_seconds",
        "Time the latest snapshot of the upstream took to build its ring, table or queue.",
        MetricType::Gauge);
    MetricFamily request_duration =
        NewFamily("picker_request_duration_seconds",
                  "Request latency reported by clients in Release.", MetricType::Histogram);
    MetricFamily target_active =
        NewFamily("picker_target_active_requests",
                  "Active requests per target (--metrics-per-target).", MetricType::Gauge);

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
        releases.metric.push_back(
            Counter({L("upstream", name),
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
      ejections.metric.push_back(
          Counter({L("upstream", name)}, live.counters.ejections.load(std::memory_order_relaxed)));
      panic_picks.metric.push_back(Counter(
          {L("upstream", name)}, live.counters.panic_picks.load(std::memory_order_relaxed)));
      expired.metric.push_back(
          Counter({L("upstream", name)},
                  live.counters.releases[static_cast<size_t>(core::ReleaseOutcome::kExpired)].load(
                      std::memory_order_relaxed)));
      panic.metric.push_back(Gauge({L("upstream", name)}, snapshot->panic() ? 1 : 0));
      rebuild.metric.push_back(
          Gauge({L("upstream", name), L("strategy", strategy)},
                std::chrono::duration<double>(snapshot->build_duration()).count()));

      request_duration.metric.push_back(
          Histogram({L("upstream", name)}, live.counters.request_duration));
    }

    MetricFamily pick_duration = NewFamily(
        "picker_pick_duration_seconds",
        "Time picker spends answering a Pick, excluding the transport.", MetricType::Histogram);
    pick_duration.metric.push_back(Histogram({}, pick_duration_));

    MetricFamily checks =
        NewFamily("picker_health_checks_total",
                  "Active health checks by upstream and result (success, failure, timeout).",
                  MetricType::Counter);
    MetricFamily check_transitions = NewFamily(
        "picker_health_check_transitions_total",
        "Targets the active checks turned healthy or unhealthy, by upstream.", MetricType::Counter);
    MetricFamily check_unhealthy = NewFamily(
        "picker_health_check_unhealthy_targets",
        "Targets the active checks currently hold unhealthy, by upstream.", MetricType::Gauge);
    if (prober_ != nullptr) {
      for (const auto& [name, stats] : prober_->Stats()) {
        checks.metric.push_back(
            Counter({L("upstream", name), L("result", "success")}, stats.successes));
        checks.metric.push_back(
            Counter({L("upstream", name), L("result", "failure")}, stats.failures));
        checks.metric.push_back(
            Counter({L("upstream", name), L("result", "timeout")}, stats.timeouts));
        check_transitions.metric.push_back(
            Counter({L("upstream", name), L("to", "healthy")}, stats.turned_healthy));
        check_transitions.metric.push_back(
            Counter({L("upstream", name), L("to", "unhealthy")}, stats.turned_unhealthy));
        check_unhealthy.metric.push_back(Gauge({L("upstream", name)}, stats.unhealthy_targets));
      }
    }
    std::vector<MetricFamily> out = {picks,
                                     releases,
                                     active,
                                     targets,
                                     ejections,
                                     panic_picks,
                                     expired,
                                     panic,
                                     rebuild,
                                     request_duration,
                                     pick_duration,
                                     checks,
                                     check_transitions,
                                     check_unhealthy};
    if (per_target_) out.push_back(std::move(target_active));
    return out;
  }

 private:
  const core::Registry& registry_;
  const health::Prober* const prober_;
  const core::DurationHistogram& pick_duration_;
  const bool per_target_;
};

}  // namespace

Metrics::Metrics(const core::Registry& registry, const health::Prober* prober, bool per_target,
                 const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  unknown_upstream_picks_ = &prometheus::BuildCounter()
                                 .Name("picker_unknown_upstream_picks_total")
                                 .Help("Picks that named an upstream that does not exist.")
                                 .Register(*registry_)
                                 .Add({});
  admin_operations_ = &prometheus::BuildCounter()
                           .Name("picker_admin_operations_total")
                           .Help("Admin RPCs by method and gRPC status code.")
                           .Register(*registry_);
  // A commit is a sync or two: well under a millisecond on fast storage,
  // tens of milliseconds on a busy disk.
  store_commit_duration_ =
      &prometheus::BuildHistogram()
           .Name("picker_store_commit_duration_seconds")
           .Help("Time the store took to make one batch of admin writes durable.")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                                            1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1,
                                                            2.5, 10});
  store_commit_writes_ =
      &prometheus::BuildHistogram()
           .Name("picker_store_commit_writes")
           .Help("Admin writes answered by one store commit (group commit).")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64});
  prometheus::BuildGauge()
      .Name("picker_build_info")
      .Help("Build information; always 1.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  collector_ = std::make_shared<Collector>(registry, prober, pick_duration_, per_target);
}

void Metrics::CountAdminOperation(const std::string& method, const std::string& code) {
  admin_operations_->Add({{"method", method}, {"code", code}}).Increment();
}

void Metrics::ObserveStoreCommit(std::chrono::nanoseconds duration, size_t writes) {
  store_commit_duration_->Observe(std::chrono::duration<double>(duration).count());
  store_commit_writes_->Observe(static_cast<double>(writes));
}

}  // namespace picker::metrics
