// A lock for critical sections of a few dozen nanoseconds.
//
// A std::mutex costs two atomic read-modify-writes per lock and unlock and
// puts a waiter to sleep in the kernel; for a pointer copy or one step of an
// EDF heap, both cost more than the work they protect. This lock takes one
// exchange and releases with a plain store. A waiter spins briefly, then
// yields, so that a holder preempted on a small machine can finish.
//
// Meets the BasicLockable requirements, so std::lock_guard works with it.
#ifndef PICKER_SERVER_CORE_SPIN_LOCK_H_
#define PICKER_SERVER_CORE_SPIN_LOCK_H_

#include <atomic>
#include <thread>

namespace picker::core {

class SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      // Wait on a plain load, which keeps the cache line shared, rather than
      // on repeated exchanges, which would bounce it between cores.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_SPIN_LOCK_H_
