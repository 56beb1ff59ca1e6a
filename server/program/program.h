// What each of picker's programs (picker-server, picker-bench, picker-scale)
// does with its command line and its process before it starts gRPC.
#ifndef PICKER_SERVER_PROGRAM_PROGRAM_H_
#define PICKER_SERVER_PROGRAM_PROGRAM_H_

#include <string>
#include <vector>

namespace picker::program {

// Flags are spelled with dashes (--admin-listen); abseil names them with
// underscores. Rewrites the name part of each "--flag[=value]" argument up
// to a "--"; `storage` owns the rewritten strings the result points into.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage);

// Turns off absl::Mutex deadlock detection. Debian builds abseil without
// NDEBUG, which leaves the detection on: every lock of every absl::Mutex
// (gRPC takes them on each call) then records lock order in a process-wide
// graph under a global lock. Profiles of picker-server under load showed it
// among the hottest functions. Call before any thread starts.
void DisableMutexDeadlockDetection();

}  // namespace picker::program

#endif  // PICKER_SERVER_PROGRAM_PROGRAM_H_
