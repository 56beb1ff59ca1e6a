#include "server/metrics/metrics.h"

#include <atomic>
#include <chrono>
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

// A histogram read from a core histogram (DurationHistogram,
// PerThreadDurationHistogram or ValueHistogram).
template <typename H>
ClientMetric Histogram(std::vector<ClientMetric::Label> labels, const H& h, double sum) {
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
  m.histogram.sample_sum = sum;
  return m;
}

// The families the collector fills, in the order they are exposed.
struct Families {
  MetricFamily picks = NewFamily("picker_picks_total", "Picks by upstream, strategy and result.",
                                 MetricType::Counter);
  MetricFamily releases = NewFamily(
      "picker_releases_total",
      "Ended leases by upstream and outcome (success, failure, timeout, expired, abandoned).",
      MetricType::Counter);
  MetricFamily active =
      NewFamily("picker_active_requests", "Picks not yet released or expired.", MetricType::Gauge);
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
  MetricFamily panic = NewFamily("picker_upstream_panic", "1 while the upstream is in panic mode.",
                                 MetricType::Gauge);
  MetricFamily rebuild =
      NewFamily("picker_table_rebuild_duration_seconds",
                "Time the latest snapshot of the upstream took to build its ring, table or queue.",
                MetricType::Gauge);
  MetricFamily request_duration =
      NewFamily("picker_request_duration_seconds",
                "Request latency reported by clients in Release.", MetricType::Histogram);
  MetricFamily pick_duration = NewFamily(
      "picker_pick_duration_seconds",
      "Time picker spends answering a Pick, excluding the transport.", MetricType::Histogram);
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
  MetricFamily commit_duration = NewFamily(
      "picker_store_commit_duration_seconds",
      "Time the store took to make one batch of admin writes durable.", MetricType::Histogram);
  MetricFamily commit_writes =
      NewFamily("picker_store_commit_writes",
                "Admin writes answered by one store commit (group commit).", MetricType::Histogram);
  MetricFamily target_active =
      NewFamily("picker_target_active_requests",
                "Active requests per target (--metrics-per-target).", MetricType::Gauge);
};

uint64_t Load(const std::atomic<uint64_t>& value) { return value.load(std::memory_order_relaxed); }

// Picks, releases and leases of one upstream.
void AddTraffic(Families& f, const core::UpstreamSnapshot& snapshot) {
  const std::string& name = snapshot.config().name;
  const char* strategy = core::StrategyName(snapshot.config().load_balancer.kind);
  const core::UpstreamLive& live = snapshot.live();
  for (size_t i = 0; i < core::kPickResultCount; ++i) {
    f.picks.metric.push_back(
        Counter({L("upstream", name), L("strategy", strategy),
                 L("result", core::PickResultName(static_cast<core::PickResult>(i)))},
                Load(live.counters.picks[i])));
  }
  for (size_t i = 0; i < core::kReleaseOutcomeCount; ++i) {
    f.releases.metric.push_back(
        Counter({L("upstream", name),
                 L("outcome", core::ReleaseOutcomeName(static_cast<core::ReleaseOutcome>(i)))},
                Load(live.counters.releases[i])));
  }
  f.active.metric.push_back(Gauge({L("upstream", name)}, Load(live.active_requests)));
  f.panic_picks.metric.push_back(Counter({L("upstream", name)}, Load(live.counters.panic_picks)));
  f.expired.metric.push_back(
      Counter({L("upstream", name)},
              Load(live.counters.releases[static_cast<size_t>(core::ReleaseOutcome::kExpired)])));
  const core::DurationHistogram& latency = live.counters.request_duration;
  f.request_duration.metric.push_back(
      Histogram({L("upstream", name)}, latency, latency.SumSeconds()));
}

// Health, panic and the build of one upstream's snapshot.
void AddHealth(Families& f, const core::UpstreamSnapshot& snapshot, bool per_target) {
  const std::string& name = snapshot.config().name;
  uint32_t healthy = 0, unhealthy = 0, disabled = 0;
  for (const core::SnapshotTarget& t : snapshot.targets()) {
    if (t.config.weight == 0) {
      ++disabled;
    } else if (t.healthy) {
      ++healthy;
    } else {
      ++unhealthy;
    }
    if (per_target) {
      f.target_active.metric.push_back(Gauge({L("upstream", name), L("target", t.config.address)},
                                             Load(t.live->active_requests)));
    }
  }
  f.targets.metric.push_back(Gauge({L("upstream", name), L("state", "healthy")}, healthy));
  f.targets.metric.push_back(Gauge({L("upstream", name), L("state", "unhealthy")}, unhealthy));
  f.targets.metric.push_back(Gauge({L("upstream", name), L("state", "disabled")}, disabled));
  f.ejections.metric.push_back(
      Counter({L("upstream", name)}, Load(snapshot.live().counters.ejections)));
  f.panic.metric.push_back(Gauge({L("upstream", name)}, snapshot.panic() ? 1 : 0));
  f.rebuild.metric.push_back(
      Gauge({L("upstream", name),
             L("strategy", core::StrategyName(snapshot.config().load_balancer.kind))},
            std::chrono::duration<double>(snapshot.build_duration()).count()));
}

