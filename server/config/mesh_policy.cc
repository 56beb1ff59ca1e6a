#include "server/config/mesh_policy.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/eventhandler.h"

namespace picker::config {
namespace {

constexpr char kKind[] = "MeshLoadBalancingStrategy";
constexpr char kApiVersion[] = "kuma.io/v1alpha1";
// Kong Mesh's targetRef kinds for selecting clients, least specific first.
constexpr const char* kClientKinds[] = {"Mesh", "MeshSubset", "MeshService", "MeshServiceSubset"};
// The option blocks of loadBalancer, one per `type`.
constexpr const char* kTypeBlocks[] = {"roundRobin", "leastRequest", "ringHash",          "random",
                                       "maglev",     "peakEwma",     "weightedRoundRobin"};

// Where each document starts, read from the parser's events without
// building the documents.
class DocumentStart final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark start;
};

// Document starts, in order. Not YAML::LoadAll: yaml-cpp 0.7's loops
// forever on some malformed input (an unbalanced `}`; found by
// tests/fuzz/config_fuzzer), where the parser hands out the same document
// again: a start that does not move on ends the list here, and loading that
// document reports the error. The parser reads every document through, so
// that an error in any of them is reported.
absl::StatusOr<std::vector<YAML::Mark>> DocumentStarts(const std::string& text,
                                                       const std::string& source) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  std::vector<YAML::Mark> starts;
  while (starts.size() <= kMaxDocuments) {
    DocumentStart handler;
    try {
      if (!parser.HandleNextDocument(handler)) break;
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
    }
    if (!starts.empty() && handler.start.pos <= starts.back().pos) break;
    starts.push_back(handler.start);
  }
  return starts;
}

