// Kong Mesh's MeshLoadBalancingStrategy documents in a config file, in
// both of Kong Mesh's forms, beside picker's own `upstreams:` document:
//
//   type: MeshLoadBalancingStrategy          # Universal
//   name: ring-to-backend
//   mesh: default
//   spec:
//     targetRef: {kind: Mesh}
//     to:
//       - targetRef: {kind: MeshService, name: backend}
//         default:
//           loadBalancer:
//             type: RingHash
//             ringHash:
//               hashPolicies: [{type: Header, header: {name: x-header}}]
//   ---
//   apiVersion: kuma.io/v1alpha1             # Kubernetes
//   kind: MeshLoadBalancingStrategy
//   metadata: {name: least-everywhere, namespace: kuma-system}
//   spec:
//     targetRef: {kind: Mesh}
//     to: [{targetRef: {kind: Mesh}, default: {loadBalancer: {type: LeastRequest}}}]
//
// A policy's `to[].targetRef` selects upstreams: `Mesh` (every upstream the
// file declares) or `MeshService` (the upstream of that name). Policies
// apply in Kong Mesh's order: by their top-level targetRef (Mesh <
// MeshSubset < MeshService < MeshServiceSubset), then by name, and within
// one policy `Mesh` entries before `MeshService` ones. Each `default` is a
// JSON merge patch (RFC 7386: maps merge, lists are replaced, null
// removes) over the upstream's own `loadBalancer` and `localityAwareness`.
//
// The top-level targetRef selects the calling clients: `Mesh` patches the
// upstream's own fields (every client); `MeshSubset` (tags),
// `MeshService` (name) and `MeshServiceSubset` (both) become the
// upstream's `clientConfigs`, one for each set of clients the policies
// tell apart, each holding everything that applies to those clients in
// the order above. `from` is refused, as on Kong Mesh's page.
//
// Folder: server/config owns the file's format. It may use core/ only.
#ifndef PICKER_SERVER_CONFIG_MESH_POLICY_H_
#define PICKER_SERVER_CONFIG_MESH_POLICY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/client.h"
#include "yaml-cpp/yaml.h"

namespace picker::config {

// "<source>:<line>" of `node`. A node without a position (a map a merge
// made) takes its first key's.
std::string Where(const std::string& source, const YAML::Node& node);

// "<source>:<line>: <field>: <why>", INVALID_ARGUMENT: how every error of
// the file reads.
absl::Status FieldError(const std::string& source, const YAML::Node& node, absl::string_view field,
                        absl::string_view why);

// Every document of `text` (null for an empty one), each read on its own
// with the lines of the file, so that positions are the file's. At most
// kMaxDocuments.
inline constexpr size_t kMaxDocuments = 1000;
absl::StatusOr<std::vector<YAML::Node>> LoadDocuments(const std::string& text,
                                                      const std::string& source);

// True for a document in either form of MeshLoadBalancingStrategy (or one
// that means to be a Kong Mesh resource: it has `apiVersion` or `type`).
bool IsMeshResource(const YAML::Node& document);

// One `to` entry of a policy: the upstream it selects ("" for all) and its
// `default`.
struct MeshPolicyTo {
  std::string upstream;
  YAML::Node patch;
  YAML::Node where;  // The entry's targetRef, for errors.
};

struct MeshPolicy {
  std::string name;
  std::string mesh;
  int rank = 0;                  // Of the top-level targetRef: Mesh 0 .. MeshServiceSubset 3.
  core::ClientSelector clients;  // Empty for Mesh.
  std::vector<MeshPolicyTo> to;  // Mesh entries first.
};

// Reads one resource document; an error names the file, line and field.
absl::StatusOr<MeshPolicy> ReadMeshPolicy(const YAML::Node& document, const std::string& source);

// Sorts `policies` into the order they apply in, and checks that they name
// one mesh and only upstreams in `declared` (the file's upstream names).
absl::Status OrderMeshPolicies(std::vector<MeshPolicy>& policies,
                               const std::vector<std::string>& declared, const std::string& source);

// `upstream` (a declaration of picker's file, named `name`) with the
// policies that select it merged into its `loadBalancer` and
// `localityAwareness`, and into `clientConfigs` for those that select
// clients. Nodes keep the positions they were written at.
absl::StatusOr<YAML::Node> ApplyMeshPolicies(const std::vector<MeshPolicy>& ordered,
                                             const std::string& name, const YAML::Node& upstream,
                                             const std::string& source);

// RFC 7386's merge patch of `patch` onto `target`; neither is changed.
YAML::Node MergePatch(const YAML::Node& target, const YAML::Node& patch);

}  // namespace picker::config

#endif  // PICKER_SERVER_CONFIG_MESH_POLICY_H_
