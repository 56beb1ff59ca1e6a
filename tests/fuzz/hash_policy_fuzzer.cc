// Fuzzes hash-policy evaluation over arbitrary request attributes: the input
// is cut into policies and attribute values; evaluation must not crash and
// must be deterministic.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "server/core/hash/hash_policy.h"
#include "tests/support/fake_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Fields are separated by 0xff bytes: policies "k<kind>name" first, then
  // "<map>key=value" attributes.
  std::vector<std::string> fields(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0xff) {
      fields.emplace_back();
    } else {
      fields.back().push_back(static_cast<char>(data[i]));
    }
  }
  std::vector<picker::core::HashPolicy> policies;
  picker::core::testing::FakeRequest attributes;
  for (const std::string& f : fields) {
    if (f.size() < 2) continue;
    const std::string rest = f.substr(2);
    if (f[0] == 'k') {
      picker::core::HashPolicy p;
      p.kind = static_cast<picker::core::HashPolicy::Kind>(static_cast<uint8_t>(f[1]) % 5);
      p.terminal = (f[1] & 0x10) != 0;
      p.name = rest;
      if (f[1] & 0x20) p.cookie_ttl = picker::core::Millis((f[1] & 0x40) ? 1000 : 0);
      policies.push_back(p);
      continue;
    }
    const size_t eq = rest.find('=');
    const std::string key = rest.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : rest.substr(eq + 1);
    switch (f[1] % 5) {
      case 0:
        attributes.headers[key] = value;
        break;
      case 1:
        attributes.cookies[key] = value;
        break;
      case 2:
        attributes.query[key] = value;
        break;
      case 3:
        attributes.filter_state[key] = value;
        break;
      default:
        attributes.source_ip = value;
        break;
    }
  }
  std::vector<picker::core::GeneratedCookie> first_cookies, second_cookies;
  auto first = picker::core::ComputeRequestHash(policies, attributes, "fuzz", &first_cookies);
  auto second = picker::core::ComputeRequestHash(policies, attributes, "fuzz", &second_cookies);
  if (first != second || first_cookies.size() != second_cookies.size()) __builtin_trap();
  return 0;
}