// The active checks of an upstream that has them on.
void AddChecks(Families& f, const core::UpstreamSnapshot& snapshot) {
  if (snapshot.config().active.interval.count() <= 0) return;
  const std::string& name = snapshot.config().name;
  const core::UpstreamCounters& c = snapshot.live().counters;
  for (size_t i = 0; i < core::kCheckResultCount; ++i) {
    f.checks.metric.push_back(
        Counter({L("upstream", name),
                 L("result", core::CheckResultName(static_cast<core::CheckResult>(i)))},
                Load(c.checks[i])));
  }
  f.check_transitions.metric.push_back(
      Counter({L("upstream", name), L("to", "healthy")}, Load(c.checks_turned_healthy)));
  f.check_transitions.metric.push_back(
      Counter({L("upstream", name), L("to", "unhealthy")}, Load(c.checks_turned_unhealthy)));
  uint32_t held = 0;
  for (const core::SnapshotTarget& t : snapshot.targets()) {
    if (t.live->active_unhealthy.load(std::memory_order_relaxed)) ++held;
  }
  f.check_unhealthy.metric.push_back(Gauge({L("upstream", name)}, held));
}

// How many replicas there are, what this one owns and forwards, and how it
// is doing with etcd.
std::vector<MetricFamily> ReplicaFamilies(const core::Replicas& replicas,
                                          const core::SnapshotMap& snapshots) {
  MetricFamily members =
      NewFamily("picker_replicas", "Live replicas this replica sees.", MetricType::Gauge);
  MetricFamily owned = NewFamily("picker_owned_upstreams",
                                 "Upstreams whose picks this replica serves.", MetricType::Gauge);
  MetricFamily forwarded =
      NewFamily("picker_forwarded_total", "Calls sent to the replica that serves them, by method.",
                MetricType::Counter);
  members.metric.push_back(Gauge({}, static_cast<double>(replicas.Members().size())));
  uint64_t mine = 0;
  for (const auto& snapshot : snapshots.List()) {
    if (!replicas.OwnerOf(snapshot->config().name)) ++mine;
  }
  owned.metric.push_back(Gauge({}, static_cast<double>(mine)));
  for (size_t i = 0; i < core::kForwardedCount; ++i) {
    forwarded.metric.push_back(
        Counter({L("method", core::ForwardedName(static_cast<core::Forwarded>(i)))},
                Load(replicas.stats().forwarded[i])));
  }
  std::vector<MetricFamily> out = {members, owned, forwarded};
  if (!replicas.shared()) return out;
  MetricFamily requests =
      NewFamily("picker_etcd_requests_total", "Requests to etcd by operation and gRPC code.",
                MetricType::Counter);
  for (const auto& [key, count] : replicas.stats().Requests()) {
    requests.metric.push_back(Counter({L("op", key.first), L("code", key.second)}, count));
  }
  MetricFamily lag =
      NewFamily("picker_etcd_watch_revision_lag",
                "Revisions of etcd this replica's configuration watch has not caught up with.",
                MetricType::Gauge);
  lag.metric.push_back(Gauge({}, static_cast<double>(replicas.revision_lag())));
  MetricFamily confirmed =
      NewFamily("picker_ownership_confirmed",
                "1 while this replica keeps its membership alive in etcd; 0 while its ownership is "
                "unconfirmed (etcd out of reach).",
                MetricType::Gauge);
  confirmed.metric.push_back(Gauge({}, replicas.confirmed() ? 1 : 0));
  out.push_back(std::move(requests));
  out.push_back(std::move(lag));
  out.push_back(std::move(confirmed));
  return out;
}

