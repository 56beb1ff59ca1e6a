// The admin token on HTTP: a request passes with `Authorization: Bearer
// <token>` (scripts), or with the session cookie that a login form sets
// after the token was typed in (browsers). With no token configured every
// request passes.
//
//   TokenGuard guard(token);
//   if (!guard.Allows(request)) return Response::Error(401, guard.Refusal());
//   // POST /login with token=...:
//   if (guard.Matches(request.Form()["token"])) response.WithHeader("Set-Cookie",
//                                                                   guard.SessionCookie());
//
// The cookie holds a random session value drawn at start, not the token, so
// the token never sits in a browser's cookie jar; a restart logs browsers
// out. Both comparisons take the same time whatever the guess.
#ifndef PICKER_SERVER_HTTP_TOKEN_GUARD_H_
#define PICKER_SERVER_HTTP_TOKEN_GUARD_H_

#include <string>

#include "absl/strings/string_view.h"
#include "server/http/http.h"

namespace picker::http {

// Equal strings, in a time that depends only on their lengths.
bool ConstantTimeEquals(absl::string_view given, absl::string_view expected);

class TokenGuard {
 public:
  static constexpr char kCookieName[] = "picker_session";

  // An empty token guards nothing.
  explicit TokenGuard(std::string token);

  bool enabled() const { return !token_.empty(); }
  // True when no token is configured, or the request carries the token as
  // a bearer header or the session cookie.
  bool Allows(const Request& request) const;
  // True if `given` is the token (the login form's field).
  bool Matches(absl::string_view given) const;
  // The Set-Cookie value of a logged-in session: HttpOnly, SameSite=Strict,
  // for every path of this listener, until the browser closes.
  std::string SessionCookie() const;
  // Why a request was refused, for the 401 answer.
  static const char* Refusal();

 private:
  std::string token_;
  std::string session_;  // Random hex, drawn at construction.
};

}  // namespace picker::http

#endif  // PICKER_SERVER_HTTP_TOKEN_GUARD_H_