absl::Status Only(const std::string& source, const YAML::Node& map, const std::string& field,
                  std::initializer_list<const char*> keys) {
  if (!map.IsMap()) return FieldError(source, map, field, "must be a mapping");
  for (const auto& entry : map) {
    const std::string key = entry.first.Scalar();
    if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return key == k; })) {
      return FieldError(
          source, entry.first, absl::StrCat(field, ".", key),
          absl::StrCat("unknown field (", kKind, " has ", absl::StrJoin(keys, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Text(const std::string& source, const YAML::Node& map, const char* key,
                                 const std::string& field) {
  const YAML::Node n = map[key];
  if (!n) return FieldError(source, map, absl::StrCat(field, ".", key), "is required");
  if (!n.IsScalar() || n.Scalar().empty()) {
    return FieldError(source, n, absl::StrCat(field, ".", key), "must be a non-empty string");
  }
  return n.Scalar();
}

// The policy's name and mesh, from either form.
absl::Status ReadHeader(const YAML::Node& doc, const std::string& source, MeshPolicy& out) {
  if (doc["apiVersion"]) {
    if (absl::Status s = Only(source, doc, "resource", {"apiVersion", "kind", "metadata", "spec"});
        !s.ok()) {
      return s;
    }
    auto api = Text(source, doc, "apiVersion", "resource");
    if (!api.ok()) return api.status();
    if (*api != kApiVersion) {
      return FieldError(source, doc["apiVersion"], "apiVersion",
                        absl::StrCat("must be ", kApiVersion));
    }
    auto kind = Text(source, doc, "kind", "resource");
    if (!kind.ok()) return kind.status();
    if (*kind != kKind)
      return FieldError(source, doc["kind"], "kind", absl::StrCat("must be ", kKind));
    const YAML::Node meta = doc["metadata"];
    if (absl::Status s =
            Only(source, meta, "metadata", {"name", "namespace", "labels", "annotations"});
        !s.ok()) {
      return s;
    }
    auto name = Text(source, meta, "name", "metadata");
    if (!name.ok()) return name.status();
    out.name = *name;
    const YAML::Node mesh = meta["labels"] ? meta["labels"]["kuma.io/mesh"] : YAML::Node();
    out.mesh = mesh && mesh.IsScalar() ? mesh.Scalar() : "default";
    return absl::OkStatus();
  }
  if (absl::Status s = Only(source, doc, "resource", {"type", "name", "mesh", "labels", "spec"});
      !s.ok()) {
    return s;
  }
  auto type = Text(source, doc, "type", "resource");
  if (!type.ok()) return type.status();
  if (*type != kKind)
    return FieldError(source, doc["type"], "type", absl::StrCat("must be ", kKind));
  auto name = Text(source, doc, "name", "resource");
  if (!name.ok()) return name.status();
  out.name = *name;
  out.mesh = "default";
  if (doc["mesh"]) {
    auto mesh = Text(source, doc, "mesh", "resource");
    if (!mesh.ok()) return mesh.status();
    out.mesh = *mesh;
  }
  return absl::OkStatus();
}

// The top-level targetRef: which clients the policy is for.
absl::Status ReadClients(const YAML::Node& ref, const std::string& source, MeshPolicy& out) {
  const std::string field = "spec.targetRef";
  if (absl::Status s = Only(source, ref, field, {"kind", "name", "tags"}); !s.ok()) return s;
  auto kind = Text(source, ref, "kind", field);
  if (!kind.ok()) return kind.status();
  const auto* it = std::find(std::begin(kClientKinds), std::end(kClientKinds), *kind);
  if (it == std::end(kClientKinds)) {
    return FieldError(source, ref["kind"], field + ".kind",
                      "must be Mesh, MeshSubset, MeshService or MeshServiceSubset");
  }
  out.rank = static_cast<int>(it - std::begin(kClientKinds));
  const bool named = out.rank >= 2, tagged = out.rank == 1 || out.rank == 3;
  if (!named && ref["name"]) {
    return FieldError(source, ref["name"], field + ".name",
                      absl::StrCat("kind ", *kind, " takes no name"));
  }
  if (!tagged && ref["tags"]) {
    return FieldError(source, ref["tags"], field + ".tags",
                      absl::StrCat("kind ", *kind, " takes no tags"));
  }
  if (named) {
    auto name = Text(source, ref, "name", field);
    if (!name.ok()) return name.status();
    out.clients.service = *name;
  }
  if (tagged) {
    const YAML::Node tags = ref["tags"];
    if (!tags || !tags.IsMap() || tags.size() == 0) {
      return FieldError(source, tags ? tags : ref, field + ".tags", "must be a non-empty mapping");
    }
    for (const auto& entry : tags) {
      if (!entry.second.IsScalar()) {
        return FieldError(source, entry.second, field + ".tags." + entry.first.Scalar(),
                          "must be a string");
      }
      out.clients.tags.emplace_back(entry.first.Scalar(), entry.second.Scalar());
    }
    std::sort(out.clients.tags.begin(), out.clients.tags.end());
  }
  return absl::OkStatus();
}

// The clients both `a` and `b` select, or nullopt when no client is in
// both (two services, or one tag with two values).
std::optional<core::ClientSelector> Both(const core::ClientSelector& a,
                                         const core::ClientSelector& b) {
  if (!a.service.empty() && !b.service.empty() && a.service != b.service) return std::nullopt;
  core::ClientSelector out{a.service.empty() ? b.service : a.service, a.tags};
  for (const auto& tag : b.tags) {
    auto same = std::find_if(out.tags.begin(), out.tags.end(),
                             [&](const auto& t) { return t.first == tag.first; });
    if (same == out.tags.end()) {
      out.tags.push_back(tag);
    } else if (same->second != tag.second) {
      return std::nullopt;
    }
  }
  std::sort(out.tags.begin(), out.tags.end());
  return out;
}

// True when every client `narrow` selects is one `wide` selects.
bool Within(const core::ClientSelector& narrow, const core::ClientSelector& wide) {
  if (!wide.service.empty() && wide.service != narrow.service) return false;
  return std::includes(narrow.tags.begin(), narrow.tags.end(), wide.tags.begin(), wide.tags.end());
}

// The sets of clients that `selectors` tell apart: each selector and
// every intersection of them, most specific first, so that the first a
// client matches is the intersection of all it matches.
absl::StatusOr<std::vector<core::ClientSelector>> ClientSets(
    std::vector<core::ClientSelector> selectors, const std::string& source,
    const std::string& upstream) {
  for (size_t i = 0; i < selectors.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      std::optional<core::ClientSelector> both = Both(selectors[i], selectors[j]);
      if (!both || std::find(selectors.begin(), selectors.end(), *both) != selectors.end()) {
        continue;
      }
      if (selectors.size() == core::kMaxClientConfigs) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": the ", kKind, " resources for upstream ", upstream, " tell more than ",
            core::kMaxClientConfigs, " sets of clients apart (each needs tables of its own)"));
      }
      selectors.push_back(*std::move(both));
    }
  }
  std::stable_sort(selectors.begin(), selectors.end(), [](const auto& a, const auto& b) {
    return a.Requirements() > b.Requirements();
  });
  return selectors;
}

