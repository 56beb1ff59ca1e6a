#include "server/http/http.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/http/json.h"

namespace picker::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding with '+' as a space; a '%' not followed by two hex
// digits stays as it is.
std::string FormDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
               HexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const std::string& Lookup(const absl::flat_hash_map<std::string, std::string>& map,
                          absl::string_view name) {
  static const std::string* const kEmpty = new std::string();
  auto it = map.find(name);
  return it == map.end() ? *kEmpty : it->second;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> ParseFormPairs(absl::string_view encoded) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (absl::string_view pair : absl::StrSplit(encoded, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    pairs.emplace_back(FormDecode(kv.first), FormDecode(kv.second));
  }
  return pairs;
}

absl::flat_hash_map<std::string, std::string> ParseForm(absl::string_view encoded) {
  absl::flat_hash_map<std::string, std::string> fields;
  for (auto& [name, value] : ParseFormPairs(encoded)) fields[name] = std::move(value);
  return fields;
}

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      const unsigned char u = static_cast<unsigned char>(c);
      out += {'%', kHex[u >> 4], kHex[u & 15]};
    }
  }
  return out;
}

const std::string& Request::Query(absl::string_view name) const { return Lookup(query, name); }
const std::string& Request::Header(absl::string_view name) const { return Lookup(headers, name); }
const std::string& Request::Param(absl::string_view name) const { return Lookup(params, name); }

std::string Request::Cookie(absl::string_view name) const {
  for (absl::string_view part : absl::StrSplit(Header("cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

Response Response::Text(int status, std::string body) {
  return Response{status, "text/plain; charset=utf-8", std::move(body), {}};
}

Response Response::Html(int status, std::string body) {
  return Response{status, "text/html; charset=utf-8", std::move(body), {}};
}

Response Response::Json(int status, std::string body) {
  return Response{status, "application/json", std::move(body), {}};
}

Response Response::Error(int status, absl::string_view message) {
  JsonWriter json;
  json.BeginObject().Key("message").String(message).EndObject();
  return Json(status, std::move(json).Take());
}

Response Response::Redirect(std::string location) {
  Response response = Text(303, "");
  response.WithHeader("Location", std::move(location));
  return response;
}

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 303:
      return "See Other";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "";
  }
}

}  // namespace picker::http
