#include "server/core/client.h"

namespace picker::core {

std::optional<std::string_view> Client::Tag(std::string_view key) const {
  if (tags != nullptr) {
    if (std::optional<std::string_view> value = tags->Tag(key)) return value;
  }
  if (key == kZoneTag && !zone.empty()) return zone;
  return std::nullopt;
}

bool ClientSelector::Matches(const Client& client) const {
  if (service.empty() && tags.empty()) return false;
  if (!service.empty() && client.service != service) return false;
  for (const auto& [key, value] : tags) {
    std::optional<std::string_view> has = client.Tag(key);
    if (!has || *has != value) return false;
  }
  return true;
}

}  // namespace picker::core
