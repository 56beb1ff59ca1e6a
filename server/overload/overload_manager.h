// The overload manager, in the spirit of Envoy's: a thread samples the
// allocator's bytes in use (glibc's mallinfo2: what is allocated, not the
// resident memory glibc keeps around after frees) and, while they are above
// the limit, sets core::ProcessStats::overloaded. New picks and admin writes
// other than deletes read that flag and answer RESOURCE_EXHAUSTED (counted);
// releases, reads, health and deletes go on, so memory can fall again.
//
//   core::ProcessStats stats;
//   OverloadManager overload(stats, /*max_memory=*/2ull << 30);   // starts sampling
//
// The pick path pays one relaxed load of a flag that is written only when
// the state changes: no lock, no shared write.
//
// Folder: server/overload owns the sampler. It uses core/ only.
#ifndef PICKER_SERVER_OVERLOAD_OVERLOAD_MANAGER_H_
#define PICKER_SERVER_OVERLOAD_OVERLOAD_MANAGER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "server/core/stats.h"

namespace picker::overload {

// The allocator's bytes in use now (mallinfo2: arenas and mmapped chunks;
// under a sanitizer, its own allocator's count).
uint64_t AllocatedBytes();

class OverloadManager {
 public:
  // Starts sampling every `period` into `stats` (which must outlive the
  // manager); `max_memory` 0 leaves it off (no thread).
  OverloadManager(core::ProcessStats& stats, uint64_t max_memory,
                  std::chrono::milliseconds period = std::chrono::milliseconds(100));
  ~OverloadManager();  // Stops sampling.
  OverloadManager(const OverloadManager&) = delete;
  OverloadManager& operator=(const OverloadManager&) = delete;

 private:
  void Loop(std::chrono::milliseconds period);
  void Sample();

  core::ProcessStats& stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace picker::overload

#endif  // PICKER_SERVER_OVERLOAD_OVERLOAD_MANAGER_H_
