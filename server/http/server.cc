#include "server/http/server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "civetweb.h"
#include "spdlog/spdlog.h"

namespace picker::http {
namespace {

// Opens and closes a TCP connection to `address` ("host:port", where a
// wildcard host means this machine), to wake a listener blocked in poll.
void Poke(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return;
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return;
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)connect(fd, found->ai_addr, found->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(found);
}

int LogMessage(const mg_connection*, const char* message) {
  spdlog::debug("http: {}", message);
  return 1;  // Logged here; civetweb writes nothing itself.
}

void Send(mg_connection* connection, const Request& request, const Response& response) {
  mg_response_header_start(connection, response.status);
  mg_response_header_add(connection, "Content-Type", response.content_type.c_str(), -1);
  const std::string length = absl::StrCat(response.body.size());
  mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  for (const auto& [name, value] : response.headers) {
    mg_response_header_add(connection, name.c_str(), value.c_str(), -1);
  }
  mg_response_header_send(connection);
  if (request.method != "HEAD" && !response.body.empty()) {
    mg_write(connection, response.body.data(), response.body.size());
  }
}

}  // namespace

HttpServer::HttpServer(const ServerOptions& options, Router router)
    : options_(options), router_(std::move(router)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& options,
                                                              Router router) {
  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(router)));
  const std::string threads = absl::StrCat(options.threads);
  const std::string queued = absl::StrCat(options.queued);
  const std::string timeout = absl::StrCat(options.request_timeout_ms);
  const char* configuration[] = {"listening_ports",    options.address.c_str(), "num_threads",
                                 threads.c_str(),      "connection_queue",      queued.c_str(),
                                 "request_timeout_ms", timeout.c_str(),         nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = LogMessage;
  mg_init_data init{&callbacks, server.get(), configuration};
  char text[256] = "";
  unsigned code = 0;
  mg_error_data error{&code, text, sizeof(text)};
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, " (", options.flag, "): ", text));
  }
  mg_set_request_handler(server->context_, "/", &HttpServer::Dispatch, server.get());
  mg_server_port ports[1] = {};
  const int bound = mg_get_server_ports(server->context_, 1, ports);
  server->address_ = absl::StrCat(options.address.substr(0, options.address.rfind(':')), ":",
                                  bound > 0 ? ports[0].port : 0);
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (context_ == nullptr) return;
  std::atomic<bool> stopped{false};
  std::thread stop([this, &stopped] {
    mg_stop(context_);
    stopped.store(true);
  });
  while (!stopped.load()) {
    Poke(address_);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop.join();
  context_ = nullptr;
}

bool HttpServer::ReadRequest(mg_connection* connection, Request& request) const {
  const mg_request_info* info = mg_get_request_info(connection);
  request.method = info->request_method ? info->request_method : "";
  request.path = info->local_uri ? info->local_uri : "/";
  if (info->query_string) request.query = ParseForm(info->query_string);
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
        info->http_headers[i].value;
  }
  request.remote_address = absl::StrCat(info->remote_addr, ":", info->remote_port);
  if (info->content_length > static_cast<long long>(options_.max_body_bytes)) {
    Send(connection, request,
         Response::Error(
             413, absl::StrCat("the body is larger than ", options_.max_body_bytes, " bytes")));
    return false;
  }
  if (info->content_length > 0) {
    request.body.resize(static_cast<size_t>(info->content_length));
    size_t got = 0;
    while (got < request.body.size()) {
      const int n = mg_read(connection, request.body.data() + got, request.body.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    request.body.resize(got);
  }
  return true;
}

int HttpServer::Dispatch(mg_connection* connection, void* self) {
  const HttpServer& server = *static_cast<const HttpServer*>(self);
  Request request;
  if (!server.ReadRequest(connection, request)) return 413;
  Response response;
  try {
    response = server.router_.Handle(request);
  } catch (const std::exception& e) {
    spdlog::error("http: {} {} failed: {}", request.method, request.path, e.what());
    response = Response::Error(500, "internal error");
  }
  Send(connection, request, response);
  return response.status;
}

}  // namespace picker::http
