#include "server/api/insight.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/api/convert.h"
#include "server/core/preview.h"

namespace picker::api {
namespace {

// Which of `items` to list: all when they fit in kMaxListed, otherwise the
// kMaxListed of largest `key(item)`; either way in their own order.
template <typename T, typename Key>
std::vector<size_t> Listed(const std::vector<T>& items, Key key) {
  std::vector<size_t> listed(items.size());
  std::iota(listed.begin(), listed.end(), 0);
  if (listed.size() <= kMaxListed) return listed;
  std::nth_element(listed.begin(), listed.begin() + kMaxListed, listed.end(),
                   [&](size_t a, size_t b) { return key(items[a]) > key(items[b]); });
  listed.resize(kMaxListed);
  std::sort(listed.begin(), listed.end());
  return listed;
}

void SetBuild(const core::UpstreamSnapshot* snapshot, v1::StrategyBuild* out) {
  if (snapshot == nullptr) return;
  const core::StrategyStats stats = snapshot->strategy_stats();
  out->set_strategy(core::StrategyName(snapshot->config().load_balancer.kind));
  out->set_entries(stats.entries);
  out->set_memory_bytes(stats.memory_bytes);
  out->set_hosts(static_cast<uint32_t>(snapshot->all_hosts().pickable.size()));
  const int64_t ns = snapshot->build_duration().count();
  out->mutable_build_time()->set_seconds(ns / 1000000000);
  out->mutable_build_time()->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

std::string PolicyName(const core::HashPolicy& p) {
  switch (p.kind) {
    case core::HashPolicy::Kind::kHeader:
      return "header " + p.name;
    case core::HashPolicy::Kind::kCookie:
      return "cookie " + p.name;
    case core::HashPolicy::Kind::kSourceIp:
      return "connection source_ip";
    case core::HashPolicy::Kind::kQueryParameter:
      return "query_parameter " + p.name;
    case core::HashPolicy::Kind::kFilterState:
      return "filter_state " + p.name;
  }
  return "";
}

const char* ResultName(core::PolicyTrace::Result r) {
  switch (r) {
    case core::PolicyTrace::Result::kHashed:
      return "hashed";
    case core::PolicyTrace::Result::kAbsent:
      return "absent";
    case core::PolicyTrace::Result::kGenerated:
      return "generated";
    case core::PolicyTrace::Result::kSkipped:
      return "skipped";
  }
  return "";
}

void HashSteps(const data::PickExplanation& x, v1::PickExplanation& out) {
  const core::UpstreamSnapshot& s = *x.balancer;
  const std::vector<core::HashPolicy>& policies = s.config().load_balancer.hash_policies;
  for (size_t i = 0; i < x.policies.size() && i < policies.size(); ++i) {
    v1::PickExplanation::HashPolicyResult* p = out.add_hash_policies();
    p->set_policy(PolicyName(policies[i]));
    p->set_result(ResultName(x.policies[i].result));
    p->set_terminal(policies[i].terminal);
    if (x.policies[i].value) p->set_value(*x.policies[i].value);
    out.add_steps(absl::StrCat("hash policy ", i, " (", p->policy(),
                               p->terminal() ? ", terminal" : "", "): ", p->result(),
                               x.policies[i].value ? absl::StrCat(" ", *x.policies[i].value) : ""));
  }
  out.add_steps(x.hash ? absl::StrCat("request hash ", *x.hash, " (from ", x.hash_source, ")")
                       : "no request hash: drawn at random by the pick");
}

void LocalitySteps(const core::SnapshotExplanation& c, const std::string& zone,
                   v1::PickExplanation& out) {
  v1::PickExplanation::Locality* l = out.mutable_locality();
  l->set_client_zone(zone);
  l->set_applies(c.locality_applies);
  l->set_local_percent(c.local_percent);
  l->set_draw(c.draw);
  l->set_priority(c.priority);
  if (!c.locality_applies) {
    out.add_steps(zone.empty() ? "no client_zone: every target is one priority"
                               : "locality does not apply: every target is one priority");
  } else if (c.draw == 0) {
    out.add_steps(absl::StrCat("zone ", zone, " takes ", c.local_percent,
                               "% of picks; the priority is drawn at random"));
  } else {
    out.add_steps(absl::StrCat("zone ", zone, " takes ", c.local_percent,
                               "% of picks; hash % 100 + 1 = ", c.draw, ": priority ", c.priority,
                               c.priority == 0 ? " (the client's zone)" : " (the other zones)"));
  }
  if (c.panic)
    out.add_steps(
        "panic: the healthy share is below the threshold, so unhealthy targets are picked too");
}

void PassedOverSteps(const core::UpstreamSnapshot& s, const core::StrategyExplanation& e,
                     v1::PickExplanation& out) {
  const size_t shown = std::min(e.passed_over.size(), kMaxListed);  // In the order of the walk.
  out.set_passed_over_not_listed(static_cast<uint32_t>(e.passed_over.size() - shown));
  for (size_t i = 0; i < shown; ++i) {
    const auto& p = e.passed_over[i];
    const std::string& address = s.targets()[p.host].config.address;
    v1::PickExplanation::PassedOver* po = out.add_passed_over();
    po->set_address(address);
    po->set_reason(p.avoided ? "avoided" : "bounded_load");
    po->set_overload(p.overload);
    out.add_steps(p.avoided ? absl::StrCat("passed over ", address,
                                           ": excluded or at its circuit-breaker cap")
                            : absl::StrFormat("passed over %s: bounded load, %.2f times its cap",
                                              address, p.overload));
  }
  if (shown < e.passed_over.size()) {
    out.add_steps(absl::StrCat("passed over ", e.passed_over.size() - shown, " more (not listed)"));
  }
}

void CandidateSteps(const core::UpstreamSnapshot& s, const core::StrategyExplanation& e,
                    v1::PickExplanation& out) {
  const std::vector<size_t> listed =
      Listed(e.candidates, [](const auto& cand) { return cand.probability; });
  double unlisted = 1;
  for (size_t i : listed) {
    const auto& cand = e.candidates[i];
    const std::string& address = s.targets()[cand.host].config.address;
    v1::PickExplanation::Candidate* k = out.add_candidates();
    k->set_address(address);
    k->set_probability(cand.probability);
    k->set_weight(cand.weight);
    k->set_active_requests(
        s.targets()[cand.host].live->active_requests.load(std::memory_order_relaxed));
    unlisted -= cand.probability;
    out.add_steps(absl::StrFormat("candidate %s: probability %.4f, %d active", address,
                                  cand.probability, k->active_requests()));
  }
  out.set_candidates_not_listed(static_cast<uint32_t>(e.candidates.size() - listed.size()));
  if (out.candidates_not_listed() > 0) {
    out.add_steps(absl::StrFormat("%d less likely candidates not listed: probability %.4f together",
                                  out.candidates_not_listed(), std::max(unlisted, 0.0)));
  }
}

void LeftOutSteps(const data::PickExplanation& x, v1::PickExplanation& out) {
  const core::UpstreamSnapshot& s = *x.snapshot;
  const size_t shown = std::min(x.left_out.size(), kMaxListed);
  out.set_left_out_not_listed(static_cast<uint32_t>(x.left_out.size() - shown));
  for (size_t i = 0; i < shown; ++i) {
    const auto& left = x.left_out[i];
    const core::SnapshotTarget& t = s.targets()[left.target];
    v1::PickExplanation::LeftOut* l = out.add_left_out();
    l->set_address(t.config.address);
    l->set_reason(left.reason);
    if (left.reason == "unhealthy") {
      const v1::TargetHealth health = ToProto(t);
      for (int r : health.reasons()) {
        if (r != v1::TargetHealth::WEIGHT_ZERO)
          l->add_checks(static_cast<v1::TargetHealth::Reason>(r));
      }
      if (health.has_returns_at()) *l->mutable_ejected_until() = health.returns_at();
    }
    out.add_steps(absl::StrCat("left out ", t.config.address, ": ", left.reason));
  }
  if (shown < x.left_out.size()) {
    out.add_steps(absl::StrCat(x.left_out.size() - shown, " more left out (not listed)"));
  }
}

}  // namespace

v1::PreviewChangeResponse PreviewToProto(const control::WriteResult& w) {
  v1::PreviewChangeResponse out;
  const core::ChangePreview preview = core::PreviewSnapshots(w.before.get(), w.snapshot.get());
  if (w.record) {
    out.set_upstream(w.record->config.name);
    *out.mutable_upstream_after() = ToProto(w.record->config);
  } else if (w.before) {
    out.set_upstream(w.before->config().name);
  }
  out.set_revision(w.revision);
  // Added and removed targets first (a change of 1 or more), then by how
  // much their share changes.
  const auto change = [](const core::TargetShareChange& t) {
    return std::abs(t.after - t.before) + (t.present_before != t.present_after ? 1.0 : 0.0);
  };
  const std::vector<size_t> listed = Listed(preview.targets, change);
  out.set_targets_not_listed(static_cast<uint32_t>(preview.targets.size() - listed.size()));
  for (size_t i : listed) {
    const core::TargetShareChange& t = preview.targets[i];
    v1::TargetShare* share = out.add_targets();
    share->set_address(t.address);
    share->set_share_before(t.before);
    share->set_share_after(t.after);
    share->set_present_before(t.present_before);
    share->set_present_after(t.present_after);
  }
  if (preview.hash_space) {
    v1::HashSpaceChange* h = out.mutable_hash_space();
    h->set_moved_share(preview.hash_space->moved);
    const std::vector<core::HashSpaceMove>& moves = preview.hash_space->moves;
    const size_t shown = std::min(moves.size(), kMaxListed);  // Largest first already.
    h->set_moves_not_listed(static_cast<uint32_t>(moves.size() - shown));
    for (size_t i = 0; i < shown; ++i) {
      const core::HashSpaceMove& m = moves[i];
      v1::HashSpaceMove* move = h->add_moves();
      move->set_from_target(m.from);
      move->set_to_target(m.to);
      move->set_share(m.share);
    }
  }
  SetBuild(w.before.get(), out.mutable_before());
  SetBuild(w.snapshot.get(), out.mutable_after());
  return out;
}

v1::PickExplanation ExplanationToProto(const data::PickExplanation& x) {
  v1::PickExplanation out;
  const core::UpstreamSnapshot& s = *x.balancer;
  out.set_upstream(s.config().name);
  out.set_strategy(core::StrategyName(s.config().load_balancer.kind));
  if (x.client_config) {
    const size_t i = *x.client_config;
    const core::ClientSelector& client = x.snapshot->config().client_configs[i].client;
    out.set_client_config(static_cast<uint32_t>(i));
    out.add_steps(absl::StrCat("client_configs[", i, "] applies (client",
                               client.service.empty() ? "" : " service " + client.service,
                               client.tags.empty() ? "" : " with its tags", "): ", out.strategy()));
  } else if (!x.snapshot->config().client_configs.empty()) {
    out.add_steps("no client_configs entry matches the client: the upstream's own strategy");
  }
  out.set_hash_source(x.hash_source);
  if (x.hash) out.set_hash(*x.hash);
  HashSteps(x, out);
  const core::SnapshotExplanation& c = x.choice;
  out.set_panic(c.panic);
  LocalitySteps(c, x.client_zone, out);
  const core::StrategyExplanation& e = c.strategy;
  out.add_steps(e.rule);
  out.set_deterministic(e.deterministic);
  if (e.entry) out.set_entry(*e.entry);
  if (e.entry_hash) out.set_entry_hash(*e.entry_hash);
  PassedOverSteps(s, e, out);
  if (e.deterministic && e.chosen != core::kNoHost) {
    out.set_target(s.targets()[e.chosen].config.address);
    out.add_steps(absl::StrCat(
        "chosen: ", out.target(),
        e.entry_hash ? absl::StrCat(" (ring entry ", *e.entry, ", hash ", *e.entry_hash, ")")
        : e.entry    ? absl::StrCat(" (slot ", *e.entry, ")")
                     : ""));
  }
  if (!e.deterministic) CandidateSteps(s, e, out);
  if (c.eligible.empty()) out.add_steps("no target can be picked: Pick answers UNAVAILABLE");
  LeftOutSteps(x, out);
  return out;
}

}  // namespace picker::api
