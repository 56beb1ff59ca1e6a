// Envoy's earliest-deadline-first scheduler (source/common/upstream/
// edf_scheduler.h), the engine of weighted round robin and weighted least
// request, over host indices instead of weak pointers.
//
// Each entry has a deadline `current_time + 1 / weight`; a pick pops the
// earliest deadline (ties broken by insertion order) and re-inserts that host
// with the weight it has now. The heap is allocated once, at build, and keeps
// exactly one entry per host afterwards, so picks never allocate.
//
// Not thread-safe: the owning strategy serialises picks.
#ifndef PICKER_SERVER_CORE_STRATEGY_EDF_SCHEDULER_H_
#define PICKER_SERVER_CORE_STRATEGY_EDF_SCHEDULER_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace picker::core {

class EdfScheduler {
 public:
  EdfScheduler() = default;

  // Envoy's EdfScheduler::createWithPicks: the state an empty scheduler would
  // reach after adding hosts 0..n-1 in order and picking `picks` times, built
  // in O(n log n) rather than O(picks). `weight(i)` must be > 0. Seeding with
  // a per-instance random `picks` is how Envoy staggers its workers.
  template <class WeightFn>
  static EdfScheduler CreateWithPicks(uint32_t host_count, WeightFn weight, uint32_t picks);

  // Pops the host with the earliest deadline and re-inserts it with
  // `weight(host)` evaluated now. Returns the host.
  template <class WeightFn>
  uint32_t PickAndAdd(WeightFn weight);

  bool empty() const { return heap_.empty(); }
  size_t memory_bytes() const { return heap_.capacity() * sizeof(Entry); }

  // One host's place in the schedule; a schedule holds one per host.
  struct Entry {
    double deadline;
    // Tie breaker between equal deadlines: first inserted, first picked.
    uint64_t order_offset;
    uint32_t host;
  };

 private:
  // std heap functions build a max-heap; "less" here means "later", so the
  // front is the earliest deadline.
  static bool Later(const Entry& a, const Entry& b) {
    // Deadlines are positive, and the bits of positive doubles order as the
    // doubles do: one 128-bit comparison, without branches, decides both.
    using Key = unsigned __int128;
    const Key ka = (Key{std::bit_cast<uint64_t>(a.deadline)} << 64) | a.order_offset;
    const Key kb = (Key{std::bit_cast<uint64_t>(b.deadline)} << 64) | b.order_offset;
    return ka > kb;
  }

  double current_time_ = 0;
  uint64_t order_offset_ = 0;
  std::vector<Entry> heap_;
};

template <class WeightFn>
EdfScheduler EdfScheduler::CreateWithPicks(uint32_t host_count, WeightFn weight, uint32_t picks) {
  EdfScheduler scheduler;
  if (host_count == 0) return scheduler;
  // Envoy bounds the emulated picks (UINT32_MAX / 10).
  picks = picks % 429496729;
  // Envoy adds 1e-13 to every weight during the emulation so that weights
  // that are multiples of each other do not produce deadlines that differ
  // from sequential picking only by rounding. Each weight is read once, as
  // Envoy does: LeastRequest's weights follow live active-request counters,
  // and a weight that changed between the sum and the split would leave up
  // to `picks` (hundreds of millions) for the sequential loop below.
  std::vector<double> weights(host_count);
  double weights_sum = 0.0;
  for (uint32_t i = 0; i < host_count; ++i) {
    weights[i] = weight(i) + 1e-13;
    weights_sum += weights[i];
  }

  scheduler.heap_.reserve(host_count);
  uint32_t picks_so_far = 0;
  double max_pick_time = 0.0;
  for (uint32_t i = 0; i < host_count; ++i) {
    const double w = weights[i];
    // floor(P * w_i / W): the picks host i certainly had.
    uint32_t floor_picks = static_cast<uint32_t>(w * picks / weights_sum);
    // Where floating point disagrees with the maths (floor(A*B) > A*B),
    // Envoy gives back one pick and lets the sequential step redo it.
    if (floor_picks > 0 && floor_picks / w >= picks / weights_sum) --floor_picks;
    const double pick_time = floor_picks / w;
    const double deadline = (floor_picks + 1) / w;
    scheduler.heap_.push_back(Entry{deadline, i, i});
    max_pick_time = std::max(max_pick_time, pick_time);
    picks_so_far += floor_picks;
  }
  std::make_heap(scheduler.heap_.begin(), scheduler.heap_.end(), Later);
  scheduler.current_time_ = max_pick_time;
  scheduler.order_offset_ = host_count;
  // The leftover picks (fewer than host_count) one at a time, with the
  // unaugmented weights, as Envoy.
  while (picks_so_far < picks) {
    scheduler.PickAndAdd(weight);
    ++picks_so_far;
  }
  return scheduler;
}

template <class WeightFn>
uint32_t EdfScheduler::PickAndAdd(WeightFn weight) {
  // Envoy pops the front and pushes the host back. Here the front entry gets
  // its new deadline in place and sinks to where it belongs: one pass down
  // the heap instead of a pass down and a pass up. The pick order is the
  // same, because (deadline, order_offset) orders entries totally and so
  // the earliest entry does not depend on the heap's layout.
  Entry moved = heap_.front();
  const uint32_t host = moved.host;
  current_time_ = moved.deadline;
  moved.deadline = current_time_ + 1.0 / weight(host);
  moved.order_offset = order_offset_++;

  const size_t size = heap_.size();
  Entry* const heap = heap_.data();
  size_t hole = 0;
  for (size_t child = 1; child < size; child = 2 * hole + 1) {
    // The earlier of the two children, chosen without a branch: which one
    // it is varies pick to pick and would be mispredicted half the time.
    if (child + 1 < size) child += Later(heap[child], heap[child + 1]);
    if (!Later(moved, heap[child])) break;
    heap[hole] = heap[child];
    hole = child;
  }
  heap[hole] = moved;
  return host;
}

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_STRATEGY_EDF_SCHEDULER_H_
