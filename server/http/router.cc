#include "server/http/router.h"

#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace picker::http {
namespace {

// "/a/b/" -> {"a", "b"}; "/" -> {}.
std::vector<std::string> Segments(absl::string_view path) {
  return absl::StrSplit(path, '/', absl::SkipEmpty());
}

bool IsParameter(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler) {
  routes_.push_back(Route{std::move(method), Segments(pattern), std::move(handler)});
}

bool Router::Match(const Route& route, const std::vector<std::string>& path,
                   absl::flat_hash_map<std::string, std::string>& params) {
  if (route.segments.size() != path.size()) return false;
  params.clear();
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string& want = route.segments[i];
    if (IsParameter(want)) {
      params[want.substr(1, want.size() - 2)] = path[i];
    } else if (want != path[i]) {
      return false;
    }
  }
  return true;
}

Response Router::Handle(Request& request) const {
  const std::vector<std::string> path = Segments(request.path);
  const std::string& method = request.method == "HEAD" ? "GET" : request.method;
  std::vector<std::string> allowed;
  absl::flat_hash_map<std::string, std::string> params;
  for (const Route& route : routes_) {
    if (!Match(route, path, params)) continue;
    if (route.method == method) {
      request.params = std::move(params);
      return route.handler(request);
    }
    allowed.push_back(route.method);
  }
  if (allowed.empty()) return Response::Error(404, "no such path: " + request.path);
  Response response = Response::Error(405, "method " + request.method + " is not allowed here");
  response.WithHeader("Allow", absl::StrJoin(allowed, ", "));
  return response;
}

}  // namespace picker::http
