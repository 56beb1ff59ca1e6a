#include "server/api/convert.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace picker::api {
namespace {

using core::Millis;

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// A Duration field in whole milliseconds (0 when unset: the core reads a 0
// as "the default" where one exists, see ReplaceZerosWithDefaults).
absl::StatusOr<Millis> ToMillis(const google::protobuf::Duration& d, absl::string_view field) {
  absl::StatusOr<std::chrono::nanoseconds> value = DurationFromProto(d, field);
  if (!value.ok()) return value.status();
  // Not rounded to 0, which would read as "the default".
  if (*value > std::chrono::nanoseconds(0) && *value < Millis(1)) {
    return Invalid(field, "must be 0 or at least 1ms");
  }
  return std::chrono::duration_cast<Millis>(*value);
}

void SetDuration(Millis value, google::protobuf::Duration* out) {
  out->set_seconds(value.count() / 1000);
  out->set_nanos(static_cast<int32_t>(value.count() % 1000) * 1000000);
}

absl::StatusOr<std::vector<core::HashPolicy>> HashPoliciesFromProto(
    const google::protobuf::RepeatedPtrField<v1::HashPolicy>& policies, absl::string_view field) {
  std::vector<core::HashPolicy> out;
  out.reserve(policies.size());
  for (int i = 0; i < policies.size(); ++i) {
    const v1::HashPolicy& p = policies[i];
    const std::string path = absl::StrCat(field, "[", i, "]");
    core::HashPolicy& policy = out.emplace_back();
    policy.terminal = p.terminal();
    switch (p.type_case()) {
      case v1::HashPolicy::kHeader:
        policy.kind = core::HashPolicy::Kind::kHeader;
        policy.name = absl::AsciiStrToLower(p.header().name());
        break;
      case v1::HashPolicy::kCookie: {
        policy.kind = core::HashPolicy::Kind::kCookie;
        policy.name = p.cookie().name();
        if (p.cookie().has_ttl()) {
          absl::StatusOr<Millis> ttl =
              ToMillis(p.cookie().ttl(), absl::StrCat(path, ".cookie.ttl"));
          if (!ttl.ok()) return ttl.status();
          policy.cookie_ttl = *ttl;
        }
        policy.cookie_path = p.cookie().path();
        break;
      }
      case v1::HashPolicy::kConnection:
        if (!p.connection().source_ip()) {
          return Invalid(absl::StrCat(path, ".connection.source_ip"), "must be true");
        }
        policy.kind = core::HashPolicy::Kind::kSourceIp;
        break;
      case v1::HashPolicy::kQueryParameter:
        policy.kind = core::HashPolicy::Kind::kQueryParameter;
        policy.name = p.query_parameter().name();
        break;
      case v1::HashPolicy::kFilterState:
        policy.kind = core::HashPolicy::Kind::kFilterState;
        policy.name = p.filter_state().key();
        break;
      case v1::HashPolicy::TYPE_NOT_SET:
        return Invalid(path,
                       "one of header, cookie, connection, query_parameter or "
                       "filter_state is required");
    }
  }
  return out;
}

void HashPoliciesToProto(const std::vector<core::HashPolicy>& policies,
                         google::protobuf::RepeatedPtrField<v1::HashPolicy>* out) {
  for (const core::HashPolicy& policy : policies) {
    v1::HashPolicy* p = out->Add();
    p->set_terminal(policy.terminal);
    switch (policy.kind) {
      case core::HashPolicy::Kind::kHeader:
        p->mutable_header()->set_name(policy.name);
        break;
      case core::HashPolicy::Kind::kCookie:
        p->mutable_cookie()->set_name(policy.name);
        if (policy.cookie_ttl) SetDuration(*policy.cookie_ttl, p->mutable_cookie()->mutable_ttl());
        p->mutable_cookie()->set_path(policy.cookie_path);
        break;
      case core::HashPolicy::Kind::kSourceIp:
        p->mutable_connection()->set_source_ip(true);
        break;
      case core::HashPolicy::Kind::kQueryParameter:
        p->mutable_query_parameter()->set_name(policy.name);
        break;
      case core::HashPolicy::Kind::kFilterState:
        p->mutable_filter_state()->set_key(policy.name);
        break;
    }
  }
}

absl::Status SlowStartFromProto(const v1::SlowStartConfig& in, const std::string& field,
                                core::SlowStartConfig& out) {
  absl::StatusOr<Millis> window = ToMillis(in.slow_start_window(), field + ".slow_start_window");
  if (!window.ok()) return window.status();
  out.window = *window;
  out.aggression = in.aggression();
  out.min_weight_percent = in.min_weight_percent();
  return absl::OkStatus();
}

// Called only when slow start is on: answers about upstreams without it
// stay as they were before slow start existed.
void SlowStartToProto(const core::SlowStartConfig& in, v1::SlowStartConfig* out) {
  SetDuration(in.window, out->mutable_slow_start_window());
  out->set_aggression(in.aggression);
  out->set_min_weight_percent(in.min_weight_percent);
}

absl::Status PeakEwmaFromProto(const v1::PeakEwma& in, const std::string& field,
                               core::LoadBalancerConfig& out) {
  out.choice_count = in.choice_count();
  absl::StatusOr<Millis> decay = ToMillis(in.decay_time(), field + ".decay_time");
  if (!decay.ok()) return decay.status();
  out.decay_time = *decay;
  absl::StatusOr<Millis> penalty = ToMillis(in.failure_penalty(), field + ".failure_penalty");
  if (!penalty.ok()) return penalty.status();
  out.failure_penalty = *penalty;
  return absl::OkStatus();
}

absl::Status WeightedRoundRobinFromProto(const v1::WeightedRoundRobin& in, const std::string& field,
                                         core::LoadBalancerConfig& out) {
  // Unlike the other durations, an explicit 0s blackout means none (A58).
  if (in.has_blackout_period()) {
    absl::StatusOr<Millis> blackout = ToMillis(in.blackout_period(), field + ".blackout_period");
    if (!blackout.ok()) return blackout.status();
    out.blackout_period = *blackout;
  }
  absl::StatusOr<Millis> expiration =
      ToMillis(in.weight_expiration_period(), field + ".weight_expiration_period");
  if (!expiration.ok()) return expiration.status();
  out.weight_expiration_period = *expiration;
  absl::StatusOr<Millis> update =
      ToMillis(in.weight_update_period(), field + ".weight_update_period");
  if (!update.ok()) return update.status();
  out.weight_update_period = *update;
  if (in.has_error_utilization_penalty()) {
    out.error_utilization_penalty = in.error_utilization_penalty();
  }
  return absl::OkStatus();
}

// `field` names `lb` in errors.
absl::Status LoadBalancerFromProto(const v1::LoadBalancer& lb, const std::string& field,
                                   core::LoadBalancerConfig& out) {
  switch (lb.type_case()) {
    case v1::LoadBalancer::TYPE_NOT_SET:
      out.kind = core::StrategyKind::kRoundRobin;
      return absl::OkStatus();
    case v1::LoadBalancer::kRoundRobin:
      out.kind = core::StrategyKind::kRoundRobin;
      return SlowStartFromProto(lb.round_robin().slow_start_config(),
                                field + ".round_robin.slow_start_config", out.slow_start);
    case v1::LoadBalancer::kRandom:
      out.kind = core::StrategyKind::kRandom;
      return absl::OkStatus();
    case v1::LoadBalancer::kLeastRequest: {
      out.kind = core::StrategyKind::kLeastRequest;
      const v1::LeastRequest& lr = lb.least_request();
      out.choice_count = lr.choice_count();
      out.active_request_bias = lr.has_active_request_bias() ? lr.active_request_bias() : 1.0;
      return SlowStartFromProto(lr.slow_start_config(), field + ".least_request.slow_start_config",
                                out.slow_start);
    }
    case v1::LoadBalancer::kPeakEwma:
      out.kind = core::StrategyKind::kPeakEwma;
      return PeakEwmaFromProto(lb.peak_ewma(), field + ".peak_ewma", out);
    case v1::LoadBalancer::kWeightedRoundRobin:
      out.kind = core::StrategyKind::kWeightedRoundRobin;
      return WeightedRoundRobinFromProto(lb.weighted_round_robin(), field + ".weighted_round_robin",
                                         out);
    case v1::LoadBalancer::kRingHash: {
      out.kind = core::StrategyKind::kRingHash;
      const v1::RingHash& rh = lb.ring_hash();
      switch (rh.hash_function()) {
        case v1::HASH_FUNCTION_UNSPECIFIED:
        case v1::XX_HASH:
          out.hash_function = core::HashFunction::kXxHash;
          break;
        case v1::MURMUR_HASH_2:
          out.hash_function = core::HashFunction::kMurmurHash2;
          break;
        default:
          return Invalid(field + ".ring_hash.hash_function",
                         absl::StrCat("unknown value ", static_cast<int>(rh.hash_function()),
                                      " (XX_HASH or MURMUR_HASH_2)"));
      }
      out.min_ring_size = rh.min_ring_size();
      out.max_ring_size = rh.max_ring_size();
      if (rh.has_hash_balance_factor()) out.hash_balance_factor = rh.hash_balance_factor();
      absl::StatusOr<std::vector<core::HashPolicy>> policies =
          HashPoliciesFromProto(rh.hash_policies(), field + ".ring_hash.hash_policies");
      if (!policies.ok()) return policies.status();
      out.hash_policies = *std::move(policies);
      return absl::OkStatus();
    }
    case v1::LoadBalancer::kMaglev: {
      out.kind = core::StrategyKind::kMaglev;
      const v1::Maglev& m = lb.maglev();
      out.table_size = m.table_size();
      if (m.has_hash_balance_factor()) out.hash_balance_factor = m.hash_balance_factor();
      absl::StatusOr<std::vector<core::HashPolicy>> policies =
          HashPoliciesFromProto(m.hash_policies(), field + ".maglev.hash_policies");
      if (!policies.ok()) return policies.status();
      out.hash_policies = *std::move(policies);
      return absl::OkStatus();
    }
  }
  return Invalid(field, "unknown strategy");
}

absl::Status ClientConfigsFromProto(const v1::Upstream& u, std::vector<core::ClientConfig>& out) {
  // Bounded before anything is converted; core::ValidateUpstreamConfig
  // checks the rest.
  if (u.client_configs_size() > static_cast<int>(core::kMaxClientConfigs)) {
    return Invalid("upstream.client_configs",
                   absl::StrCat("at most ", core::kMaxClientConfigs, " entries, got ",
                                u.client_configs_size()));
  }
  for (int i = 0; i < u.client_configs_size(); ++i) {
    const v1::ClientConfig& in = u.client_configs(i);
    const std::string field = absl::StrCat("upstream.client_configs[", i, "]");
    if (in.client().tags_size() > 100) {
      return Invalid(field + ".client.tags", "at most 100 tags");
    }
    core::ClientConfig& c = out.emplace_back();
    c.client.service = in.client().service();
    c.client.tags.assign(in.client().tags().begin(), in.client().tags().end());
    std::sort(c.client.tags.begin(), c.client.tags.end());
    if (absl::Status s =
            LoadBalancerFromProto(in.load_balancer(), field + ".load_balancer", c.load_balancer);
        !s.ok()) {
      return s;
    }
    c.locality_aware = !in.locality_awareness().disabled();
  }
  return absl::OkStatus();
}

absl::Status PassiveFromProto(const v1::HealthChecks::Passive& p, core::PassiveHealthConfig& out) {
  const std::string field = "upstream.health_checks.passive";
  if (p.has_consecutive_failures()) out.consecutive_failures = p.consecutive_failures();
  absl::StatusOr<Millis> base = ToMillis(p.base_ejection_time(), field + ".base_ejection_time");
  if (!base.ok()) return base.status();
  out.base_ejection_time = *base;
  absl::StatusOr<Millis> max = ToMillis(p.max_ejection_time(), field + ".max_ejection_time");
  if (!max.ok()) return max.status();
  out.max_ejection_time = *max;
  if (p.has_max_ejection_percent()) out.max_ejection_percent = p.max_ejection_percent();
  return absl::OkStatus();
}

absl::Status ActiveFromProto(const v1::HealthChecks::Active& a, core::ActiveHealthConfig& out) {
  const std::string field = "upstream.health_checks.active";
  switch (a.type()) {
    case v1::HealthChecks::Active::TYPE_UNSPECIFIED:
    case v1::HealthChecks::Active::HTTP:
      out.type = core::ActiveHealthConfig::Type::kHttp;
      break;
    case v1::HealthChecks::Active::TCP:
      out.type = core::ActiveHealthConfig::Type::kTcp;
      break;
    case v1::HealthChecks::Active::GRPC:
      out.type = core::ActiveHealthConfig::Type::kGrpc;
      break;
    default:
      return Invalid(field + ".type", absl::StrCat("unknown value ", static_cast<int>(a.type()),
                                                   " (HTTP, TCP or GRPC)"));
  }
  out.http_path = a.http_path();
  out.healthy_http_statuses.assign(a.healthy_http_statuses().begin(),
                                   a.healthy_http_statuses().end());
  absl::StatusOr<Millis> interval = ToMillis(a.interval(), field + ".interval");
  if (!interval.ok()) return interval.status();
  out.interval = *interval;
  absl::StatusOr<Millis> timeout = ToMillis(a.timeout(), field + ".timeout");
  if (!timeout.ok()) return timeout.status();
  out.timeout = *timeout;
  out.healthy_successes = a.healthy_successes();
  out.unhealthy_failures = a.unhealthy_failures();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::chrono::nanoseconds> DurationFromProto(const google::protobuf::Duration& d,
                                                           absl::string_view field) {
  if (d.seconds() < 0 || d.nanos() < 0) return Invalid(field, "must not be negative");
  // google.protobuf.Duration keeps nanos below one second; a larger value is
  // not a duration (and 2e9 nanos would silently mean 2 s).
  if (d.nanos() > 999999999) return Invalid(field, "nanos must be 0..999999999");
  // Bounded so that the conversion to nanoseconds cannot overflow.
  if (d.seconds() > kMaxDurationSeconds) return Invalid(field, "must be at most one year");
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

absl::StatusOr<core::UpstreamConfig> FromProto(const v1::Upstream& u) {
  core::UpstreamConfig c;
  c.name = u.name();
  if (absl::Status s =
          LoadBalancerFromProto(u.load_balancer(), "upstream.load_balancer", c.load_balancer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ClientConfigsFromProto(u, c.client_configs); !s.ok()) return s;
  c.tags.assign(u.tags().begin(), u.tags().end());
  c.locality_aware = !u.locality_awareness().disabled();
  if (u.has_panic_threshold_percent()) c.panic_threshold_percent = u.panic_threshold_percent();
  absl::StatusOr<Millis> ttl = ToMillis(u.lease_ttl(), "upstream.lease_ttl");
  if (!ttl.ok()) return ttl.status();
  c.lease_ttl = *ttl;
  c.max_active_requests_per_target = u.max_active_requests_per_target();
  c.max_active_requests = u.max_active_requests();
  if (absl::Status s = PassiveFromProto(u.health_checks().passive(), c.passive); !s.ok()) return s;
  if (absl::Status s = ActiveFromProto(u.health_checks().active(), c.active); !s.ok()) return s;
  // A field left out of a request reads as 0, which means its default.
  core::ReplaceZerosWithDefaults(c);
  return c;
}

namespace {

void LoadBalancerToProto(const core::LoadBalancerConfig& lb, v1::LoadBalancer* out) {
  switch (lb.kind) {
    case core::StrategyKind::kRoundRobin:
      out->mutable_round_robin();
      if (lb.slow_start.enabled()) {
        SlowStartToProto(lb.slow_start, out->mutable_round_robin()->mutable_slow_start_config());
      }
      break;
    case core::StrategyKind::kRandom:
      out->mutable_random();
      break;
    case core::StrategyKind::kLeastRequest:
      out->mutable_least_request()->set_choice_count(lb.choice_count);
      out->mutable_least_request()->set_active_request_bias(lb.active_request_bias);
      if (lb.slow_start.enabled()) {
        SlowStartToProto(lb.slow_start, out->mutable_least_request()->mutable_slow_start_config());
      }
      break;
    case core::StrategyKind::kPeakEwma: {
      v1::PeakEwma* p = out->mutable_peak_ewma();
      p->set_choice_count(lb.choice_count);
      SetDuration(lb.decay_time, p->mutable_decay_time());
      SetDuration(lb.failure_penalty, p->mutable_failure_penalty());
      break;
    }
    case core::StrategyKind::kWeightedRoundRobin: {
      v1::WeightedRoundRobin* w = out->mutable_weighted_round_robin();
      SetDuration(lb.blackout_period, w->mutable_blackout_period());
      SetDuration(lb.weight_expiration_period, w->mutable_weight_expiration_period());
      SetDuration(lb.weight_update_period, w->mutable_weight_update_period());
      w->set_error_utilization_penalty(lb.error_utilization_penalty);
      break;
    }
    case core::StrategyKind::kRingHash: {
      v1::RingHash* rh = out->mutable_ring_hash();
      rh->set_hash_function(lb.hash_function == core::HashFunction::kMurmurHash2 ? v1::MURMUR_HASH_2
                                                                                 : v1::XX_HASH);
      rh->set_min_ring_size(lb.min_ring_size);
      rh->set_max_ring_size(lb.max_ring_size);
      if (lb.hash_balance_factor) rh->set_hash_balance_factor(*lb.hash_balance_factor);
      HashPoliciesToProto(lb.hash_policies, rh->mutable_hash_policies());
      break;
    }
    case core::StrategyKind::kMaglev: {
      v1::Maglev* m = out->mutable_maglev();
      m->set_table_size(lb.table_size);
      if (lb.hash_balance_factor) m->set_hash_balance_factor(*lb.hash_balance_factor);
      HashPoliciesToProto(lb.hash_policies, m->mutable_hash_policies());
      break;
    }
  }
}

void HealthChecksToProto(const core::UpstreamConfig& c, v1::HealthChecks* out) {
  v1::HealthChecks::Passive* p = out->mutable_passive();
  p->set_consecutive_failures(c.passive.consecutive_failures);
  SetDuration(c.passive.base_ejection_time, p->mutable_base_ejection_time());
  SetDuration(c.passive.max_ejection_time, p->mutable_max_ejection_time());
  p->set_max_ejection_percent(c.passive.max_ejection_percent);

  v1::HealthChecks::Active* a = out->mutable_active();
  switch (c.active.type) {
    case core::ActiveHealthConfig::Type::kHttp:
      a->set_type(v1::HealthChecks::Active::HTTP);
      break;
    case core::ActiveHealthConfig::Type::kTcp:
      a->set_type(v1::HealthChecks::Active::TCP);
      break;
    case core::ActiveHealthConfig::Type::kGrpc:
      a->set_type(v1::HealthChecks::Active::GRPC);
      break;
  }
  a->set_http_path(c.active.http_path);
  for (uint32_t status : c.active.healthy_http_statuses) a->add_healthy_http_statuses(status);
  SetDuration(c.active.interval, a->mutable_interval());
  SetDuration(c.active.timeout, a->mutable_timeout());
  a->set_healthy_successes(c.active.healthy_successes);
  a->set_unhealthy_failures(c.active.unhealthy_failures);
}

}  // namespace

v1::Upstream ToProto(const core::UpstreamConfig& c) {
  v1::Upstream u;
  u.set_name(c.name);
  LoadBalancerToProto(c.load_balancer, u.mutable_load_balancer());
  u.mutable_locality_awareness()->set_disabled(!c.locality_aware);
  for (const core::ClientConfig& client : c.client_configs) {
    v1::ClientConfig* out = u.add_client_configs();
    out->mutable_client()->set_service(client.client.service);
    for (const auto& [key, value] : client.client.tags) {
      (*out->mutable_client()->mutable_tags())[key] = value;
    }
    LoadBalancerToProto(client.load_balancer, out->mutable_load_balancer());
    out->mutable_locality_awareness()->set_disabled(!client.locality_aware);
  }
  u.set_panic_threshold_percent(c.panic_threshold_percent);
  SetDuration(c.lease_ttl, u.mutable_lease_ttl());
  u.set_max_active_requests_per_target(c.max_active_requests_per_target);
  u.set_max_active_requests(c.max_active_requests);
  for (const std::string& tag : c.tags) u.add_tags(tag);

  HealthChecksToProto(c, u.mutable_health_checks());
  return u;
}

absl::StatusOr<core::TargetConfig> FromProto(const v1::Target& t, absl::string_view field) {
  core::TargetConfig c;
  c.address = t.address();
  if (t.has_weight()) {
    if (t.weight() > core::kMaxTargetWeight) {
      return Invalid(absl::StrCat(field, ".weight"),
                     absl::StrCat("must be 0..", core::kMaxTargetWeight, ", got ", t.weight()));
    }
    c.weight = t.weight();
  }
  c.zone = t.zone();
  c.hash_key = t.hash_key();
  c.tags.assign(t.tags().begin(), t.tags().end());
  return c;
}

core::TargetPatch PatchFromProto(const v1::Target& t) {
  core::TargetPatch patch;
  patch.address = t.address();
  if (t.has_weight()) patch.weight = t.weight();
  patch.zone = t.zone();
  patch.hash_key = t.hash_key();
  if (t.tags_size() > 0) patch.tags.emplace(t.tags().begin(), t.tags().end());
  return patch;
}

v1::Target ToProto(const core::TargetConfig& c) {
  v1::Target t;
  ToProto(c, &t);
  return t;
}

void ToProto(const core::TargetConfig& c, v1::Target* out) {
  out->set_address(c.address);
  out->set_weight(c.weight);
  out->set_zone(c.zone);
  out->set_hash_key(c.hash_key);
  for (const std::string& tag : c.tags) out->add_tags(tag);
}

absl::StatusOr<core::HealthOverride> FromProto(v1::SetTargetHealthRequest::Override value) {
  switch (value) {
    case v1::SetTargetHealthRequest::CLEAR:
      return core::HealthOverride::kNone;
    case v1::SetTargetHealthRequest::HEALTHY:
      return core::HealthOverride::kHealthy;
    case v1::SetTargetHealthRequest::UNHEALTHY:
      return core::HealthOverride::kUnhealthy;
    case v1::SetTargetHealthRequest::OVERRIDE_UNSPECIFIED:
      return Invalid("override", "is required: CLEAR, HEALTHY or UNHEALTHY");
    default:
      return Invalid("override", absl::StrCat("unknown value ", static_cast<int>(value),
                                              " (CLEAR, HEALTHY or UNHEALTHY)"));
  }
}

v1::SetTargetHealthRequest::Override ToProto(core::HealthOverride value) {
  switch (value) {
    case core::HealthOverride::kNone:
      return v1::SetTargetHealthRequest::CLEAR;
    case core::HealthOverride::kHealthy:
      return v1::SetTargetHealthRequest::HEALTHY;
    case core::HealthOverride::kUnhealthy:
      return v1::SetTargetHealthRequest::UNHEALTHY;
  }
  return v1::SetTargetHealthRequest::CLEAR;
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::CreateUpstreamRequest& r) {
  absl::StatusOr<core::UpstreamConfig> config = FromProto(r.upstream());
  if (!config.ok()) return config.status();
  return core::CreateUpstream{*std::move(config)};
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::UpdateUpstreamRequest& r) {
  absl::StatusOr<core::UpstreamConfig> config = FromProto(r.upstream());
  if (!config.ok()) return config.status();
  core::UpdateUpstream update{*std::move(config)};
  // The mask's paths are the Upstream message's, as core names them (JSON
  // callers write them lowerCamel; the JSON parser gives them snake_case).
  if (r.has_update_mask()) {
    update.update_mask.emplace(r.update_mask().paths().begin(), r.update_mask().paths().end());
  }
  return update;
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::DeleteUpstreamRequest& r) {
  return core::DeleteUpstream{r.name()};
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::PutTargetRequest& r) {
  return core::PutTarget{r.upstream(), PatchFromProto(r.target())};
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::DeleteTargetRequest& r) {
  return core::DeleteTarget{r.upstream(), r.address()};
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::ReplaceTargetsRequest& r) {
  core::ReplaceTargets change{r.upstream(), {}, r.allow_empty()};
  change.targets.reserve(r.targets_size());
  for (int i = 0; i < r.targets_size(); ++i) {
    absl::StatusOr<core::TargetConfig> target =
        FromProto(r.targets(i), absl::StrCat("targets[", i, "]"));
    if (!target.ok()) return target.status();
    change.targets.push_back(*std::move(target));
  }
  return change;
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::SetTargetHealthRequest& r) {
  absl::StatusOr<core::HealthOverride> health_override = FromProto(r.override());
  if (!health_override.ok()) return health_override.status();
  return core::SetTargetHealth{r.upstream(), r.address(), *health_override};
}

absl::StatusOr<core::Change> ChangeFromProto(const v1::ProposedChange& c, absl::string_view field) {
  absl::StatusOr<core::Change> change = absl::InvalidArgumentError("");
  std::string name;
  switch (c.change_case()) {
    case v1::ProposedChange::kUpdateUpstream:
      change = ChangeFromProto(c.update_upstream()), name = "update_upstream";
      break;
    case v1::ProposedChange::kPutTarget:
      change = ChangeFromProto(c.put_target()), name = "put_target";
      break;
    case v1::ProposedChange::kDeleteTarget:
      change = ChangeFromProto(c.delete_target()), name = "delete_target";
      break;
    case v1::ProposedChange::kReplaceTargets:
      change = ChangeFromProto(c.replace_targets()), name = "replace_targets";
      break;
    case v1::ProposedChange::kSetTargetHealth:
      change = ChangeFromProto(c.set_target_health()), name = "set_target_health";
      break;
    case v1::ProposedChange::CHANGE_NOT_SET:
      return Invalid(field,
                     "one of update_upstream, put_target, delete_target, replace_targets or "
                     "set_target_health is required");
  }
  if (change.ok()) return change;
  return absl::Status(change.status().code(),
                      absl::StrCat(field, ".", name, ".", change.status().message()));
}

v1::TargetHealth ToProto(const core::SnapshotTarget& t, std::optional<double> slow_start_factor) {
  v1::TargetHealth h;
  if (slow_start_factor) h.set_slow_start_factor(*slow_start_factor);
  h.set_address(t.config.address);
  h.set_healthy(t.healthy);
  if (t.reasons & core::kReasonManual) h.add_reasons(v1::TargetHealth::MANUAL);
  if (t.reasons & core::kReasonPassive) h.add_reasons(v1::TargetHealth::PASSIVE);
  if (t.reasons & core::kReasonActive) h.add_reasons(v1::TargetHealth::ACTIVE);
  if (t.reasons & core::kReasonWeightZero) h.add_reasons(v1::TargetHealth::WEIGHT_ZERO);
  h.set_active_requests(t.live->active_requests.load(std::memory_order_relaxed));
  h.set_ejections(t.live->ejections.load(std::memory_order_relaxed));
  if (t.returns_at) {
    const int64_t ms = std::chrono::duration_cast<Millis>(t.returns_at->time_since_epoch()).count();
    h.mutable_returns_at()->set_seconds(ms / 1000);
    h.mutable_returns_at()->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  }
  return h;
}

v1::UpstreamHealth HealthToProto(const core::UpstreamSnapshot& s) {
  v1::UpstreamHealth h;
  h.set_name(s.config().name);
  h.set_panic(s.panic());
  h.set_healthy_targets(s.healthy_count());
  h.set_total_targets(static_cast<uint32_t>(s.targets().size()));
  const core::WallTime now = std::chrono::system_clock::now();
  for (uint32_t i = 0; i < s.targets().size(); ++i) {
    *h.add_targets() = ToProto(s.targets()[i], s.SlowStartFactorOf(i, now));
  }
  return h;
}

}  // namespace picker::api
