#include "server/store/record_codec.h"

#include "absl/strings/str_cat.h"

namespace picker::store {
namespace {

using core::Millis;

void SetMillis(Millis value, google::protobuf::Duration* out) {
  out->set_seconds(value.count() / 1000);
  out->set_nanos(static_cast<int32_t>(value.count() % 1000) * 1000000);
}

Millis GetMillis(const google::protobuf::Duration& d) {
  return Millis(d.seconds() * 1000 + d.nanos() / 1000000);
}

void EncodePolicies(const std::vector<core::HashPolicy>& policies,
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
        if (policy.cookie_ttl) SetMillis(*policy.cookie_ttl, p->mutable_cookie()->mutable_ttl());
        p->mutable_cookie()->set_path(policy.cookie_path);
        break;
      case core::HashPolicy::Kind::kSourceIp:
        p->mutable_connection()->set_source_ip(true);
        break;
      case core::HashPolicy::Kind::kQueryParameter:
        p->mutable_query_parameter()->set_name(policy.name);
        break;
      case core::HashPolicy::Kind::kFilterState:
        p->mutable_filter_state()->set_name(policy.name);
        break;
    }
  }
}

absl::StatusOr<std::vector<core::HashPolicy>> DecodePolicies(
    const google::protobuf::RepeatedPtrField<v1::HashPolicy>& policies) {
  std::vector<core::HashPolicy> out;
  out.reserve(policies.size());
  for (const v1::HashPolicy& p : policies) {
    core::HashPolicy& policy = out.emplace_back();
    policy.terminal = p.terminal();
    switch (p.type_case()) {
      case v1::HashPolicy::kHeader:
        policy.kind = core::HashPolicy::Kind::kHeader;
        policy.name = p.header().name();
        break;
      case v1::HashPolicy::kCookie:
        policy.kind = core::HashPolicy::Kind::kCookie;
        policy.name = p.cookie().name();
        // Records before session cookies wrote no ttl for 0: no cookie.
        if (p.cookie().has_ttl()) policy.cookie_ttl = GetMillis(p.cookie().ttl());
        policy.cookie_path = p.cookie().path();
        break;
      case v1::HashPolicy::kConnection:
        policy.kind = core::HashPolicy::Kind::kSourceIp;
        break;
      case v1::HashPolicy::kQueryParameter:
        policy.kind = core::HashPolicy::Kind::kQueryParameter;
        policy.name = p.query_parameter().name();
        break;
      case v1::HashPolicy::kFilterState:
        policy.kind = core::HashPolicy::Kind::kFilterState;
        policy.name = p.filter_state().name();
        break;
      case v1::HashPolicy::TYPE_NOT_SET:
        return absl::DataLossError("a hash policy of no known type");
    }
  }
  return out;
}

void EncodeSlowStart(const core::SlowStartConfig& in, v1::SlowStart* out) {
  SetMillis(in.window, out->mutable_window());
  out->set_aggression(in.aggression);
  out->set_min_weight_percent(in.min_weight_percent);
}

// A record without slow start (0.1.0's, or written with it off) keeps the
// defaults: off, aggression 1.0, 10%.
void DecodeSlowStart(const v1::SlowStart& in, core::SlowStartConfig& out) {
  out.window = GetMillis(in.window());
  if (in.aggression() > 0) out.aggression = in.aggression();
  if (in.min_weight_percent() > 0) out.min_weight_percent = in.min_weight_percent();
}

