// Kong Gateway's Admin API routes for upstreams and targets, over picker's
// state: the same control plane, validation and admin token as the gRPC
// Admin API, with Kong's request bodies (form or JSON), answers, status
// codes and error shapes.
//
//   http::Router router;
//   KongAdmin kong(control, snapshots, admin_token);
//   kong.AddRoutes(router);   // then served by an http::HttpServer
//
//   curl -X POST http://127.0.0.1:8001/upstreams --data name=example_upstream
//   curl -X POST http://127.0.0.1:8001/upstreams/example_upstream/targets
//        --data target=httpbin.konghq.com:80
//
// Folder: server/kong is the Kong-shaped HTTP Admin API. It may use
// control/, http/ and core/.
#ifndef PICKER_SERVER_KONG_KONG_ADMIN_H_
#define PICKER_SERVER_KONG_KONG_ADMIN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/control/control_plane.h"
#include "server/core/snapshot_map.h"
#include "server/core/stats.h"
#include "server/http/http.h"
#include "server/http/router.h"
#include "server/http/token_guard.h"

namespace picker::kong {

class KongAdmin {
 public:
  // `control` and `snapshots` must outlive the routes. An empty token
  // guards nothing; otherwise a request carries it as `Authorization:
  // Bearer <token>` or Kong's `Kong-Admin-Token: <token>`.
  // With `stats` (may be null), writes other than deletes answer 503 while
  // the overload manager says so, as the gRPC Admin API's do.
  KongAdmin(control::ControlPlane& control, const core::SnapshotMap& snapshots,
            std::string admin_token, core::ProcessStats* stats = nullptr);

  // Adds Kong's upstream and target routes to `router`; `this` must outlive
  // it.
  void AddRoutes(http::Router& router);

 private:
  using Snapshot = std::shared_ptr<const core::UpstreamSnapshot>;

  // Wraps a handler: the token, and the audit line of a write.
  http::Handler Guarded(const char* method, bool write,
                        http::Response (KongAdmin::*handler)(const http::Request&));
  // The upstream `{upstream}` names, by name or Kong id.
  Snapshot FindUpstream(const std::string& name_or_id) const;
  // Writes a change and answers the upstream or target it left.
  absl::StatusOr<control::WriteResult> Write(core::Change change);

  http::Response ListUpstreams(const http::Request& r);
  http::Response CreateUpstream(const http::Request& r);
  http::Response GetUpstream(const http::Request& r);
  http::Response PutUpstream(const http::Request& r);
  http::Response PatchUpstream(const http::Request& r);
  http::Response DeleteUpstream(const http::Request& r);
  http::Response ListTargets(const http::Request& r);
  http::Response CreateTarget(const http::Request& r);
  http::Response GetTarget(const http::Request& r);
  http::Response PutTarget(const http::Request& r);
  http::Response PatchTarget(const http::Request& r);
  http::Response DeleteTarget(const http::Request& r);
  http::Response MarkHealthy(const http::Request& r);
  http::Response MarkUnhealthy(const http::Request& r);
  http::Response Health(const http::Request& r);
  http::Response SetHealth(const http::Request& r, core::HealthOverride health);

  control::ControlPlane& control_;
  const core::SnapshotMap& snapshots_;
  const http::TokenGuard guard_;
  core::ProcessStats* const stats_;
};

}  // namespace picker::kong

#endif  // PICKER_SERVER_KONG_KONG_ADMIN_H_
