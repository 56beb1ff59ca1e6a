// What a change would do to the picks of one upstream, from the snapshot
// published now and the one the change would publish (PreviewChange).
//
//   ChangePreview p = PreviewSnapshots(before.get(), after.get());
//   // p.targets[i]: share of picks before and after; p.hash_space: the
//   // share of request hashes whose owner changes, and where it goes.
//
// Shares are those of a pick without client_zone: each target's weight over
// the weights of the targets such a pick chooses among (the healthy ones,
// or all of weight > 0 in panic). The moved hash space is computed over the
// ring or table itself, not sampled: for two rings, over the merged arcs;
// for two Maglev tables of one size, slot by slot; for two sizes (distinct
// primes), from each target's slots in each, since hash % M1 and hash % M2
// are then independent. Bounded load is not counted.
#ifndef PICKER_SERVER_CORE_PREVIEW_H_
#define PICKER_SERVER_CORE_PREVIEW_H_

#include <optional>
#include <string>
#include <vector>

#include "server/core/upstream.h"

namespace picker::core {

struct TargetShareChange {
  std::string address;
  double before = 0;
  double after = 0;
  bool present_before = false;
  bool present_after = false;
};

struct HashSpaceMove {
  std::string from;  // Empty: no target.
  std::string to;
  double share = 0;
};

struct HashSpaceChange {
  double moved = 0;
  std::vector<HashSpaceMove> moves;  // Largest first.
};

struct ChangePreview {
  // Host-set order of `before`, then the targets `after` adds.
  std::vector<TargetShareChange> targets;
  // Set when both sides hash with the same strategy (RingHash or Maglev).
  std::optional<HashSpaceChange> hash_space;
};

// Either snapshot may be null (no upstream).
ChangePreview PreviewSnapshots(const UpstreamSnapshot* before, const UpstreamSnapshot* after);

// Each target's share of picks without client_zone, by address.
std::vector<std::pair<std::string, double>> PickShares(const UpstreamSnapshot& snapshot);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_PREVIEW_H_
