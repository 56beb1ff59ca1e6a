// What each of picker's programs (picker-server, picker-bench, picker-scale)
// does with its command line and its process before it starts gRPC.
//
// Folder: server/program owns what programs do at start. It uses abseil
// only.
#ifndef PICKER_SERVER_PROGRAM_PROGRAM_H_
#define PICKER_SERVER_PROGRAM_PROGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace picker::program {

// Flags are spelled with dashes (--admin-listen); abseil names them with
// underscores. Rewrites the name part of each "--flag[=value]" argument up
// to a "--"; `storage` owns the rewritten strings the result points into.
std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage);

// Parses the command line into the flags, spelled with dashes. With --help
// (or -h, -help, --helpfull) anywhere, prints `about` and the program's own
// flags, those defined in files whose name contains `program` (abseil's
// help would list gRPC's and abseil's too), with dashes, and exits 0.
// With --version, prints "<program> <version>" (picker/version.h) and exits 0.
void ParseCommandLine(int argc, char** argv, absl::string_view program, absl::string_view about);

// "<program> <version>", as --version prints it.
std::string VersionLine(absl::string_view program);

// A --log-level value as spdlog's level number (trace 0 ... error 4, off 6);
// INVALID_ARGUMENT naming the flag for anything else (spdlog itself reads
// an unknown name as "off").
absl::StatusOr<int> ParseLogLevel(absl::string_view level);

// Turns off absl::Mutex deadlock detection. Debian builds abseil without
// NDEBUG, which leaves the detection on: every lock of every absl::Mutex
// (gRPC takes them on each call) then records lock order in a process-wide
// graph under a global lock. Profiles of picker-server under load showed it
// among the hottest functions. Call before any thread starts.
void DisableMutexDeadlockDetection();

// The process's descriptor limit (RLIMIT_NOFILE) before and after
// RaiseDescriptorLimit.
struct DescriptorLimit {
  uint64_t soft_before = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// Raises the soft descriptor limit to the hard one (a server's connections
// each take a descriptor; 1024, a common soft default, is soon reached).
DescriptorLimit RaiseDescriptorLimit();

}  // namespace picker::program

#endif  // PICKER_SERVER_PROGRAM_PROGRAM_H_
