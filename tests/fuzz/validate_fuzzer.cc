// Fuzzes the path every admin request takes: bytes parsed as the Upstream
// and Target messages, translated to the core's types, validated, and, when
// valid, built into a snapshot and picked from. Nothing may crash, and a
// translated configuration must survive a round trip through the proto.
#include <cstddef>
#include <cstdint>

#include "picker/v1/admin.pb.h"
#include "server/api/convert.h"
#include "server/core/address.h"
#include "server/core/validate.h"
#include "tests/support/local_picker.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  picker::v1::ReplaceTargetsRequest request;
  picker::v1::Upstream upstream;
  // The first byte splits the input between the two messages.
  if (size < 1) return 0;
  const size_t split = 1 + (size - 1) * data[0] / 256;
  if (!upstream.ParseFromArray(data + 1, static_cast<int>(split - 1))) return 0;
  if (!request.ParseFromArray(data + split, static_cast<int>(size - split))) return 0;

  absl::StatusOr<picker::core::UpstreamConfig> config = picker::api::FromProto(upstream);
  if (!config.ok() || !picker::core::ValidateUpstreamConfig(*config).ok()) return 0;
  // Round trip: what Get answers must translate back to the same thing.
  absl::StatusOr<picker::core::UpstreamConfig> again =
      picker::api::FromProto(picker::api::ToProto(*config));
  if (!again.ok() || !(*again == *config)) __builtin_trap();

  // Keep builds cheap: huge rings and tables are valid but slow to build.
  if (config->load_balancer.min_ring_size > 4096 || config->load_balancer.table_size > 4099) {
    return 0;
  }
  std::vector<picker::core::TargetConfig> targets;
  for (int i = 0; i < request.targets_size() && i < 64; ++i) {
    absl::StatusOr<picker::core::TargetConfig> t =
        picker::api::FromProto(request.targets(i), "targets");
    if (t.ok()) targets.push_back(*t);
  }
  picker::core::MemoryStore store;
  picker::testing::LocalPicker picker(store);
  if (!picker.CreateUpstream(*config).ok()) __builtin_trap();
  if (!picker.ReplaceTargets(config->name, targets).ok()) return 0;
  for (int i = 0; i < 4; ++i) {
    picker::testing::PickInput input;
    input.upstream = config->name;
    input.hash = i * 0x9e3779b97f4a7c15ULL;
    auto pick = picker.Pick(input);
    if (pick.ok()) {
      (void)picker.Release(config->name, pick->lease_id, picker::testing::Outcome::kFailure,
                           std::nullopt);
    }
  }
  return 0;
}