void EncodeLoadBalancer(const core::LoadBalancerConfig& lb, v1::LoadBalancer* out) {
  switch (lb.kind) {
    case core::StrategyKind::kRoundRobin:
      EncodeSlowStart(lb.slow_start, out->mutable_round_robin()->mutable_slow_start());
      break;
    case core::StrategyKind::kRandom:
      out->mutable_random();
      break;
    case core::StrategyKind::kLeastRequest:
      out->mutable_least_request()->set_choice_count(lb.choice_count);
      out->mutable_least_request()->set_active_request_bias(lb.active_request_bias);
      EncodeSlowStart(lb.slow_start, out->mutable_least_request()->mutable_slow_start());
      break;
    case core::StrategyKind::kPeakEwma: {
      v1::PeakEwma* p = out->mutable_peak_ewma();
      p->set_choice_count(lb.choice_count);
      SetMillis(lb.decay_time, p->mutable_decay_time());
      SetMillis(lb.failure_penalty, p->mutable_failure_penalty());
      break;
    }
    case core::StrategyKind::kWeightedRoundRobin: {
      v1::WeightedRoundRobin* w = out->mutable_weighted_round_robin();
      SetMillis(lb.blackout_period, w->mutable_blackout_period());
      SetMillis(lb.weight_expiration_period, w->mutable_weight_expiration_period());
      SetMillis(lb.weight_update_period, w->mutable_weight_update_period());
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
      EncodePolicies(lb.hash_policies, rh->mutable_hash_policies());
      break;
    }
    case core::StrategyKind::kMaglev: {
      v1::Maglev* m = out->mutable_maglev();
      m->set_table_size(lb.table_size);
      if (lb.hash_balance_factor) m->set_hash_balance_factor(*lb.hash_balance_factor);
      EncodePolicies(lb.hash_policies, m->mutable_hash_policies());
      break;
    }
  }
}

