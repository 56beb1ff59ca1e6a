#include "server/core/preview.h"

#include <algorithm>
#include <map>

#include "server/core/strategy/maglev.h"
#include "server/core/strategy/ring_hash.h"

namespace picker::core {
namespace {

constexpr double kHashSpace = 18446744073709551616.0;  // 2^64

// The address of the target behind host `h` of the snapshot's strategy.
const std::string& AddressOf(const UpstreamSnapshot& s, uint32_t h) {
  return s.targets()[s.all_hosts().pickable[h]].config.address;
}

using Moves = std::map<std::pair<std::string, std::string>, double>;

// Two rings: the owner of a hash is the host of the first entry at or after
// it, so the owners of both are constant between consecutive entry hashes
// of either ring. Walks the merged entries once.
void MovedOnRings(const UpstreamSnapshot& a, const HashRing& ra, const UpstreamSnapshot& b,
                  const HashRing& rb, Moves& moves) {
  const std::vector<uint64_t>& ha = ra.hashes();
  const std::vector<uint64_t>& hb = rb.hashes();
  auto owner = [](const UpstreamSnapshot& s, const HashRing& r, size_t i) -> std::string {
    if (r.size() == 0) return "";
    return AddressOf(s, r.hosts()[i == r.size() ? 0 : i]);
  };
  size_t i = 0, j = 0;
  double previous = 0;  // The arc ends at each boundary; the first starts at 0.
  while (i < ha.size() || j < hb.size()) {
    const uint64_t point =
        std::min(i < ha.size() ? ha[i] : UINT64_MAX, j < hb.size() ? hb[j] : UINT64_MAX);
    const double length = static_cast<double>(point) - previous;
    const std::string from = owner(a, ra, i), to = owner(b, rb, j);
    if (from != to && length > 0) moves[{from, to}] += length / kHashSpace;
    previous = static_cast<double>(point);
    if (i < ha.size() && ha[i] == point) ++i;
    if (j < hb.size() && hb[j] == point) ++j;
  }
  // Past the last entry of both, the hash wraps to each ring's first entry.
  const std::string from = owner(a, ra, 0), to = owner(b, rb, 0);
  if (from != to) moves[{from, to}] += (kHashSpace - previous) / kHashSpace;
}

// Each address's share of the table's slots.
std::map<std::string, double> SlotShares(const UpstreamSnapshot& s, const MaglevTable& t) {
  std::map<std::string, double> shares;
  const std::vector<uint64_t>& per_host = t.entries_per_host();
  const bool degenerate = t.slot_bytes() == 0;
  for (uint32_t h = 0; h < per_host.size(); ++h) {
    shares[AddressOf(s, h)] +=
        degenerate ? 1.0 : static_cast<double>(per_host[h]) / static_cast<double>(t.table_size());
  }
  return shares;
}

void MovedOnTables(const UpstreamSnapshot& a, const MaglevTable& ta, const UpstreamSnapshot& b,
                   const MaglevTable& tb, Moves& moves) {
  const bool a_empty = ta.entries_per_host().empty(), b_empty = tb.entries_per_host().empty();
  if (a_empty || b_empty) {
    // Everything moves from nothing, or to nothing.
    for (const auto& [address, share] : SlotShares(a_empty ? b : a, a_empty ? tb : ta)) {
      moves[a_empty ? std::pair{std::string(), address} : std::pair{address, std::string()}] +=
          share;
    }
    return;
  }
  if (ta.table_size() == tb.table_size()) {
    const double slot = 1.0 / static_cast<double>(ta.table_size());
    for (uint64_t i = 0; i < ta.table_size(); ++i) {
      const std::string& from = AddressOf(a, ta.SlotHost(i));
      const std::string& to = AddressOf(b, tb.SlotHost(i));
      if (from != to) moves[{from, to}] += slot;
    }
    return;
  }
  // Sizes are distinct primes: by the Chinese remainder theorem a uniform
  // hash's residues modulo each are independent.
  const std::map<std::string, double> sa = SlotShares(a, ta), sb = SlotShares(b, tb);
  for (const auto& [from, pa] : sa) {
    for (const auto& [to, pb] : sb) {
      if (from != to) moves[{from, to}] += pa * pb;
    }
  }
}

std::optional<HashSpaceChange> HashSpace(const UpstreamSnapshot* before,
                                         const UpstreamSnapshot* after) {
  if (before == nullptr || after == nullptr) return std::nullopt;
  const Strategy* sa = before->all_hosts().strategy.strategy.get();
  const Strategy* sb = after->all_hosts().strategy.strategy.get();
  Moves moves;
  const auto* ra = dynamic_cast<const RingHashStrategy*>(sa);
  const auto* rb = dynamic_cast<const RingHashStrategy*>(sb);
  const auto* ma = dynamic_cast<const MaglevStrategy*>(sa);
  const auto* mb = dynamic_cast<const MaglevStrategy*>(sb);
  if (ra != nullptr && rb != nullptr) {
    MovedOnRings(*before, ra->ring(), *after, rb->ring(), moves);
  } else if (ma != nullptr && mb != nullptr) {
    MovedOnTables(*before, ma->table(), *after, mb->table(), moves);
  } else {
    return std::nullopt;
  }
  HashSpaceChange change;
  for (const auto& [pair, share] : moves) {
    change.moved += share;
    change.moves.push_back({pair.first, pair.second, share});
  }
  std::stable_sort(
      change.moves.begin(), change.moves.end(),
      [](const HashSpaceMove& x, const HashSpaceMove& y) { return x.share > y.share; });
  return change;
}

}  // namespace

std::vector<std::pair<std::string, double>> PickShares(const UpstreamSnapshot& snapshot) {
  std::vector<std::pair<std::string, double>> shares;
  double total = 0;
  for (uint32_t t : snapshot.all_hosts().pickable) total += snapshot.targets()[t].config.weight;
  for (const SnapshotTarget& target : snapshot.targets()) {
    shares.emplace_back(target.config.address, 0.0);
  }
  for (uint32_t t : snapshot.all_hosts().pickable) {
    shares[t].second = snapshot.targets()[t].config.weight / total;
  }
  return shares;
}

ChangePreview PreviewSnapshots(const UpstreamSnapshot* before, const UpstreamSnapshot* after) {
  ChangePreview preview;
  std::map<std::string, size_t> index;
  auto entry = [&](const std::string& address) -> TargetShareChange& {
    auto [it, fresh] = index.emplace(address, preview.targets.size());
    if (fresh) preview.targets.push_back({address});
    return preview.targets[it->second];
  };
  if (before != nullptr) {
    for (const auto& [address, share] : PickShares(*before)) {
      TargetShareChange& t = entry(address);
      t.before = share;
      t.present_before = true;
    }
  }
  if (after != nullptr) {
    for (const auto& [address, share] : PickShares(*after)) {
      TargetShareChange& t = entry(address);
      t.after = share;
      t.present_after = true;
    }
  }
  preview.hash_space = HashSpace(before, after);
  return preview;
}

}  // namespace picker::core
