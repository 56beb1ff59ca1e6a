// Kong Gateway's upstream and target entities, mapped onto picker's core
// configuration: what the Kong-shaped Admin API (kong_admin.h) reads from a
// request body and writes in its answers.
//
//   KongFields body = ...;                       // form or JSON, see ParseKongBody
//   core::UpstreamConfig config = KongDefaultUpstream();
//   absl::Status ok = ApplyKongUpstream(body, config);   // "algorithm: expected one of: ..."
//   http::JsonWriter json;
//   WriteKongUpstream(config, times, json);
//
// The mapping (README, "Kong's Admin API"): `algorithm` round-robin,
// least-connections and consistent-hashing are RoundRobin, LeastRequest and
// RingHash; `slots` is the ring's size; `hash_on`/`hash_fallback` header,
// cookie, ip and query_arg are hash policies, the first terminal when a
// fallback follows; `healthchecks.active` and `.passive` become picker's
// checks where picker has the same knob. A value picker cannot honour is
// an error naming the field, never dropped.
//
// Folder: server/kong is the Kong-shaped HTTP Admin API. It may use
// control/, http/ and core/.
#ifndef PICKER_SERVER_KONG_KONG_ENTITIES_H_
#define PICKER_SERVER_KONG_KONG_ENTITIES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "server/core/config.h"
#include "server/core/record.h"
#include "server/http/http.h"
#include "server/http/json.h"

namespace picker::kong {

// A request body as Kong reads it: JSON, or form fields where a dotted name
// is a nested field (`healthchecks.active.type=http`) and `tags[]` (or a
// repeated name) a list.
using KongFields = google::protobuf::Struct;
absl::StatusOr<KongFields> ParseKongBody(const http::Request& request);

// Kong's default port of a target given without one.
inline constexpr int kKongDefaultPort = 8000;

// The UUID Kong shows for an upstream, and for a target of one: derived
// from the names, so it is the same on every replica and after restarts.
std::string UpstreamId(absl::string_view upstream);
std::string TargetId(absl::string_view upstream, absl::string_view address);
bool LooksLikeUuid(absl::string_view text);

// Copies the fields of `from` that Kong's upstream has no name for (its
// per-client configurations, locality, panic threshold, lease TTL and
// circuit breakers), so that a Kong PUT replaces only what Kong shows.
void KeepPickersOwnFields(const core::UpstreamConfig& from, core::UpstreamConfig& to);

// An upstream as Kong creates it when no field is given: round-robin, no
// health checks (Kong's defaults turn both kinds off).
core::UpstreamConfig KongDefaultUpstream();

// Applies the Kong fields of `body` present in it onto `config` (PATCH: the
// stored configuration; POST and PUT: KongDefaultUpstream). `name` is read
// too. Errors are INVALID_ARGUMENT "<kong field>: <why>".
absl::Status ApplyKongUpstream(const KongFields& body, core::UpstreamConfig& config);

// The upstream as Kong answers it (every field of Kong's schema). A picker
// strategy with no Kong algorithm shows `"algorithm": null` and its name
// in `picker_strategy`.
void WriteKongUpstream(const core::UpstreamConfig& config, const core::Timestamps& times,
                       http::JsonWriter& json);
// "created_at" and "updated_at" in Unix seconds, or null when unknown.
void WriteKongTimes(const core::Timestamps& times, http::JsonWriter& json);

// A target's `target` field: host[:port], Kong's default port when none.
// `weight` (0..65535) when present.
struct KongTarget {
  std::string address;
  std::optional<uint32_t> weight;
  std::optional<std::vector<std::string>> tags;  // Unset: the body has none.
};
absl::StatusOr<KongTarget> ReadKongTarget(const KongFields& body, bool target_required);

// `tags` of a body (a JSON array, a form's "a,b" or repeated tags[]), or
// nullopt when absent; null is no tags. Checked as core::ValidateTags.
absl::StatusOr<std::optional<std::vector<std::string>>> ReadKongTags(const KongFields& body);
// "tags": null for none, as Kong answers, else the list.
void WriteKongTags(const std::vector<std::string>& tags, http::JsonWriter& json);

void WriteKongTarget(absl::string_view upstream, const core::TargetConfig& target,
                     const core::Timestamps& times, http::JsonWriter& json);

}  // namespace picker::kong

#endif  // PICKER_SERVER_KONG_KONG_ENTITIES_H_