// The guards' and the store's figures (core::ProcessStats).
std::vector<MetricFamily> ProcessFamilies(const core::ProcessStats& p) {
  auto load = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  MetricFamily refusals =
      NewFamily("picker_overload_refusals_total",
                "Calls the overload manager refused while memory was above --max-memory, by what.",
                MetricType::Counter);
  refusals.metric.push_back(Counter({L("what", "pick")}, load(p.overload_refused_picks)));
  refusals.metric.push_back(Counter({L("what", "admin_write")}, load(p.overload_refused_writes)));
  MetricFamily overloaded =
      NewFamily("picker_overloaded", "1 while the overload manager refuses picks and writes.",
                MetricType::Gauge);
  overloaded.metric.push_back(Gauge({}, p.overloaded.load(std::memory_order_relaxed) ? 1 : 0));
  MetricFamily memory = NewFamily(
      "picker_memory_allocated_bytes",
      "The allocator's bytes in use (mallinfo2) at the overload manager's last sample; 0 while "
      "--max-memory is off.",
      MetricType::Gauge);
  memory.metric.push_back(Gauge({}, load(p.memory_in_use)));
  MetricFamily connections = NewFamily(
      "picker_connections", "Connections open on a plaintext gRPC listener.", MetricType::Gauge);
  MetricFamily refused =
      NewFamily("picker_connections_refused_total",
                "Connections closed at once at --max-connections.", MetricType::Counter);
  MetricFamily failures = NewFamily(
      "picker_accept_failures_total",
      "Accepts that failed for want of descriptors or memory; the listener accepts again.",
      MetricType::Counter);
  for (size_t i = 0; i < core::kListenerCount; ++i) {
    const char* name = i == static_cast<size_t>(core::Listener::kData) ? "data" : "admin";
    connections.metric.push_back(Gauge({L("listener", name)}, load(p.connections[i])));
    refused.metric.push_back(Counter({L("listener", name)}, load(p.connections_refused[i])));
    failures.metric.push_back(Counter({L("listener", name)}, load(p.accept_failures[i])));
  }
  MetricFamily damaged = NewFamily(
      "picker_store_damaged_records_total",
      "Record files that did not verify at start; the upstream's older whole record was loaded.",
      MetricType::Counter);
  damaged.metric.push_back(Counter({}, load(p.store_damaged_records)));
  return {refusals, overloaded, memory, connections, refused, failures, damaged};
}

// Reads every published upstream, the pick latency histogram and the
// store writer's figures at scrape time.
class Collector : public prometheus::Collectable {
 public:
  Collector(const core::SnapshotMap& snapshots, const core::WriterStats& writer,
            const core::Replicas& replicas, const core::PerThreadDurationHistogram& pick_duration,
            bool per_target, const core::ProcessStats* process)
      : snapshots_(snapshots),
        writer_(writer),
        replicas_(replicas),
        pick_duration_(pick_duration),
        per_target_(per_target),
        process_(process) {}

  std::vector<MetricFamily> Collect() const override {
    Families f;
    for (const auto& snapshot : snapshots_.List()) {
      AddTraffic(f, *snapshot);
      AddHealth(f, *snapshot, per_target_);
      AddChecks(f, *snapshot);
    }
    f.pick_duration.metric.push_back(Histogram({}, pick_duration_, pick_duration_.SumSeconds()));
    f.commit_duration.metric.push_back(
        Histogram({}, writer_.commit_duration, writer_.commit_duration.Sum()));
    f.commit_writes.metric.push_back(
        Histogram({}, writer_.commit_writes, writer_.commit_writes.Sum()));
    std::vector<MetricFamily> out = {f.picks,
                                     f.releases,
                                     f.active,
                                     f.targets,
                                     f.ejections,
                                     f.panic_picks,
                                     f.expired,
                                     f.panic,
                                     f.rebuild,
                                     f.request_duration,
                                     f.pick_duration,
                                     f.checks,
                                     f.check_transitions,
                                     f.check_unhealthy,
                                     f.commit_duration,
                                     f.commit_writes};
    if (per_target_) out.push_back(std::move(f.target_active));
    for (MetricFamily& family : ReplicaFamilies(replicas_, snapshots_)) {
      out.push_back(std::move(family));
    }
    if (process_ != nullptr) {
      for (MetricFamily& family : ProcessFamilies(*process_)) out.push_back(std::move(family));
    }
    return out;
  }

 private:
  const core::SnapshotMap& snapshots_;
  const core::WriterStats& writer_;
  const core::Replicas& replicas_;
  const core::PerThreadDurationHistogram& pick_duration_;
  const bool per_target_;
  const core::ProcessStats* process_;
};

}  // namespace

Metrics::Metrics(const core::SnapshotMap& snapshots, const core::WriterStats& writer,
                 const core::Replicas& replicas, bool per_target, const std::string& version,
                 const core::ProcessStats* process)
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
  release_errors_ = &prometheus::BuildCounter()
                         .Name("picker_release_errors_total")
                         .Help(
                             "Releases that failed (unknown upstream or lease, bad input), by "
                             "gRPC status code; a Release riding on a PickStream included.")
                         .Register(*registry_);
  prometheus::BuildGauge()
      .Name("picker_build_info")
      .Help("Build information; always 1.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  collector_ =
      std::make_shared<Collector>(snapshots, writer, replicas, pick_duration_, per_target, process);
}

void Metrics::CountAdminOperation(const std::string& method, const std::string& code) {
  admin_operations_->Add({{"method", method}, {"code", code}}).Increment();
}

void Metrics::CountReleaseError(const std::string& code) {
  release_errors_->Add({{"code", code}}).Increment();
}

}  // namespace picker::metrics
