// PickRequest.attributes as the hash policies read them, without copies,
// and a PickRequest as the data plane's PickInput (Pick and ExplainPick).
#ifndef PICKER_SERVER_API_ATTRIBUTES_H_
#define PICKER_SERVER_API_ATTRIBUTES_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "picker/v1/picker.pb.h"
#include "server/core/hash/hash_policy.h"
#include "server/data/data_plane.h"

namespace picker::api {

using AttributeMap = google::protobuf::Map<std::string, std::string>;

inline std::optional<std::string_view> LookupAttribute(const AttributeMap& map,
                                                       std::string_view key) {
  auto it = map.find(std::string(key));
  if (it == map.end()) return std::nullopt;
  return std::string_view(it->second);
}

// The hash policies' view of PickRequest.attributes, and the per-client
// configurations' view of its client_tags, without copies.
class AttributesView final : public core::RequestAttributesView, public core::ClientTagsView {
 public:
  explicit AttributesView(const v1::PickRequest& request)
      : a_(request.attributes()), tags_(request.client_tags()) {}

  std::optional<std::string_view> Tag(std::string_view key) const override {
    return LookupAttribute(tags_, key);
  }
  std::optional<std::string_view> Header(std::string_view lower_case_name) const override {
    if (auto exact = LookupAttribute(a_.headers(), lower_case_name)) return exact;
    // Header names are case-insensitive; clients may send them in any case.
    for (const auto& [name, value] : a_.headers()) {
      if (absl::EqualsIgnoreCase(
              name, absl::string_view(lower_case_name.data(), lower_case_name.size()))) {
        return std::string_view(value);
      }
    }
    return std::nullopt;
  }
  std::optional<std::string_view> Cookie(std::string_view name) const override {
    return LookupAttribute(a_.cookies(), name);
  }
  std::optional<std::string_view> QueryParameter(std::string_view name) const override {
    return LookupAttribute(a_.query_params(), name);
  }
  std::optional<std::string_view> FilterState(std::string_view key) const override {
    return LookupAttribute(a_.filter_state(), key);
  }
  std::string_view SourceIp() const override { return a_.source_ip(); }

 private:
  const v1::RequestAttributes& a_;
  const AttributeMap& tags_;
};

// Most entries in each map of PickRequest.attributes, as Envoy's default
// max_headers_count (100). With the data port's request limit
// (--max-data-message-bytes) it bounds what one pick makes picker parse and
// what a hash policy's case-insensitive header lookup scans.
inline constexpr int kMaxAttributeEntries = 100;

// INVALID_ARGUMENT naming the map that holds more than kMaxAttributeEntries.
inline absl::Status CheckAttributes(const v1::PickRequest& request) {
  const v1::RequestAttributes& a = request.attributes();
  if (request.client_tags_size() > kMaxAttributeEntries) {
    return absl::InvalidArgumentError(absl::StrCat("client_tags: at most ", kMaxAttributeEntries,
                                                   " entries, got ", request.client_tags_size()));
  }
  for (const auto& [field, map] : {std::pair{"attributes.headers", &a.headers()},
                                   std::pair{"attributes.cookies", &a.cookies()},
                                   std::pair{"attributes.query_params", &a.query_params()},
                                   std::pair{"attributes.filter_state", &a.filter_state()}}) {
    if (map->size() > kMaxAttributeEntries) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": at most ", kMaxAttributeEntries, " entries, got ", map->size()));
    }
  }
  return absl::OkStatus();
}

// The data plane's input for `request`; `attributes` must outlive it.
inline data::PickInput PickInputOf(const v1::PickRequest& request,
                                   const AttributesView& attributes) {
  data::PickInput input;
  input.upstream = request.upstream();
  input.attributes = &attributes;
  input.client_zone = request.client_zone();
  input.client_service = request.client_service();
  input.client_tags = &attributes;
  input.exclude = absl::MakeConstSpan(request.exclude().data(), request.exclude().size());
  if (request.has_hash()) input.hash = request.hash();
  return input;
}

}  // namespace picker::api

#endif  // PICKER_SERVER_API_ATTRIBUTES_H_
