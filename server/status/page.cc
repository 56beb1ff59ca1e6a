#include "server/status/page.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/status/status_page_html.h"  // Generated from status.html.

namespace picker::status {
namespace {

// The page is never cached: it is small, and a stale one after an upgrade
// would read a newer JSON.
http::Response NoStore(http::Response response) {
  response.WithHeader("Cache-Control", "no-store");
  response.WithHeader("X-Content-Type-Options", "nosniff");
  return response;
}

http::Response LoginPage(int status, const char* note) {
  return NoStore(http::Response::Html(status, absl::StrReplaceAll(R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>picker status: log in</title>
<style>
body{font:16px system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
input,button{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}
.note{color:#8a1c1c;font-weight:600}
</style></head><body>
<h1>picker status</h1>
<p>This server has an admin token: type it to see the status page.</p>
<p class="note">{NOTE}</p>
<form method="post" action="/status/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button type="submit">Log in</button>
</form></body></html>
)",
                                                                  {{"{NOTE}", note}})));
}

}  // namespace

void AddStatusRoutes(http::Router& router, StatusReport& report, const http::TokenGuard& guard) {
  router.Add("GET", "/status", [&guard](const http::Request& request) {
    if (!guard.Allows(request)) return LoginPage(401, "");
    return NoStore(http::Response::Html(200, kStatusPageHtml));
  });
  router.Add("POST", "/status/login", [&guard](const http::Request& request) {
    if (!guard.enabled()) return http::Response::Redirect("/status");
    auto form = request.Form();
    if (!guard.Matches(form["token"])) return LoginPage(401, "That is not the admin token.");
    return http::Response::Redirect("/status").WithHeader("Set-Cookie", guard.SessionCookie());
  });
  router.Add("GET", "/status.json", [&report, &guard](const http::Request& request) {
    if (!guard.Allows(request)) {
      return http::Response::Error(401, http::TokenGuard::Refusal())
          .WithHeader("WWW-Authenticate", "Bearer");
    }
    absl::StatusOr<PageQuery> query = ParsePageQuery(request);
    if (!query.ok()) return http::Response::Error(400, query.status().message());
    return NoStore(http::Response::Json(200, report.Json(*query)));
  });
}

}  // namespace picker::status
