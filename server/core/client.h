// Who is calling: the client a pick names (PickRequest's client_service,
// client_tags and client_zone), and the selectors of an upstream's
// per-client configurations that match it (Kong Mesh's top-level
// targetRef: MeshSubset by tags, MeshService by service, MeshServiceSubset
// by both).
//
//   ClientSelector web{.service = "web", .tags = {{"version", "v2"}}};
//   ClientTags tags(&request_tags);  // A view; see ClientTagsView.
//   bool applies = web.Matches(Client{"web", &tags, "us-east-1"});
#ifndef PICKER_SERVER_CORE_CLIENT_H_
#define PICKER_SERVER_CORE_CLIENT_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace picker::core {

// The tag that a pick's client_zone stands for when its tags lack it.
inline constexpr std::string_view kZoneTag = "kuma.io/zone";

// A pick's client tags, read without copies.
class ClientTagsView {
 public:
  virtual ~ClientTagsView() = default;
  virtual std::optional<std::string_view> Tag(std::string_view key) const = 0;
};

// The client a pick says it comes from. Everything may be empty.
struct Client {
  std::string_view service;
  const ClientTagsView* tags = nullptr;
  std::string_view zone;

  // The value of tag `key`: client_tags' own, else client_zone for
  // kuma.io/zone.
  std::optional<std::string_view> Tag(std::string_view key) const;
};

// Which clients a per-client configuration is for: a client matches when
// its service is `service` (when set) and it has every tag with the value
// given. An empty selector matches nothing (the upstream's own
// configuration is for everyone).
struct ClientSelector {
  std::string service;
  std::vector<std::pair<std::string, std::string>> tags;  // Sorted by key, keys unique.

  bool Matches(const Client& client) const;
  // What it requires: one for the service, one per tag.
  size_t Requirements() const { return (service.empty() ? 0 : 1) + tags.size(); }
  bool operator==(const ClientSelector&) const = default;
};

// Most per-client configurations of one upstream: a pick may check each.
inline constexpr size_t kMaxClientConfigs = 64;

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_CLIENT_H_
