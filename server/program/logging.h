// The format of picker-server's log on stderr (--log-format).
//
//   text  spdlog's default pattern, for people:
//         [2026-12-05 04:50:11.883] [picker] [info] audit method=PutTarget ...
//   json  one JSON object per line, for log pipelines:
//         {"time":"2026-12-05T04:50:11.883828+00:00","level":"info",
//          "logger":"picker","msg":"audit method=PutTarget ...","event":"audit",
//          "method":"PutTarget","upstream":"x","result":"OK",
//          "peer":"ipv4:127.0.0.1:41234"}
//
// An audit line's fields (method, upstream, result, peer, error) become JSON
// fields with their escapes undone; "msg" keeps the line as written. Strings
// that are not UTF-8 get U+FFFD in place of each bad byte, so every line is
// valid JSON.
#ifndef PICKER_SERVER_PROGRAM_LOGGING_H_
#define PICKER_SERVER_PROGRAM_LOGGING_H_

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace picker::program {

// Sets the format of every spdlog logger, present and future: "text" or
// "json". INVALID_ARGUMENT naming --log-format for any other value.
absl::Status ConfigureLogging(absl::string_view format);

// The JSON object of one log record, without the newline. `time` is written
// in RFC 3339 with microseconds and the local zone's offset.
std::string FormatJsonRecord(std::chrono::system_clock::time_point time, absl::string_view level,
                             absl::string_view logger, absl::string_view message);

// The key=value fields of an audit line ("audit method=M upstream=\"...\" ...",
// quoted values C-escaped), in order and unescaped; nullopt if `message` is
// not an audit line of that shape.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseAuditLine(
    absl::string_view message);

// `text` as the contents of a JSON string (no quotes around it).
void AppendJsonEscaped(absl::string_view text, std::string& out);

}  // namespace picker::program

#endif  // PICKER_SERVER_PROGRAM_LOGGING_H_