// `merged` without the option blocks of strategies other than its
// loadBalancer's `type`, which merging leaves behind (a policy that
// changes the type does not remove the last one's options). Kong Mesh
// ignores them; picker's file would refuse them.
YAML::Node WithoutOtherTypes(const YAML::Node& merged) {
  const YAML::Node lb = merged["loadBalancer"];
  if (!lb || !lb.IsMap() || !lb["type"] || !lb["type"].IsScalar()) return merged;
  std::string type = lb["type"].Scalar();
  if (!type.empty()) type[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(type[0])));
  YAML::Node kept(YAML::NodeType::Map);
  for (const auto& entry : lb) {
    const std::string key = entry.first.Scalar();
    const bool other = key != type && std::find(std::begin(kTypeBlocks), std::end(kTypeBlocks),
                                                key) != std::end(kTypeBlocks);
    if (!other) kept.force_insert(entry.first, entry.second);
  }
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& entry : merged) {
    out.force_insert(entry.first, entry.first.Scalar() == "loadBalancer" ? kept : entry.second);
  }
  return out;
}

// The patches of `ordered` for upstream `name` from the policies whose
// clients pass `applies`, merged over `base` in order.
template <typename Applies>
YAML::Node Merged(const std::vector<MeshPolicy>& ordered, const std::string& name,
                  const YAML::Node& base, Applies applies) {
  // Not `node = other`: yaml-cpp's assignment rebinds the node it refers
  // to, which would change the document (and every node sharing it).
  std::vector<YAML::Node> steps = {base};
  for (const MeshPolicy& p : ordered) {
    if (!applies(p)) continue;
    for (const MeshPolicyTo& to : p.to) {
      if (to.upstream.empty() || to.upstream == name) {
        steps.push_back(MergePatch(steps.back(), to.patch));
      }
    }
  }
  return steps.size() == 1 ? base : WithoutOtherTypes(steps.back());
}

bool Selects(const MeshPolicy& p, const std::string& name) {
  return std::any_of(p.to.begin(), p.to.end(), [&](const MeshPolicyTo& to) {
    return to.upstream.empty() || to.upstream == name;
  });
}

// One clientConfigs entry: `clients` with what `merged` balances them by.
YAML::Node ClientEntry(const core::ClientSelector& clients, const YAML::Node& merged) {
  YAML::Node selector(YAML::NodeType::Map);
  if (!clients.service.empty()) selector.force_insert("service", clients.service);
  if (!clients.tags.empty()) {
    YAML::Node tags(YAML::NodeType::Map);
    for (const auto& [key, value] : clients.tags) tags.force_insert(key, value);
    selector.force_insert("tags", tags);
  }
  YAML::Node entry(YAML::NodeType::Map);
  entry.force_insert("client", selector);
  for (const char* key : {"loadBalancer", "localityAwareness"}) {
    if (merged[key]) entry.force_insert(key, merged[key]);
  }
  return entry;
}

