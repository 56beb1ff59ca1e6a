// A request's attributes held in maps: the one fake of
// core::RequestAttributesView for tests, fuzzers and benchmarks.
#ifndef PICKER_TESTS_SUPPORT_FAKE_REQUEST_H_
#define PICKER_TESTS_SUPPORT_FAKE_REQUEST_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "server/core/hash/hash_policy.h"

namespace picker::core::testing {

class FakeRequest final : public RequestAttributesView {
 public:
  // std::less<> looks names up as string_views, without a copy: the
  // strategy benchmark evaluates header policies against this fake.
  using Map = std::map<std::string, std::string, std::less<>>;

  Map headers;  // Lower-case names.
  Map cookies;
  Map query;
  Map filter_state;
  std::string source_ip;

  std::optional<std::string_view> Header(std::string_view name) const override {
    return Find(headers, name);
  }
  std::optional<std::string_view> Cookie(std::string_view name) const override {
    return Find(cookies, name);
  }
  std::optional<std::string_view> QueryParameter(std::string_view name) const override {
    return Find(query, name);
  }
  std::optional<std::string_view> FilterState(std::string_view key) const override {
    return Find(filter_state, key);
  }
  std::string_view SourceIp() const override { return source_ip; }

 private:
  static std::optional<std::string_view> Find(const Map& map, std::string_view key) {
    auto it = map.find(key);
    if (it == map.end()) return std::nullopt;
    return std::string_view(it->second);
  }
};

}  // namespace picker::core::testing

#endif  // PICKER_TESTS_SUPPORT_FAKE_REQUEST_H_
