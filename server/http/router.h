// Routes requests to handlers by method and path. A path pattern's
// segments are literal or `{name}`, which matches one non-empty segment and
// is given to the handler as Request::params.
//
//   Router router;
//   router.Add("GET", "/upstreams/{name}", [](const Request& r) {
//     return Response::Text(200, r.Param("name"));
//   });
//   Response response = router.Handle(request);   // 404, or 405 with Allow
//
// Routes are added before the server starts; Handle is then called from
// the server's threads at once (it only reads).
#ifndef PICKER_SERVER_HTTP_ROUTER_H_
#define PICKER_SERVER_HTTP_ROUTER_H_

#include <functional>
#include <string>
#include <vector>

#include "server/http/http.h"

namespace picker::http {

using Handler = std::function<Response(const Request&)>;

class Router {
 public:
  // `pattern` starts with '/'. A HEAD request is served by the GET route
  // (the server sends no body).
  void Add(std::string method, std::string pattern, Handler handler);

  // The handler's response; 404 when no pattern matches the path, 405 with
  // an Allow header when patterns match but not the method.
  Response Handle(Request& request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{name}" for a parameter.
    Handler handler;
  };
  // True if `route` matches `path`'s segments; fills `params`.
  static bool Match(const Route& route, const std::vector<std::string>& path,
                    absl::flat_hash_map<std::string, std::string>& params);

  std::vector<Route> routes_;
};

}  // namespace picker::http

#endif  // PICKER_SERVER_HTTP_ROUTER_H_