absl::Status DecodeLoadBalancer(const v1::LoadBalancer& lb, core::LoadBalancerConfig& out) {
  const google::protobuf::RepeatedPtrField<v1::HashPolicy>* policies = nullptr;
  switch (lb.type_case()) {
    case v1::LoadBalancer::TYPE_NOT_SET:
      out.kind = core::StrategyKind::kRoundRobin;
      return absl::OkStatus();
    case v1::LoadBalancer::kRoundRobin:
      out.kind = core::StrategyKind::kRoundRobin;
      DecodeSlowStart(lb.round_robin().slow_start(), out.slow_start);
      return absl::OkStatus();
    case v1::LoadBalancer::kRandom:
      out.kind = core::StrategyKind::kRandom;
      return absl::OkStatus();
    case v1::LoadBalancer::kLeastRequest:
      out.kind = core::StrategyKind::kLeastRequest;
      out.choice_count = lb.least_request().choice_count();
      out.active_request_bias = lb.least_request().active_request_bias();
      DecodeSlowStart(lb.least_request().slow_start(), out.slow_start);
      return absl::OkStatus();
    case v1::LoadBalancer::kPeakEwma:
      out.kind = core::StrategyKind::kPeakEwma;
      out.choice_count = lb.peak_ewma().choice_count();
      out.decay_time = GetMillis(lb.peak_ewma().decay_time());
      out.failure_penalty = GetMillis(lb.peak_ewma().failure_penalty());
      return absl::OkStatus();
    case v1::LoadBalancer::kWeightedRoundRobin: {
      const v1::WeightedRoundRobin& w = lb.weighted_round_robin();
      out.kind = core::StrategyKind::kWeightedRoundRobin;
      out.blackout_period = GetMillis(w.blackout_period());
      out.weight_expiration_period = GetMillis(w.weight_expiration_period());
      out.weight_update_period = GetMillis(w.weight_update_period());
      out.error_utilization_penalty = w.error_utilization_penalty();
      return absl::OkStatus();
    }
    case v1::LoadBalancer::kRingHash: {
      const v1::RingHash& rh = lb.ring_hash();
      out.kind = core::StrategyKind::kRingHash;
      out.hash_function = rh.hash_function() == v1::MURMUR_HASH_2 ? core::HashFunction::kMurmurHash2
                                                                  : core::HashFunction::kXxHash;
      out.min_ring_size = rh.min_ring_size();
      out.max_ring_size = rh.max_ring_size();
      if (rh.has_hash_balance_factor()) out.hash_balance_factor = rh.hash_balance_factor();
      policies = &rh.hash_policies();
      break;
    }
    case v1::LoadBalancer::kMaglev:
      out.kind = core::StrategyKind::kMaglev;
      out.table_size = lb.maglev().table_size();
      if (lb.maglev().has_hash_balance_factor()) {
        out.hash_balance_factor = lb.maglev().hash_balance_factor();
      }
      policies = &lb.maglev().hash_policies();
      break;
  }
  if (policies == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<core::HashPolicy>> decoded = DecodePolicies(*policies);
  if (!decoded.ok()) return decoded.status();
  out.hash_policies = *std::move(decoded);
  return absl::OkStatus();
}

void EncodeHealth(const core::UpstreamConfig& c, v1::HealthChecks* out) {
  v1::Passive* p = out->mutable_passive();
  p->set_consecutive_failures(c.passive.consecutive_failures);
  SetMillis(c.passive.base_ejection_time, p->mutable_base_ejection_time());
  SetMillis(c.passive.max_ejection_time, p->mutable_max_ejection_time());
  p->set_max_ejection_percent(c.passive.max_ejection_percent);
  v1::Active* a = out->mutable_active();
  a->set_type(c.active.type == core::ActiveHealthConfig::Type::kTcp    ? v1::Active::TCP
              : c.active.type == core::ActiveHealthConfig::Type::kGrpc ? v1::Active::GRPC
                                                                       : v1::Active::HTTP);
  a->set_http_path(c.active.http_path);
  for (uint32_t status : c.active.healthy_http_statuses) a->add_healthy_http_statuses(status);
  SetMillis(c.active.interval, a->mutable_interval());
  SetMillis(c.active.timeout, a->mutable_timeout());
  a->set_healthy_successes(c.active.healthy_successes);
  a->set_unhealthy_failures(c.active.unhealthy_failures);
}

void DecodeHealth(const v1::HealthChecks& h, core::UpstreamConfig& c) {
  const v1::Passive& p = h.passive();
  if (p.has_consecutive_failures()) c.passive.consecutive_failures = p.consecutive_failures();
  c.passive.base_ejection_time = GetMillis(p.base_ejection_time());
  c.passive.max_ejection_time = GetMillis(p.max_ejection_time());
  if (p.has_max_ejection_percent()) c.passive.max_ejection_percent = p.max_ejection_percent();
  const v1::Active& a = h.active();
  c.active.type = a.type() == v1::Active::TCP    ? core::ActiveHealthConfig::Type::kTcp
                  : a.type() == v1::Active::GRPC ? core::ActiveHealthConfig::Type::kGrpc
                                                 : core::ActiveHealthConfig::Type::kHttp;
  c.active.http_path = a.http_path();
  c.active.healthy_http_statuses.assign(a.healthy_http_statuses().begin(),
                                        a.healthy_http_statuses().end());
  c.active.interval = GetMillis(a.interval());
  c.active.timeout = GetMillis(a.timeout());
  c.active.healthy_successes = a.healthy_successes();
  c.active.unhealthy_failures = a.unhealthy_failures();
}

v1::HealthOverride EncodeOverride(core::HealthOverride value) {
  switch (value) {
    case core::HealthOverride::kHealthy:
      return v1::HEALTHY;
    case core::HealthOverride::kUnhealthy:
      return v1::UNHEALTHY;
    case core::HealthOverride::kNone:
      break;
  }
  return v1::NONE;
}

core::HealthOverride DecodeOverride(v1::HealthOverride value) {
  switch (value) {
    case v1::HEALTHY:
      return core::HealthOverride::kHealthy;
    case v1::UNHEALTHY:
      return core::HealthOverride::kUnhealthy;
    default:
      return core::HealthOverride::kNone;
  }
}

}  // namespace