// Nodes are only ever constructed here, never assigned: yaml-cpp's
// assignment rebinds the node it refers to, changing the document.
absl::StatusOr<MeshPolicyTo> ReadTo(const YAML::Node& item, const std::string& source,
                                    const std::string& field) {
  if (absl::Status s = Only(source, item, field, {"targetRef", "default"}); !s.ok()) return s;
  const YAML::Node ref = item["targetRef"];
  const std::string ref_field = field + ".targetRef";
  if (!ref) return FieldError(source, item, ref_field, "is required");
  if (absl::Status s = Only(source, ref, ref_field, {"kind", "name"}); !s.ok()) return s;
  auto kind = Text(source, ref, "kind", ref_field);
  if (!kind.ok()) return kind.status();
  std::string upstream;
  if (*kind == "MeshService") {
    auto name = Text(source, ref, "name", ref_field);
    if (!name.ok()) return name.status();
    upstream = *name;
  } else if (*kind != "Mesh") {
    return FieldError(source, ref["kind"], ref_field + ".kind", "must be Mesh or MeshService");
  } else if (ref["name"]) {
    return FieldError(source, ref["name"], ref_field + ".name", "kind Mesh takes no name");
  }
  const YAML::Node patch = item["default"];
  if (!patch) return FieldError(source, item, field + ".default", "is required");
  if (absl::Status s =
          Only(source, patch, field + ".default", {"loadBalancer", "localityAwareness"});
      !s.ok()) {
    return s;
  }
  return MeshPolicyTo{upstream, patch, ref};
}

}  // namespace

std::string Where(const std::string& source, const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  if (mark.is_null() && node.IsMap() && node.size() > 0) mark = node.begin()->first.Mark();
  return mark.is_null() ? source : absl::StrCat(source, ":", mark.line + 1);
}

absl::Status FieldError(const std::string& source, const YAML::Node& node, absl::string_view field,
                        absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(Where(source, node), ": ", field, ": ", why));
}

absl::StatusOr<std::vector<YAML::Node>> LoadDocuments(const std::string& text,
                                                      const std::string& source) {
  absl::StatusOr<std::vector<YAML::Mark>> found = DocumentStarts(text, source);
  if (!found.ok()) return found.status();
  const std::vector<YAML::Mark>& starts = *found;
  if (starts.size() > kMaxDocuments) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", starts.back().line + 1,
                                                   ": more than ", kMaxDocuments, " documents"));
  }
  std::vector<YAML::Node> documents;
  for (size_t i = 0; i < starts.size(); ++i) {
    const size_t from = static_cast<size_t>(starts[i].pos);
    const size_t to = i + 1 < starts.size() ? static_cast<size_t>(starts[i + 1].pos) : text.size();
    // Blank lines and columns before it keep the file's positions.
    const std::string padded = std::string(static_cast<size_t>(starts[i].line), '\n') +
                               std::string(static_cast<size_t>(starts[i].column), ' ') +
                               text.substr(from, to - from);
    try {
      documents.push_back(YAML::Load(padded));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
    }
  }
  return documents;
}

bool IsMeshResource(const YAML::Node& document) {
  return document.IsMap() && (document["apiVersion"] || document["type"] || document["kind"]);
}

absl::StatusOr<MeshPolicy> ReadMeshPolicy(const YAML::Node& document, const std::string& source) {
  MeshPolicy policy;
  if (absl::Status s = ReadHeader(document, source, policy); !s.ok()) return s;
  const YAML::Node spec = document["spec"];
  if (!spec) return FieldError(source, document, "spec", "is required");
  if (absl::Status s = Only(source, spec, "spec", {"targetRef", "to", "from"}); !s.ok()) return s;
  if (spec["from"]) {
    return FieldError(source, spec["from"], "spec.from",
                      absl::StrCat("is not supported by ", kKind, " (use to)"));
  }
  if (!spec["targetRef"]) return FieldError(source, spec, "spec.targetRef", "is required");
  if (absl::Status s = ReadClients(spec["targetRef"], source, policy); !s.ok()) return s;
  const YAML::Node to = spec["to"];
  if (!to || !to.IsSequence() || to.size() == 0) {
    return FieldError(source, to ? to : spec, "spec.to", "must be a non-empty list");
  }
  // Mesh entries first; pushed, not partitioned (see ReadTo).
  std::vector<MeshPolicyTo> services;
  for (size_t i = 0; i < to.size(); ++i) {
    auto item = ReadTo(to[i], source, absl::StrCat("spec.to[", i, "]"));
    if (!item.ok()) return item.status();
    (item->upstream.empty() ? policy.to : services).push_back(*item);
  }
  for (const MeshPolicyTo& item : services) policy.to.push_back(item);
  return policy;
}

