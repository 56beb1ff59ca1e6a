#ifndef PICKER_SERVER_CORE_THREAD_NAME_H_
#define PICKER_SERVER_CORE_THREAD_NAME_H_

#include <pthread.h>

namespace picker::core {

// Names the calling thread as `top -H`, `perf` and debuggers show it (Linux
// keeps 15 characters). picker's own threads carry names so that an
// operator can tell the admin writer or the health prober from gRPC's.
inline void NameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_THREAD_NAME_H_
