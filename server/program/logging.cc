#include "server/program/logging.h"

#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "spdlog/formatter.h"
#include "spdlog/spdlog.h"

namespace picker::program {
namespace {

// Keys of the record itself, which an audit field may not overwrite.
constexpr absl::string_view kReserved[] = {"time", "level", "logger", "msg", "event"};

// Length of the UTF-8 sequence at the start of `s`, 0 if it is not a valid
// one (overlong forms, surrogates and code points above U+10FFFF included).
size_t Utf8SequenceLength(absl::string_view s) {
  struct Form {
    unsigned char first, last;  // range of the lead byte
    size_t length;
    uint32_t min;  // smallest code point the length may encode
  };
  static constexpr Form kForms[] = {
      {0xc2, 0xdf, 2, 0x80}, {0xe0, 0xef, 3, 0x800}, {0xf0, 0xf4, 4, 0x10000}};
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  if (byte(0) < 0x80) return 1;
  for (const Form& form : kForms) {
    if (byte(0) < form.first || byte(0) > form.last) continue;
    if (s.size() < form.length) return 0;
    uint32_t code = byte(0) & (0x7f >> form.length);
    for (size_t i = 1; i < form.length; ++i) {
      if ((byte(i) & 0xc0) != 0x80) return 0;
      code = (code << 6) | (byte(i) & 0x3f);
    }
    if (code < form.min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
    return form.length;
  }
  return 0;
}

// The local time with microseconds and the zone's offset: RFC 3339.
std::string Rfc3339(std::chrono::system_clock::time_point time) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
  time_t seconds = static_cast<time_t>(micros / 1000000);
  long fraction = static_cast<long>(micros % 1000000);
  if (fraction < 0) {
    fraction += 1000000;
    seconds -= 1;
  }
  tm local{};
  localtime_r(&seconds, &local);
  const long offset = local.tm_gmtoff / 60;
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06d%c%02d:%02d", local.tm_year + 1900,
                         local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
                         fraction, offset < 0 ? '-' : '+', std::abs(offset) / 60,
                         std::abs(offset) % 60);
}

void AppendField(absl::string_view key, absl::string_view value, std::string& out) {
  out += ",\"";
  AppendJsonEscaped(key, out);
  out += "\":\"";
  AppendJsonEscaped(value, out);
  out += '"';
}

// Reads one value of an audit line at the start of `rest`: up to the next
// space, or a quoted C-escaped string. False if a quote is not closed.
bool ConsumeAuditValue(absl::string_view& rest, std::string& value) {
  if (!absl::ConsumePrefix(&rest, "\"")) {
    const size_t end = std::min(rest.find(' '), rest.size());
    value = std::string(rest.substr(0, end));
    rest.remove_prefix(end);
    return true;
  }
  size_t i = 0;
  while (i < rest.size() && rest[i] != '"') i += rest[i] == '\\' ? 2 : 1;
  if (i >= rest.size()) return false;
  const absl::string_view quoted = rest.substr(0, i);
  if (!absl::CUnescape(quoted, &value)) value = std::string(quoted);
  rest.remove_prefix(i + 1);
  return true;
}

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    std::string line =
        FormatJsonRecord(msg.time, absl::string_view(level.data(), level.size()),
                         absl::string_view(msg.logger_name.data(), msg.logger_name.size()),
                         absl::string_view(msg.payload.data(), msg.payload.size()));
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

void AppendJsonEscaped(absl::string_view text, std::string& out) {
  while (!text.empty()) {
    const unsigned char c = static_cast<unsigned char>(text[0]);
    const size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      out += "\\ufffd";  // a byte that is not UTF-8
      text.remove_prefix(1);
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.append(text.data(), length);
    }
    text.remove_prefix(length);
  }
}

std::optional<std::vector<std::pair<std::string, std::string>>> ParseAuditLine(
    absl::string_view message) {
  if (!absl::ConsumePrefix(&message, "audit ")) return std::nullopt;
  std::vector<std::pair<std::string, std::string>> fields;
  while (!message.empty()) {
    const size_t equals = message.find('=');
    if (equals == 0 || equals == absl::string_view::npos) return std::nullopt;
    std::string key(message.substr(0, equals));
    for (char c : key) {
      if (!absl::ascii_islower(c) && c != '_') return std::nullopt;
    }
    message.remove_prefix(equals + 1);
    std::string value;
    if (!ConsumeAuditValue(message, value)) return std::nullopt;
    fields.emplace_back(std::move(key), std::move(value));
    if (!message.empty() && !absl::ConsumePrefix(&message, " ")) return std::nullopt;
  }
  return fields;
}

std::string FormatJsonRecord(std::chrono::system_clock::time_point time, absl::string_view level,
                             absl::string_view logger, absl::string_view message) {
  std::string out = absl::StrCat("{\"time\":\"", Rfc3339(time), "\"");
  AppendField("level", level, out);
  AppendField("logger", logger, out);
  AppendField("msg", message, out);
  if (auto fields = ParseAuditLine(message)) {
    AppendField("event", "audit", out);
    for (const auto& [key, value] : *fields) {
      if (std::find(std::begin(kReserved), std::end(kReserved), key) != std::end(kReserved)) {
        continue;
      }
      AppendField(key, value, out);
    }
  }
  out += '}';
  return out;
}

absl::Status ConfigureLogging(absl::string_view format) {
  if (format == "text") return absl::OkStatus();  // spdlog's own pattern, as set up
  if (format == "json") {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--log-format: must be text or json, got \"", absl::CHexEscape(format), "\""));
}

}  // namespace picker::program
