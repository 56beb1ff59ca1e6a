#include "server/http/https_server.h"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace picker::http {
namespace {

Request ToRequest(const httplib::Request& in) {
  Request out;
  out.method = in.method;
  out.path = in.path;
  for (const auto& [name, value] : in.params) out.query[name] = value;
  for (const auto& [name, value] : in.headers) out.headers[absl::AsciiStrToLower(name)] = value;
  out.body = in.body;
  out.remote_address = absl::StrCat(in.remote_addr, ":", in.remote_port);
  return out;
}

void Send(const Response& response, httplib::Response& out) {
  out.status = response.status;
  for (const auto& [name, value] : response.headers) out.set_header(name, value);
  out.set_content(response.body, response.content_type.c_str());
}

// "host:port" split for binding; an IPv6 host loses its brackets.
bool SplitAddress(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return absl::SimpleAtoi(address.substr(colon + 1), &port) && port >= 0 && port <= 65535;
}

}  // namespace

HttpsServer::HttpsServer(Router router) : router_(std::move(router)) {}

absl::StatusOr<std::unique_ptr<HttpsServer>> HttpsServer::Start(const ServerOptions& options,
                                                                const TlsFiles& tls,
                                                                Router router) {
  std::unique_ptr<HttpsServer> self(new HttpsServer(std::move(router)));
  self->server_ = std::make_unique<httplib::SSLServer>(
      tls.cert_file.c_str(), tls.key_file.c_str(),
      tls.client_ca_file.empty() ? nullptr : tls.client_ca_file.c_str());
  if (!self->server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.flag, ": cannot serve TLS with --tls-cert ", tls.cert_file, " and --tls-key ",
        tls.key_file, tls.client_ca_file.empty() ? "" : " and --tls-client-ca ", tls.client_ca_file,
        " (not PEM, or the key does not match)"));
  }
  httplib::SSLServer& server = *self->server_;
  const int threads = options.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(std::chrono::milliseconds(options.request_timeout_ms));
  server.set_payload_max_length(options.max_body_bytes);
  const Router* routes = &self->router_;
  auto handle = [routes](const httplib::Request& in, httplib::Response& out) {
    Request request = ToRequest(in);
    Send(routes->Handle(request), out);
  };
  for (auto add : {&httplib::Server::Get, &httplib::Server::Post, &httplib::Server::Put,
                   &httplib::Server::Patch, &httplib::Server::Delete, &httplib::Server::Options}) {
    (server.*add)(".*", handle);
  }
  server.set_exception_handler(
      [](const httplib::Request& in, httplib::Response& out, std::exception_ptr error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          spdlog::error("https: {} {} failed: {}", in.method, in.path, e.what());
        }
        Send(Response::Error(500, "internal error"), out);
      });
  std::string host;
  int port = 0;
  if (!SplitAddress(options.address, host, port)) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.flag, ": ", options.address, " is not host:port"));
  }
  const bool bound =
      port == 0 ? (port = server.bind_to_any_port(host)) > 0 : server.bind_to_port(host, port);
  if (!bound) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address, " (",
                                               options.flag, "): ", std::strerror(errno)));
  }
  self->address_ = absl::StrCat(options.address.substr(0, options.address.rfind(':')), ":", port);
  self->serving_ = std::thread([&server] { server.listen_after_bind(); });
  return self;
}

HttpsServer::~HttpsServer() { Stop(); }

void HttpsServer::Stop() {
  if (!serving_.joinable()) return;
  server_->stop();
  serving_.join();
}

}  // namespace picker::http
