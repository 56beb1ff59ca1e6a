// A shared_ptr that one thread can replace while others read it.
//
// Why not std::atomic<std::shared_ptr<T>>: libstdc++ 12 (Debian 12's g++)
// unlocks its internal spin lock with a relaxed store after load() has read
// the pointer, so that read is not ordered before the next store()'s write. By
// the C++ memory model that is a data race (ThreadSanitizer reports it on
// every concurrent load/store, google/sanitizers#1558), and on weakly ordered
// CPUs a load could pair the new pointer with the old reference count. This
// cell keeps the same shape (a spin lock around a pointer copy) with acquire
// and release ordering, so it is correct and ThreadSanitizer understands it.
#ifndef PICKER_SERVER_CORE_SHARED_PTR_CELL_H_
#define PICKER_SERVER_CORE_SHARED_PTR_CELL_H_

#include <atomic>
#include <memory>
#include <thread>
#include <utility>

namespace picker::core {

template <typename T>
class SharedPtrCell {
 public:
  SharedPtrCell() = default;
  SharedPtrCell(const SharedPtrCell&) = delete;
  SharedPtrCell& operator=(const SharedPtrCell&) = delete;

  std::shared_ptr<T> load() const {
    Lock();
    std::shared_ptr<T> copy = value_;
    Unlock();
    return copy;
  }

  void store(std::shared_ptr<T> value) {
    Lock();
    value_.swap(value);
    Unlock();
    // The old value is released here, outside the lock: destroying the last
    // reference to a snapshot can take a while.
  }

 private:
  void Lock() const {
    // The critical sections are a pointer copy: spin briefly, then yield so
    // a preempted holder on a small machine can finish.
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  void Unlock() const { locked_.store(false, std::memory_order_release); }

  mutable std::atomic<bool> locked_{false};
  std::shared_ptr<T> value_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_SHARED_PTR_CELL_H_
