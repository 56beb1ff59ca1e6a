// Per-thread shards of counters that every pick would otherwise update in
// one place, so that picks on different cores never write the same cache
// line. Readers (a metrics scrape, a drain) add the shards up.
//
//   PerThread<std::atomic<int64_t>> calls;
//   calls.Local().fetch_add(1, std::memory_order_relaxed);   // a pick
//   int64_t total = calls.Sum([](auto& c) { return c.load(); });  // a scrape
//
// Each thread gets a slot index the first time it asks (ThreadSlot). There
// are kThreadSlots slots; beyond that many threads, slots are shared, which
// stays correct because shard contents are atomics, only slower.
#ifndef PICKER_SERVER_CORE_PER_THREAD_H_
#define PICKER_SERVER_CORE_PER_THREAD_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>

namespace picker::core {

inline constexpr size_t kThreadSlots = 64;

// This thread's slot, 0..kThreadSlots-1, fixed for the thread's life.
size_t ThreadSlot();

// `T` padded to a cache line of its own.
template <typename T>
struct alignas(64) Padded {
  T value{};
};

template <typename T>
class PerThread {
 public:
  T& Local() { return slots_[ThreadSlot()].value; }
  T& Slot(size_t i) { return slots_[i].value; }
  const T& Slot(size_t i) const { return slots_[i].value; }

  // The sum of `read(shard)` over every shard.
  template <typename Read>
  auto Sum(Read read) const {
    decltype(read(slots_[0].value)) total{};
    for (const Padded<T>& slot : slots_) total += read(slot.value);
    return total;
  }

 private:
  std::array<Padded<T>, kThreadSlots> slots_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_PER_THREAD_H_
