// An HTTP/1.1 listener on civetweb that hands every request to a Router.
//
//   Router router;
//   router.Add("GET", "/metrics", ServeMetrics);
//   absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
//       {.address = "0.0.0.0:9464", .flag = "--metrics-listen"}, std::move(router));
//   (*server)->address();   // "0.0.0.0:<port>" when port 0 was asked for
//
// Plain HTTP only: Debian 12's civetweb (1.15) loads OpenSSL 1.1's symbols
// at run time and crashes with the system's OpenSSL 3, so TLS is left to a
// proxy in front (or to a later civetweb).
#ifndef PICKER_SERVER_HTTP_SERVER_H_
#define PICKER_SERVER_HTTP_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/http/router.h"

struct mg_context;
struct mg_connection;

namespace picker::http {

struct ServerOptions {
  std::string address;  // "host:port"; port 0 binds a free one.
  std::string flag;     // Named in errors, e.g. "--metrics-listen".
  // Connections served at once; `queued` more wait for a thread, and the
  // listener accepts no further connection until one ends (they wait in
  // the kernel's backlog), so the listener never holds more than
  // threads + queued descriptors.
  int threads = 8;
  int queued = 32;
  // How long a connection may take to send its request (each read of it):
  // a client that connects and sends nothing holds a thread this long.
  int request_timeout_ms = 2000;
  // Larger request bodies are answered 413 without reading them.
  size_t max_body_bytes = 1 << 20;
};

class HttpServer {
 public:
  // Binds `options.address`; a taken or bad address is an error naming it
  // and the flag.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const ServerOptions& options,
                                                           Router router);
  // Stops at once (see Stop).
  ~HttpServer();

  // The bound address (the real port when 0 was asked for).
  const std::string& address() const { return address_; }
  // Stops serving and waits for the requests in progress. civetweb looks at
  // its stop flag only between polls of its socket, two seconds each; local
  // connections wake it meanwhile.
  void Stop();

 private:
  HttpServer(const ServerOptions& options, Router router);
  static int Dispatch(mg_connection* connection, void* self);
  // Reads the request from civetweb; false (and an answer sent) when its
  // body is too large.
  bool ReadRequest(mg_connection* connection, Request& request) const;

  const ServerOptions options_;
  const Router router_;
  mg_context* context_ = nullptr;
  std::string address_;
};

}  // namespace picker::http

#endif  // PICKER_SERVER_HTTP_SERVER_H_
