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

#include <memory>
#include <mutex>
#include <utility>

#include "server/core/spin_lock.h"

namespace picker::core {

template <typename T>
class SharedPtrCell {
 public:
  SharedPtrCell() = default;
  SharedPtrCell(const SharedPtrCell&) = delete;
  SharedPtrCell& operator=(const SharedPtrCell&) = delete;

  std::shared_ptr<T> load() const {
    std::lock_guard<SpinLock> lock(lock_);
    return value_;
  }

  void store(std::shared_ptr<T> value) {
    {
      std::lock_guard<SpinLock> lock(lock_);
      value_.swap(value);
    }
    // The old value is released here, outside the lock: destroying the last
    // reference to a snapshot can take a while.
  }

 private:
  // Held for a pointer copy and a reference count increment.
  mutable SpinLock lock_;
  std::shared_ptr<T> value_;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_SHARED_PTR_CELL_H_
