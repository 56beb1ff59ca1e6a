// An HTTPS/1.1 listener on cpp-httplib (OpenSSL) that hands every request to
// a Router, for the listeners that serve TLS with the gRPC listeners'
// certificate (--kong-admin-listen with --tls-cert).
//
//   absl::StatusOr<std::unique_ptr<HttpsServer>> server = HttpsServer::Start(
//       {.address = "127.0.0.1:8443", .flag = "--kong-admin-listen"},
//       {.cert_file = "server.pem", .key_file = "server.key"}, std::move(router));
//   (*server)->address();   // "127.0.0.1:<port>" when port 0 was asked for
//
// Debian 12's civetweb (HttpServer) cannot serve TLS with the system's
// OpenSSL 3 (it looks up OpenSSL 1.1's symbols at run time and crashes);
// cpp-httplib links OpenSSL 3 itself. Plain listeners stay on civetweb,
// whose bounded connection queue the abuse tests hold it to.
#ifndef PICKER_SERVER_HTTP_HTTPS_SERVER_H_
#define PICKER_SERVER_HTTP_HTTPS_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/http/router.h"
#include "server/http/server.h"

namespace httplib {
class SSLServer;
}  // namespace httplib

namespace picker::http {

// PEM files, as picker-server's --tls-cert, --tls-key and --tls-client-ca.
struct TlsFiles {
  std::string cert_file;  // The certificate chain.
  std::string key_file;
  std::string client_ca_file;  // Optional: clients must present a certificate it signed.
};

class HttpsServer {
 public:
  // Loads the certificate and binds `options.address` (`threads` serve
  // requests, each read of a request may take `request_timeout_ms`,
  // larger bodies than `max_body_bytes` are answered 413); an error names
  // the flag and what failed.
  static absl::StatusOr<std::unique_ptr<HttpsServer>> Start(const ServerOptions& options,
                                                            const TlsFiles& tls, Router router);
  ~HttpsServer();

  const std::string& address() const { return address_; }
  // Stops accepting and waits for the requests in progress.
  void Stop();

 private:
  explicit HttpsServer(Router router);

  const Router router_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread serving_;
  std::string address_;
};

}  // namespace picker::http

#endif  // PICKER_SERVER_HTTP_HTTPS_SERVER_H_