void Encode(const core::UpstreamRecord& record, v1::StoredUpstream* out) {
  const core::UpstreamConfig& c = record.config;
  v1::UpstreamConfig* u = out->mutable_upstream();
  u->set_name(c.name);
  EncodeLoadBalancer(c.load_balancer, u->mutable_load_balancer());
  u->mutable_locality()->set_disabled(!c.locality_aware);
  EncodeHealth(c, u->mutable_health_checks());
  u->set_panic_threshold_percent(c.panic_threshold_percent);
  SetMillis(c.lease_ttl, u->mutable_lease_ttl());
  u->set_max_active_requests_per_target(c.max_active_requests_per_target);
  u->set_max_active_requests(c.max_active_requests);
  for (const core::ClientConfig& client : c.client_configs) {
    v1::ClientConfig* stored = u->add_client_configs();
    stored->set_service(client.client.service);
    for (const auto& [key, value] : client.client.tags) {
      v1::Tag* tag = stored->add_tags();
      tag->set_key(key);
      tag->set_value(value);
    }
    EncodeLoadBalancer(client.load_balancer, stored->mutable_load_balancer());
    stored->mutable_locality()->set_disabled(!client.locality_aware);
  }
  for (const std::string& tag : c.tags) u->add_tags(tag);
  out->mutable_times()->set_created_at(record.times.created_at);
  out->mutable_times()->set_updated_at(record.times.updated_at);
  out->mutable_targets()->Reserve(static_cast<int>(record.targets.size()));
  for (const core::StoredTarget& t : record.targets) {
    v1::StoredTarget* stored = out->add_targets();
    v1::TargetConfig* target = stored->mutable_target();
    target->set_address(t.config.address);
    target->set_weight(t.config.weight);
    target->set_zone(t.config.zone);
    target->set_hash_key(t.config.hash_key);
    for (const std::string& tag : t.config.tags) target->add_tags(tag);
    stored->set_health_override(EncodeOverride(t.health_override));
    stored->mutable_times()->set_created_at(t.times.created_at);
    stored->mutable_times()->set_updated_at(t.times.updated_at);
  }
}

absl::StatusOr<core::UpstreamRecord> Decode(const v1::StoredUpstream& stored) {
  const v1::UpstreamConfig& u = stored.upstream();
  core::UpstreamRecord record;
  core::UpstreamConfig& c = record.config;
  c.name = u.name();
  if (absl::Status s = DecodeLoadBalancer(u.load_balancer(), c.load_balancer); !s.ok()) {
    return absl::DataLossError(absl::StrCat("load balancer: ", s.message()));
  }
  c.locality_aware = !u.locality().disabled();
  DecodeHealth(u.health_checks(), c);
  if (u.has_panic_threshold_percent()) c.panic_threshold_percent = u.panic_threshold_percent();
  c.lease_ttl = GetMillis(u.lease_ttl());
  c.max_active_requests_per_target = u.max_active_requests_per_target();
  c.max_active_requests = u.max_active_requests();
  for (int i = 0; i < u.client_configs_size(); ++i) {
    const v1::ClientConfig& stored = u.client_configs(i);
    core::ClientConfig& client = c.client_configs.emplace_back();
    client.client.service = stored.service();
    for (const v1::Tag& tag : stored.tags())
      client.client.tags.emplace_back(tag.key(), tag.value());
    if (absl::Status s = DecodeLoadBalancer(stored.load_balancer(), client.load_balancer);
        !s.ok()) {
      return absl::DataLossError(
          absl::StrCat("client_configs[", i, "] load balancer: ", s.message()));
    }
    client.locality_aware = !stored.locality().disabled();
  }
  c.tags.assign(u.tags().begin(), u.tags().end());
  record.times = {stored.times().created_at(), stored.times().updated_at()};
  record.targets.reserve(stored.targets_size());
  for (const v1::StoredTarget& t : stored.targets()) {
    core::StoredTarget& target = record.targets.emplace_back();
    target.config.address = t.target().address();
    if (t.target().has_weight()) target.config.weight = t.target().weight();
    target.config.zone = t.target().zone();
    target.config.hash_key = t.target().hash_key();
    target.config.tags.assign(t.target().tags().begin(), t.target().tags().end());
    target.health_override = DecodeOverride(t.health_override());
    target.times = {t.times().created_at(), t.times().updated_at()};
  }
  return record;
}

}  // namespace picker::store
