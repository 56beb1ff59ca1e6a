#include "server/overload/overload_manager.h"

#include <malloc.h>

#include "server/core/thread_name.h"
#include "spdlog/spdlog.h"

namespace picker::overload {

// Defined by a sanitizer's runtime when one is linked in, whose allocator
// replaces glibc's: mallinfo2 would then see nothing (a weak symbol, null
// in a plain build).
extern "C" size_t __sanitizer_get_current_allocated_bytes() __attribute__((weak));

uint64_t AllocatedBytes() {
  if (__sanitizer_get_current_allocated_bytes != nullptr) {
    return __sanitizer_get_current_allocated_bytes();
  }
  const struct mallinfo2 info = ::mallinfo2();
  return static_cast<uint64_t>(info.uordblks) + static_cast<uint64_t>(info.hblkhd);
}

OverloadManager::OverloadManager(core::ProcessStats& stats, uint64_t max_memory,
                                 std::chrono::milliseconds period)
    : stats_(stats) {
  stats_.max_memory = max_memory;
  if (max_memory == 0) return;
  Sample();
  thread_ = std::thread([this, period] { Loop(period); });
}

OverloadManager::~OverloadManager() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OverloadManager::Loop(std::chrono::milliseconds period) {
  core::NameThisThread("overload");
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period, [this] { return stopping_; })) {
    lock.unlock();
    Sample();
    lock.lock();
  }
}

void OverloadManager::Sample() {
  const uint64_t in_use = AllocatedBytes();
  stats_.memory_in_use.store(in_use, std::memory_order_relaxed);
  const bool over = in_use > stats_.max_memory;
  // Written only on a change: picks on every core read this line.
  if (over == stats_.overloaded.load(std::memory_order_relaxed)) return;
  stats_.overloaded.store(over, std::memory_order_relaxed);
  if (over) {
    spdlog::warn(
        "overload: {} bytes of memory in use, above --max-memory {}: refusing new picks "
        "and admin writes other than deletes",
        in_use, stats_.max_memory);
  } else {
    spdlog::info(
        "overload: {} bytes of memory in use, below --max-memory {} again: serving all "
        "calls",
        in_use, stats_.max_memory);
  }
}

}  // namespace picker::overload
