// Counts the calls that picker's handlers are serving, so that a drain can
// tell when the last one has ended. gRPC's own Server::Shutdown also waits
// for every client to close its connection, which a client with an idle
// channel (most keep one open) never does on its own.
//
//   calls.Begin();  ...  calls.End();   // per call, on any threads
//   if (calls.calls() == 0) { /* drained */ }
//
// Every call begins and ends here, so the count is kept per thread (a
// Begin and its End may run on different threads; the sum is right).
#ifndef PICKER_SERVER_API_CALL_TRACKER_H_
#define PICKER_SERVER_API_CALL_TRACKER_H_

#include <atomic>
#include <cstdint>

#include "server/core/per_thread.h"

namespace picker::api {

class CallTracker {
 public:
  // A call starts being served; every Begin has one End.
  void Begin() { calls_.Local().fetch_add(1, std::memory_order_relaxed); }
  // The handler is done with the call (a unary answer handed to gRPC, a
  // stream's OnDone).
  void End() { calls_.Local().fetch_sub(1, std::memory_order_release); }

  int64_t calls() const {
    return calls_.Sum(
        [](const std::atomic<int64_t>& c) { return c.load(std::memory_order_acquire); });
  }

 private:
  core::PerThread<std::atomic<int64_t>> calls_;
};

}  // namespace picker::api

#endif  // PICKER_SERVER_API_CALL_TRACKER_H_
