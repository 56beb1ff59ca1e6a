#include "server/core/changes.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/core/address.h"
#include "server/core/update_mask.h"
#include "server/core/validate.h"

namespace picker::core {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// "<what> is <limit> (<its name>)".
absl::Status Exceeds(absl::string_view what, const Limit& limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " is ", limit.value, " (", limit.name, ")"));
}

absl::Status CheckHashPolicies(const UpstreamConfig& config, const Limits& limits) {
  const size_t count = config.load_balancer.hash_policies.size();
  if (count <= limits.hash_policies.value) return absl::OkStatus();
  return Exceeds(absl::StrCat("upstream.load_balancer.", StrategyName(config.load_balancer.kind),
                              ".hash_policies: ", count, " policies, the limit"),
                 limits.hash_policies);
}

absl::Status CheckTargetCount(size_t count, const Limits& limits) {
  if (count <= limits.targets_per_upstream.value) return absl::OkStatus();
  return Exceeds(absl::StrCat("targets: ", count, " targets, the limit per upstream"),
                 limits.targets_per_upstream);
}

absl::Status PrepareConfig(const UpstreamConfig& config, const Limits& limits) {
  if (absl::Status s = ValidateUpstreamConfig(config); !s.ok()) return s;
  return CheckHashPolicies(config, limits);
}

absl::Status PreparePatch(TargetPatch& patch) {
  absl::StatusOr<std::string> address = CanonicalAddress(patch.address, "target.address");
  if (!address.ok()) return address.status();
  patch.address = *std::move(address);
  if (patch.weight && *patch.weight > kMaxTargetWeight) {
    return absl::InvalidArgumentError(
        absl::StrCat("target.weight: must be 0..", kMaxTargetWeight, ", got ", *patch.weight));
  }
  return absl::OkStatus();
}

absl::Status PrepareAddress(std::string& address) {
  absl::StatusOr<std::string> canonical = CanonicalAddress(address, "address");
  if (!canonical.ok()) return canonical.status();
  address = *std::move(canonical);
  return absl::OkStatus();
}

// With a mask, the request holds only the fields it names: the merged
// configuration is checked in ApplyChange, against the stored one.
absl::Status PrepareUpdate(const UpdateUpstream& update, const Limits& limits) {
  if (!update.update_mask) return PrepareConfig(update.config, limits);
  return ValidateUpstreamName(update.config.name, "upstream.name");
}

absl::Status PrepareTargets(ReplaceTargets& change, const Limits& limits) {
  std::vector<TargetConfig>& targets = change.targets;
  if (targets.empty() && !change.allow_empty) {
    return absl::InvalidArgumentError(
        "targets: is empty, which would remove every target; set allow_empty to mean it");
  }
  if (absl::Status s = CheckTargetCount(targets.size(), limits); !s.ok()) return s;
  absl::flat_hash_map<std::string, size_t> position;
  position.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string field = absl::StrCat("targets[", i, "]");
    absl::StatusOr<std::string> address =
        CanonicalAddress(targets[i].address, absl::StrCat(field, ".address"));
    if (!address.ok()) return address.status();
    targets[i].address = *std::move(address);
    if (absl::Status s = ValidateTarget(targets[i], field); !s.ok()) return s;
    auto [it, inserted] = position.emplace(targets[i].address, i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".address: \"", targets[i].address,
                                                     "\" duplicates targets[", it->second, "]"));
    }
  }
  return absl::OkStatus();
}

std::vector<StoredTarget>::iterator FindTarget(std::vector<StoredTarget>& targets,
                                               absl::string_view address) {
  return std::find_if(targets.begin(), targets.end(),
                      [&](const StoredTarget& t) { return t.config.address == address; });
}

absl::Status UnknownTarget(absl::string_view upstream, absl::string_view address) {
  return absl::NotFoundError(
      absl::StrCat("address: upstream \"", upstream, "\" has no target \"", address, "\""));
}

absl::StatusOr<UpstreamRecord> Create(const CreateUpstream& change, const UpstreamRecord* current,
                                      size_t upstream_count, const Limits& limits) {
  if (current != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("upstream.name: an upstream named \"",
                                                 change.config.name, "\" already exists"));
  }
  if (upstream_count >= limits.upstreams.value) {
    return Exceeds(absl::StrCat("upstream: ", upstream_count, " upstreams exist, the limit"),
                   limits.upstreams);
  }
  return UpstreamRecord{change.config, {}};
}

absl::StatusOr<UpstreamRecord> Put(const PutTarget& change, UpstreamRecord record,
                                   const Limits& limits) {
  const TargetPatch& patch = change.patch;
  auto it = FindTarget(record.targets, patch.address);
  if (it == record.targets.end()) {
    if (absl::Status s = CheckTargetCount(record.targets.size() + 1, limits); !s.ok()) return s;
    it = record.targets.insert(record.targets.end(), StoredTarget{});
    it->config.address = patch.address;
  }
  TargetConfig& target = it->config;
  if (patch.weight) target.weight = *patch.weight;
  if (!patch.zone.empty()) target.zone = patch.zone;
  if (!patch.hash_key.empty()) target.hash_key = patch.hash_key;
  if (patch.tags) target.tags = *patch.tags;
  if (absl::Status s = ValidateTarget(target, "target"); !s.ok()) return s;
  return record;
}

