// picker-cli dump, diff and apply: whole upstreams in the YAML format of
// picker-server --config, read and planned with server/config's own parser
// and planner, sent through picker.v1.Admin. As decK's sync, apply makes
// the upstreams the file declares match it and leaves the others alone
// unless --prune is given.
#include <iostream>
#include <map>
#include <set>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli.h"
#include "client/cli/flags.h"
#include "server/api/convert.h"
#include "server/config/config_file.h"

namespace picker::cli {
namespace {

using config::DeclaredUpstream;

// Every upstream and its targets, as the server has them now: every page
// of each listing, or dump would lose entries, and apply and --prune would
// act on a part of the state.
int ReadState(const Connection& c, std::vector<DeclaredUpstream>& out) {
  v1::ListUpstreamsResponse list;
  if (grpc::Status s = ReadAllPages(
          c, v1::ListUpstreamsRequest(), &v1::Admin::Stub::ListUpstreams,
          [](auto& r) { return r.mutable_upstreams(); }, list);
      !s.ok()) {
    return RpcError("list upstreams", s);
  }
  for (const v1::Upstream& u : list.upstreams()) {
    absl::StatusOr<core::UpstreamConfig> config = api::FromProto(u);
    if (!config.ok()) return LocalError(config.status());
    DeclaredUpstream& d = out.emplace_back(DeclaredUpstream{*std::move(config), {}});
    v1::ListTargetsRequest request;
    request.set_upstream(u.name());
    v1::ListTargetsResponse targets;
    if (grpc::Status s = ReadAllPages(
            c, request, &v1::Admin::Stub::ListTargets, [](auto& r) { return r.mutable_targets(); },
            targets);
        !s.ok()) {
      return RpcError("list targets of " + u.name(), s);
    }
    for (const v1::Target& t : targets.targets()) {
      absl::StatusOr<core::TargetConfig> target = api::FromProto(t, "target");
      if (!target.ok()) return LocalError(target.status());
      d.targets.push_back(*std::move(target));
    }
  }
  return kExitOk;
}

// The changes of a plan grouped by upstream, in plan order.
std::vector<std::vector<core::Change>> ByUpstream(std::vector<core::Change> plan) {
  std::vector<std::vector<core::Change>> groups;
  for (core::Change& change : plan) {
    if (groups.empty() || core::UpstreamOf(groups.back()[0]) != core::UpstreamOf(change)) {
      groups.emplace_back();
    }
    groups.back().push_back(std::move(change));
  }
  return groups;
}

v1::ProposedChange Proposed(const core::Change& change) {
  v1::ProposedChange out;
  if (const auto* u = std::get_if<core::UpdateUpstream>(&change)) {
    *out.mutable_update_upstream()->mutable_upstream() = api::ToProto(u->config);
  } else if (const auto* r = std::get_if<core::ReplaceTargets>(&change)) {
    out.mutable_replace_targets()->set_upstream(r->upstream);
    out.mutable_replace_targets()->set_allow_empty(true);
    for (const core::TargetConfig& t : r->targets) {
      *out.mutable_replace_targets()->add_targets() = api::ToProto(t);
    }
  }
  return out;
}

// "field: old -> new" for each leaf of the configuration that differs.
std::vector<std::string> ConfigDiff(const core::UpstreamConfig& before,
                                    const core::UpstreamConfig& after) {
  std::map<std::string, std::string> old_values;
  for (auto& [path, value] : Flatten(api::ToProto(before))) old_values[path] = value;
  std::vector<std::string> lines;
  std::set<std::string> seen;
  for (auto& [path, value] : Flatten(api::ToProto(after))) {
    seen.insert(path);
    auto it = old_values.find(path);
    if (it == old_values.end()) {
      lines.push_back(absl::StrCat(path, ": ", value));
    } else if (it->second != value) {
      lines.push_back(absl::StrCat(path, ": ", it->second, " -> ", value));
    }
  }
  for (auto& [path, value] : old_values) {
    if (!seen.contains(path)) lines.push_back(absl::StrCat(path, ": ", value, " -> (none)"));
  }
  return lines;
}

std::vector<std::string> TargetDiff(const std::vector<core::TargetConfig>& before,
                                    const std::vector<core::TargetConfig>& after) {
  std::map<std::string, const core::TargetConfig*> old_targets;
  for (const auto& t : before) old_targets[t.address] = &t;
  std::vector<std::string> lines;
  for (const auto& t : after) {
    auto it = old_targets.find(t.address);
    if (it == old_targets.end()) {
      lines.push_back(absl::StrCat("+ target ", t.address, " weight ", t.weight));
    } else {
      if (*it->second != t) {
        lines.push_back(
            absl::StrCat("~ target ", t.address, " weight ", it->second->weight, " -> ", t.weight,
                         it->second->zone != t.zone ? " (zone changes)" : "",
                         it->second->hash_key != t.hash_key ? " (hash key changes)" : ""));
      }
      old_targets.erase(it);
    }
  }
  for (const auto& [address, t] : old_targets) lines.push_back("- target " + address);
  return lines;
}

void PrintPreview(const v1::PreviewChangeResponse& p) {
  std::vector<std::vector<std::string>> rows = {{"    TARGET", "PICKS NOW", "PICKS AFTER"}};
  for (const v1::TargetShare& t : p.targets()) {
    rows.push_back({"    " + t.address(),
                    t.present_before() ? absl::StrFormat("%.2f%%", t.share_before() * 100) : "-",
                    t.present_after() ? absl::StrFormat("%.2f%%", t.share_after() * 100) : "-"});
  }
  PrintTable(rows);
  if (p.targets_not_listed() > 0) {
    std::cout << "    (" << p.targets_not_listed()
              << " targets whose share changes less not listed)\n";
  }
  auto build = [](const v1::StrategyBuild& b) {
    return absl::StrFormat("%s, %d entries, %d bytes, built in %.3f ms", b.strategy(), b.entries(),
                           b.memory_bytes(),
                           b.build_time().seconds() * 1e3 + b.build_time().nanos() / 1e6);
  };
  std::cout << "    now:   " << build(p.before()) << "\n    after: " << build(p.after()) << "\n";
  if (!p.has_hash_space()) return;
  std::cout << absl::StrFormat("    hash space that changes owner: %.2f%%\n",
                               p.hash_space().moved_share() * 100);
  for (const v1::HashSpaceMove& m : p.hash_space().moves()) {
    std::cout << absl::StrFormat("      %s -> %s: %.2f%%\n",
                                 m.from_target().empty() ? "(none)" : m.from_target(),
                                 m.to_target().empty() ? "(none)" : m.to_target(), m.share() * 100);
  }
  if (p.hash_space().moves_not_listed() > 0) {
    std::cout << "      (" << p.hash_space().moves_not_listed() << " smaller moves not listed)\n";
  }
}

// What changes in an upstream that exists: its configuration's fields and
// its targets, a line each.
void PrintFieldChanges(const std::string& name, const DeclaredUpstream& now,
                       const DeclaredUpstream& declared) {
  std::cout << "~ upstream " << name << "\n";
  for (const std::string& line : ConfigDiff(now.config, declared.config)) {
    std::cout << "    " << line << "\n";
  }
  for (const std::string& line : TargetDiff(now.targets, declared.targets)) {
    std::cout << "  " << line << "\n";
  }
}

// Prints what one upstream's changes do; previews the changes to an
// upstream that exists. Returns 0, or the exit code of a failed preview.
int Describe(const Connection& c, const std::vector<core::Change>& changes,
             const DeclaredUpstream* now, const DeclaredUpstream* declared) {
  const std::string& name = core::UpstreamOf(changes[0]);
  if (std::holds_alternative<core::DeleteUpstream>(changes[0])) {
    if (c.format() == Format::kTable) std::cout << "- upstream " << name << "\n";
    return kExitOk;
  }
  if (std::holds_alternative<core::CreateUpstream>(changes[0])) {
    if (c.format() == Format::kTable) {
      std::cout << "+ upstream " << name << " ("
                << core::StrategyName(declared->config.load_balancer.kind) << ", "
                << declared->targets.size() << " targets)\n";
    }
    return kExitOk;
  }
  v1::PreviewChangeRequest request;
  for (const core::Change& change : changes) *request.add_changes() = Proposed(change);
  v1::PreviewChangeResponse preview;
  auto context = c.Context();
  if (grpc::Status s = c.Admin()->PreviewChange(context.get(), request, &preview); !s.ok()) {
    return RpcError("preview of " + name, s);
  }
  Print(c, preview, [&] {
    PrintFieldChanges(name, *now, *declared);
    PrintPreview(preview);
  });
  return kExitOk;
}

// Loads FILE and the server's state, and plans; returns 0 or an exit code.
int Plan(const Connection& c, const CommandLine& cl, std::vector<DeclaredUpstream>& declared,
         std::vector<DeclaredUpstream>& now, std::vector<std::vector<core::Change>>& groups) {
  if (cl.args.size() != 1) return UsageError(cl.command + " takes FILE");
  absl::StatusOr<std::vector<DeclaredUpstream>> loaded = config::LoadConfigFile(cl.args[0]);
  if (!loaded.ok()) return LocalError(loaded.status());
  declared = *std::move(loaded);
  if (int e = ReadState(c, now)) return e;
  groups = ByUpstream(config::PlanChanges(declared, now, absl::GetFlag(FLAGS_prune)));
  return kExitOk;
}

const DeclaredUpstream* Named(const std::vector<DeclaredUpstream>& list, const std::string& name) {
  for (const DeclaredUpstream& u : list) {
    if (u.config.name == name) return &u;
  }
  return nullptr;
}

// Sends one change; prints what it did.
int Send(const Connection& c, const core::Change& change) {
  auto stub = c.Admin();
  auto context = c.Context();
  const std::string& name = core::UpstreamOf(change);
  grpc::Status s;
  std::string done;
  if (const auto* create = std::get_if<core::CreateUpstream>(&change)) {
    v1::CreateUpstreamRequest r;
    *r.mutable_upstream() = api::ToProto(create->config);
    v1::Upstream out;
    s = stub->CreateUpstream(context.get(), r, &out);
    done = "created upstream " + name;
  } else if (const auto* update = std::get_if<core::UpdateUpstream>(&change)) {
    v1::UpdateUpstreamRequest r;
    *r.mutable_upstream() = api::ToProto(update->config);
    v1::Upstream out;
    s = stub->UpdateUpstream(context.get(), r, &out);
    done = "updated upstream " + name;
  } else if (std::holds_alternative<core::ReplaceTargets>(change)) {
    v1::ReplaceTargetsRequest r = Proposed(change).replace_targets();
    v1::ReplaceTargetsResponse out;
    s = stub->ReplaceTargets(context.get(), r, &out);
    done = absl::StrCat("replaced the targets of ", name, " (", r.targets_size(), " targets)");
  } else if (std::holds_alternative<core::DeleteUpstream>(change)) {
    v1::DeleteUpstreamRequest r;
    r.set_name(name);
    v1::DeleteUpstreamResponse out;
    s = stub->DeleteUpstream(context.get(), r, &out);
    done = "deleted upstream " + name;
  }
  if (!s.ok()) return RpcError(name, s);
  if (c.format() == Format::kTable) std::cout << done << "\n";
  return kExitOk;
}

}  // namespace

int RunDump(const Connection& c, const CommandLine& cl) {
  if (!cl.args.empty()) return UsageError("dump takes no arguments (redirect its output)");
  std::vector<DeclaredUpstream> now;
  if (int e = ReadState(c, now)) return e;
  std::cout << config::WriteConfig(now);
  return kExitOk;
}

int RunDiff(const Connection& c, const CommandLine& cl) {
  std::vector<DeclaredUpstream> declared, now;
  std::vector<std::vector<core::Change>> groups;
  if (int e = Plan(c, cl, declared, now, groups)) return e;
  if (groups.empty()) {
    if (c.format() == Format::kTable) std::cout << "no changes\n";
    return kExitOk;
  }
  for (const auto& group : groups) {
    const std::string& name = core::UpstreamOf(group[0]);
    if (int e = Describe(c, group, Named(now, name), Named(declared, name))) return e;
  }
  return kExitChanges;
}

int RunApply(const Connection& c, const CommandLine& cl) {
  if (absl::GetFlag(FLAGS_dry_run)) return RunDiff(c, cl);
  std::vector<DeclaredUpstream> declared, now;
  std::vector<std::vector<core::Change>> groups;
  if (int e = Plan(c, cl, declared, now, groups)) return e;
  if (groups.empty() && c.format() == Format::kTable) std::cout << "no changes\n";
  for (const auto& group : groups) {
    // What changes, then what was done: the same lines as diff, without
    // the preview's shares (the change is made, not weighed).
    const std::string& name = core::UpstreamOf(group[0]);
    const DeclaredUpstream* before = Named(now, name);
    const DeclaredUpstream* after = Named(declared, name);
    if (before != nullptr && after != nullptr && c.format() == Format::kTable) {
      PrintFieldChanges(name, *before, *after);
    }
    for (const core::Change& change : group) {
      if (int e = Send(c, change)) return e;
    }
  }
  return kExitOk;
}

}  // namespace picker::cli
