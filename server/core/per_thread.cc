#include "server/core/per_thread.h"

#include <atomic>

namespace picker::core {

size_t ThreadSlot() {
  // Threads take slots in the order they first ask; only that first call
  // touches the shared counter.
  static std::atomic<size_t> next{0};
  thread_local const size_t slot = next.fetch_add(1, std::memory_order_relaxed) % kThreadSlots;
  return slot;
}

}  // namespace picker::core