// Targets already present keep their place (host-set order) and their
// override; new ones follow in request order.
UpstreamRecord Replace(const ReplaceTargets& change, UpstreamRecord record) {
  absl::flat_hash_map<absl::string_view, size_t> position;
  position.reserve(change.targets.size());
  for (size_t i = 0; i < change.targets.size(); ++i) {
    position.emplace(change.targets[i].address, i);
  }
  std::vector<StoredTarget> next;
  next.reserve(change.targets.size());
  std::vector<bool> placed(change.targets.size(), false);
  for (const StoredTarget& existing : record.targets) {
    auto it = position.find(existing.config.address);
    if (it == position.end()) continue;
    next.push_back(StoredTarget{change.targets[it->second], existing.health_override});
    placed[it->second] = true;
  }
  for (size_t i = 0; i < change.targets.size(); ++i) {
    if (!placed[i]) next.push_back(StoredTarget{change.targets[i]});
  }
  record.targets = std::move(next);
  return record;
}

// The changes to an existing upstream.
absl::StatusOr<UpstreamRecord> Modify(const Change& change, UpstreamRecord record,
                                      const Limits& limits) {
  return std::visit(
      Overloaded{[&](const UpdateUpstream& c) -> absl::StatusOr<UpstreamRecord> {
                   if (!c.update_mask) {
                     record.config = c.config;
                     return record;
                   }
                   absl::StatusOr<UpstreamConfig> merged =
                       MergeUpstreamConfig(record.config, c.config, *c.update_mask);
                   if (!merged.ok()) return merged.status();
                   if (absl::Status s = PrepareConfig(*merged, limits); !s.ok()) return s;
                   record.config = *std::move(merged);
                   return record;
                 },
                 [&](const PutTarget& c) { return Put(c, std::move(record), limits); },
                 [&](const DeleteTarget& c) -> absl::StatusOr<UpstreamRecord> {
                   auto it = FindTarget(record.targets, c.address);
                   if (it == record.targets.end()) return UnknownTarget(c.upstream, c.address);
                   record.targets.erase(it);
                   return record;
                 },
                 [&](const ReplaceTargets& c) -> absl::StatusOr<UpstreamRecord> {
                   return Replace(c, std::move(record));
                 },
                 [&](const SetTargetHealth& c) -> absl::StatusOr<UpstreamRecord> {
                   auto it = FindTarget(record.targets, c.address);
                   if (it == record.targets.end()) return UnknownTarget(c.upstream, c.address);
                   it->health_override = c.health_override;
                   return record;
                 },
                 [&](const auto&) -> absl::StatusOr<UpstreamRecord> {
                   return absl::InternalError("not a change to an existing upstream");
                 }},
      change);
}

// Kong's created_at and updated_at of `after`, the record `before` became.
void StampTimes(const UpstreamRecord* before, UpstreamRecord& after, int64_t now) {
  if (before == nullptr) {
    after.times = {now, now};
  } else {
    after.times = before->times;
    if (after.config != before->config) after.times.updated_at = now;
  }
  absl::flat_hash_map<absl::string_view, const StoredTarget*> old;
  if (before != nullptr) {
    old.reserve(before->targets.size());
    for (const StoredTarget& t : before->targets) old.emplace(t.config.address, &t);
  }
  for (StoredTarget& target : after.targets) {
    auto it = old.find(target.config.address);
    if (it == old.end()) {
      target.times = {now, now};
      continue;
    }
    target.times = it->second->times;
    if (target.config != it->second->config) target.times.updated_at = now;
  }
}

}  // namespace

const std::string& UpstreamOf(const Change& change) {
  return std::visit(
      Overloaded{[](const CreateUpstream& c) -> const std::string& { return c.config.name; },
                 [](const UpdateUpstream& c) -> const std::string& { return c.config.name; },
                 [](const DeleteUpstream& c) -> const std::string& { return c.name; },
                 [](const auto& c) -> const std::string& { return c.upstream; }},
      change);
}

absl::Status PrepareChange(Change& change, const Limits& limits) {
  return std::visit(
      Overloaded{[&](CreateUpstream& c) { return PrepareConfig(c.config, limits); },
                 [&](UpdateUpstream& c) { return PrepareUpdate(c, limits); },
                 [&](DeleteUpstream& c) { return ValidateUpstreamName(c.name, "name"); },
                 [&](PutTarget& c) { return PreparePatch(c.patch); },
                 [&](DeleteTarget& c) { return PrepareAddress(c.address); },
                 [&](ReplaceTargets& c) { return PrepareTargets(c, limits); },
                 [&](SetTargetHealth& c) { return PrepareAddress(c.address); }},
      change);
}

absl::StatusOr<Mutation> ApplyChange(const Change& change, const UpstreamRecord* current,
                                     size_t upstream_count, const Limits& limits,
                                     int64_t now_unix_s) {
  Mutation mutation{UpstreamOf(change), std::nullopt};
  absl::StatusOr<UpstreamRecord> record;
  if (const auto* create = std::get_if<CreateUpstream>(&change)) {
    record = Create(*create, current, upstream_count, limits);
  } else if (current == nullptr) {
    return UnknownUpstream(mutation.name);
  } else if (std::holds_alternative<DeleteUpstream>(change)) {
    return mutation;
  } else {
    record = Modify(change, *current, limits);
  }
  if (!record.ok()) return record.status();
  StampTimes(current, *record, now_unix_s);
  mutation.record = *std::move(record);
  return mutation;
}

absl::Status UnknownUpstream(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("upstream: is required");
  // A name longer than any valid one is cut: the message travels back in a
  // header that clients bound.
  return absl::NotFoundError(absl::StrCat("upstream: no upstream named \"", name.substr(0, 128),
                                          name.size() > 128 ? "...\"" : "\""));
}

}  // namespace picker::core
