// Fuzzes the declarative config reader: any text is either a clean error
// naming the source or a list of valid upstreams.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/config/config_file.h"
#include "server/core/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = picker::config::ParseConfig(text, "fuzz.yaml");
  if (!parsed.ok()) {
    if (parsed.status().message().find("fuzz.yaml") == absl::string_view::npos) __builtin_trap();
    return 0;
  }
  for (const auto& upstream : *parsed) {
    if (!picker::core::ValidateUpstreamConfig(upstream.config).ok()) __builtin_trap();
  }
  return 0;
}
