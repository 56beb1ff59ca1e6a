// An HTTP request and response as handlers see them: plain values, no
// civetweb types, so handlers are tested without a socket.
//
//   http::Response Hello(const http::Request& request) {
//     if (request.Query("name").empty()) return http::Response::Error(400, "name: is required");
//     return http::Response::Text(200, "hello " + request.Query("name"));
//   }
//
// Folder: server/http is a small HTTP layer on civetweb (a server, a router
// with path parameters, JSON output, the admin-token guard). It knows
// nothing of picker's domain; the metrics listener and the status page are
// built on it.
#ifndef PICKER_SERVER_HTTP_HTTP_H_
#define PICKER_SERVER_HTTP_HTTP_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace picker::http {

// Decodes an application/x-www-form-urlencoded string (a query string or a
// form body): "a=1&b=x%20y" -> {a: "1", b: "x y"}. '+' is a space; a name
// given twice keeps its last value.
absl::flat_hash_map<std::string, std::string> ParseForm(absl::string_view encoded);
// The same, every pair in order (a name given twice appears twice).
std::vector<std::pair<std::string, std::string>> ParseFormPairs(absl::string_view encoded);

// Percent-encodes `text` for a query string value.
std::string UrlEncode(absl::string_view text);

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded, without the query string
  absl::flat_hash_map<std::string, std::string> query;
  // Header names in lower case.
  absl::flat_hash_map<std::string, std::string> headers;
  std::string body;
  // Filled by the router from the route's {name} segments.
  absl::flat_hash_map<std::string, std::string> params;
  std::string remote_address;

  // The value, or "" when absent.
  const std::string& Query(absl::string_view name) const;
  const std::string& Header(absl::string_view lower_case_name) const;
  const std::string& Param(absl::string_view name) const;
  // The value of cookie `name` from the Cookie header, or "".
  std::string Cookie(absl::string_view name) const;
  // The form fields of an application/x-www-form-urlencoded body.
  absl::flat_hash_map<std::string, std::string> Form() const { return ParseForm(body); }
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Further headers, in order (Set-Cookie may repeat).
  std::vector<std::pair<std::string, std::string>> headers;

  static Response Text(int status, std::string body);
  static Response Html(int status, std::string body);
  static Response Json(int status, std::string body);
  // {"message": "..."}, as Kong's Admin API answers errors.
  static Response Error(int status, absl::string_view message);
  // 303 See Other to `location`.
  static Response Redirect(std::string location);

  Response& WithHeader(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

// The reason phrase of a status code ("Not Found").
const char* StatusText(int status);

}  // namespace picker::http

#endif  // PICKER_SERVER_HTTP_HTTP_H_
