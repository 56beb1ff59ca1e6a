// The status page's routes on an HTTP router, behind the admin token:
//
//   GET  /status         the page (one HTML file with its CSS and script,
//                        embedded at build time from status.html), or the
//                        login form when a token is needed
//   POST /status/login   the login form's target: sets the session cookie
//   GET  /status.json    the data the page shows (report.h)
//
//   StatusReport report(snapshots, process);
//   http::TokenGuard guard(admin_token);
//   AddStatusRoutes(router, report, guard);   // both must outlive the router
#ifndef PICKER_SERVER_STATUS_PAGE_H_
#define PICKER_SERVER_STATUS_PAGE_H_

#include "server/http/router.h"
#include "server/http/token_guard.h"
#include "server/status/report.h"

namespace picker::status {

void AddStatusRoutes(http::Router& router, StatusReport& report, const http::TokenGuard& guard);

}  // namespace picker::status

#endif  // PICKER_SERVER_STATUS_PAGE_H_
