#include "server/program/program.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "picker/version.h"

namespace picker::program {

std::vector<char*> NormalizeFlagNames(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (std::string& arg : storage) {
    if (arg == "--") break;
    if (arg.size() < 3 || arg[0] != '-' || arg[1] != '-') continue;
    const size_t end = std::min(arg.find('='), arg.size());
    std::replace(arg.begin() + 2, arg.begin() + end, '-', '_');
  }
  std::vector<char*> out;
  for (std::string& arg : storage) out.push_back(arg.data());
  return out;
}

std::string VersionLine(absl::string_view program) {
  return absl::StrCat(program, " ", PICKER_VERSION);
}

absl::StatusOr<int> ParseLogLevel(absl::string_view level) {
  static constexpr const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                            "error", "critical", "off"};
  for (int i = 0; i < 7; ++i) {
    if (level == kLevels[i]) return i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--log-level: must be trace, debug, info, warn, error, critical or off, got \"",
                   level, "\""));
}

void ParseCommandLine(int argc, char** argv, absl::string_view program, absl::string_view about) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--version" || arg == "-version") {
      std::printf("%s\n", VersionLine(program).c_str());
      std::exit(0);
    }
    if (arg != "--help" && arg != "-help" && arg != "-h" && arg != "--helpfull") continue;
    std::printf("%.*s\nFlags:\n", static_cast<int>(about.size()), about.data());
    std::vector<std::pair<std::string, const absl::CommandLineFlag*>> flags;
    for (const auto& [name, flag] : absl::GetAllFlags()) {
      if (!absl::StrContains(flag->Filename(), program)) continue;
      std::string dashed(name);
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      flags.emplace_back(std::move(dashed), flag);
    }
    std::sort(flags.begin(), flags.end());
    for (const auto& [name, flag] : flags) {
      std::printf("  --%s (default: %s)\n      %s\n", name.c_str(), flag->DefaultValue().c_str(),
                  flag->Help().c_str());
    }
    std::exit(0);
  }
  absl::SetProgramUsageMessage(absl::StrCat(program, " [flags]; see --help"));
  std::vector<std::string> storage;
  std::vector<char*> args = NormalizeFlagNames(argc, argv, storage);
  absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
}

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace picker::program

namespace picker::program {

DescriptorLimit RaiseDescriptorLimit() {
  DescriptorLimit limit;
  rlimit current{};
  if (::getrlimit(RLIMIT_NOFILE, &current) != 0) return limit;
  limit.soft_before = limit.soft = current.rlim_cur;
  limit.hard = current.rlim_max;
  if (current.rlim_cur < current.rlim_max) {
    rlimit raised = current;
    raised.rlim_cur = current.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit.soft = raised.rlim_cur;
  }
  return limit;
}

}  // namespace picker::program