absl::Status OrderMeshPolicies(std::vector<MeshPolicy>& policies,
                               const std::vector<std::string>& declared,
                               const std::string& source) {
  const std::set<std::string> names(declared.begin(), declared.end());
  std::set<std::string> seen;
  for (const MeshPolicy& p : policies) {
    if (!seen.insert(p.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": two ", kKind, " resources are named ", p.name));
    }
    if (p.mesh != policies.front().mesh) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", kKind, " ", p.name, " is in mesh ", p.mesh, ", ", policies.front().name,
          " in mesh ", policies.front().mesh, ": picker serves one"));
    }
    for (const MeshPolicyTo& to : p.to) {
      if (!to.upstream.empty() && names.count(to.upstream) == 0) {
        return FieldError(source, to.where["name"], "targetRef.name",
                          absl::StrCat("names no upstream this file declares (", to.upstream,
                                       "): targets come from picker's upstreams"));
      }
    }
  }
  std::sort(policies.begin(), policies.end(), [](const MeshPolicy& a, const MeshPolicy& b) {
    return std::tie(a.rank, a.name) < std::tie(b.rank, b.name);
  });
  return absl::OkStatus();
}

YAML::Node MergePatch(const YAML::Node& target, const YAML::Node& patch) {
  if (!patch.IsMap()) return patch;  // Scalars and lists replace; neither is changed later.
  YAML::Node merged(YAML::NodeType::Map);
  // Nodes are shared, never copied, so that errors keep their positions;
  // maps are new at every merge, so that nothing shared is changed.
  if (target && target.IsMap()) {
    for (const auto& entry : target) {
      if (!patch[entry.first.Scalar()]) merged.force_insert(entry.first, entry.second);
    }
  }
  for (const auto& entry : patch) {
    if (entry.second.IsNull()) continue;
    const YAML::Node old = target && target.IsMap() ? target[entry.first.Scalar()] : YAML::Node();
    merged.force_insert(entry.first, MergePatch(old, entry.second));
  }
  return merged;
}

absl::StatusOr<YAML::Node> ApplyMeshPolicies(const std::vector<MeshPolicy>& ordered,
                                             const std::string& name, const YAML::Node& upstream,
                                             const std::string& source) {
  const YAML::Node base =
      Merged(ordered, name, upstream, [](const MeshPolicy& p) { return p.rank == 0; });
  std::vector<core::ClientSelector> selectors;
  for (const MeshPolicy& p : ordered) {
    if (p.rank > 0 && Selects(p, name) &&
        std::find(selectors.begin(), selectors.end(), p.clients) == selectors.end()) {
      selectors.push_back(p.clients);
    }
  }
  if (selectors.empty()) return base;
  if (upstream["clientConfigs"]) {
    return FieldError(source, upstream["clientConfigs"], "clientConfigs",
                      absl::StrCat("upstream ", name, " also gets client configurations from ",
                                   kKind, " resources: write them in one place"));
  }
  auto sets = ClientSets(std::move(selectors), source, name);
  if (!sets.ok()) return sets.status();
  YAML::Node configs(YAML::NodeType::Sequence);
  for (const core::ClientSelector& clients : *sets) {
    configs.push_back(ClientEntry(clients, Merged(ordered, name, base, [&](const MeshPolicy& p) {
                                    return p.rank > 0 && Within(clients, p.clients);
                                  })));
  }
  YAML::Node patch(YAML::NodeType::Map);
  patch.force_insert("clientConfigs", configs);
  return MergePatch(base, patch);
}

}  // namespace picker::config
