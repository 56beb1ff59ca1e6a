// What picker-cli's commands share: the connection the global flags
// describe, the output format, exit codes and output helpers.
//
// Exit codes (one rule for every command):
//   0    success
//   1    `diff` (or `apply --dry-run`) found changes; `healthcheck` found the
//        server not serving
//   2    usage error: unknown command or flag, bad or missing argument
//   3    a local file cannot be read or is not valid
//   8*N  the server (or the transport) answered with gRPC status code N,
//        as `buf curl` does: 40 NOT_FOUND, 24 INVALID_ARGUMENT, 112
//        UNAVAILABLE, 128 UNAUTHENTICATED
#ifndef PICKER_CLIENT_CLI_CLI_H_
#define PICKER_CLIENT_CLI_CLI_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "picker/v1/admin.grpc.pb.h"

namespace picker::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitChanges = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitLocal = 3;

enum class Format { kTable, kJson, kYaml };

// The command line after the flags: the command, its arguments, and the
// values of repeatable flags (--header K=V ...).
struct CommandLine {
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::vector<std::string>> repeated;
  const std::vector<std::string>& Values(const std::string& flag) const;
};

// The servers and how to reach them, from the global flags.
class Connection {
 public:
  // Reads --token-file and the TLS files; INVALID_ARGUMENT or NOT_FOUND
  // naming the flag.
  static absl::StatusOr<Connection> FromFlags();

  std::unique_ptr<v1::Admin::Stub> Admin() const;
  std::shared_ptr<grpc::Channel> AdminChannel() const;
  std::shared_ptr<grpc::Channel> DataChannel() const;
  // A context with the deadline and, for admin calls, the token.
  std::unique_ptr<grpc::ClientContext> Context(bool admin = true) const;
  Format format() const { return format_; }
  std::chrono::milliseconds deadline() const { return deadline_; }
  bool tls() const { return tls_; }
  const std::string& root_certs() const { return root_certs_; }
  const std::string& cert_chain() const { return cert_chain_; }
  const std::string& private_key() const { return private_key_; }

 private:
  std::shared_ptr<grpc::Channel> Channel(const std::string& address) const;
  std::string admin_addr_, addr_, token_;
  bool tls_ = false;
  std::string root_certs_, cert_chain_, private_key_;
  std::chrono::milliseconds deadline_{5000};
  Format format_ = Format::kTable;
};

// Prints "picker-cli: <message>" and a pointer to --help; returns 2.
int UsageError(const std::string& message);
// Prints the error; returns 3.
int LocalError(const absl::Status& status);
// Prints "picker-cli: <what>: <code>: <message>"; returns code * 8.
int RpcError(const std::string& what, const grpc::Status& status);

// The page size picker-cli asks for: the server's most (AIP-158; a page
// also ends before 3 MiB, so more pages may follow anyway).
inline constexpr int32_t kPageSize = 1000;

// Reads every page of a listing admin call (ListUpstreams, ListTargets,
// GetUpstreamHealth), following next_page_token to the last page: `all`
// gets the first page's answer with the entries of every page appended
// (`entries(answer)` is the repeated field) and no next_page_token.
//
//   v1::ListTargetsResponse all;
//   grpc::Status s = ReadAllPages(c, request, &v1::Admin::Stub::ListTargets,
//       [](auto& r) { return r.mutable_targets(); }, all);
template <typename Request, typename Response, typename Entries>
grpc::Status ReadAllPages(const Connection& c, Request request,
                          grpc::Status (v1::Admin::Stub::*call)(grpc::ClientContext*,
                                                                const Request&, Response*),
                          Entries entries, Response& all) {
  auto stub = c.Admin();
  request.set_page_size(kPageSize);
  for (bool first = true;; first = false) {
    Response page;
    auto context = c.Context();
    if (grpc::Status s = ((*stub).*call)(context.get(), request, &page); !s.ok()) return s;
    std::string next = page.next_page_token();
    if (first) {
      all = std::move(page);
    } else {
      for (auto& entry : *entries(page)) *entries(all)->Add() = std::move(entry);
    }
    all.clear_next_page_token();
    if (next.empty()) return grpc::Status::OK;
    // A server that answered the same token again would loop forever.
    if (next == request.page_token()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "the server repeated a next_page_token");
    }
    request.set_page_token(std::move(next));
  }
}

// A message as JSON (proto3 JSON, lowerCamel names) or YAML.
std::string ToJson(const google::protobuf::Message& message);
std::string ToYaml(const google::protobuf::Message& message);
// Prints `message` as -o asks; `table` prints it for people (-o table).
void Print(const Connection& c, const google::protobuf::Message& message,
           const std::function<void()>& table);
// Prints rows as aligned columns; the first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);
// Every leaf of a message as "path: value" rows (lowerCamel paths), in order.
std::vector<std::pair<std::string, std::string>> Flatten(const google::protobuf::Message& message);

// Commands: each takes the parsed command line and returns the exit code.
int RunList(const Connection& c, const CommandLine& cl);
int RunGet(const Connection& c, const CommandLine& cl);
int RunCreate(const Connection& c, const CommandLine& cl);
int RunUpdate(const Connection& c, const CommandLine& cl);
int RunDelete(const Connection& c, const CommandLine& cl);
int RunTargets(const Connection& c, const CommandLine& cl);
int RunPutTarget(const Connection& c, const CommandLine& cl);
int RunDeleteTarget(const Connection& c, const CommandLine& cl);
int RunSetHealth(const Connection& c, const CommandLine& cl);
int RunHealth(const Connection& c, const CommandLine& cl);
int RunExplain(const Connection& c, const CommandLine& cl);
int RunDump(const Connection& c, const CommandLine& cl);
int RunDiff(const Connection& c, const CommandLine& cl);
int RunApply(const Connection& c, const CommandLine& cl);
int RunPick(const Connection& c, const CommandLine& cl);
int RunRelease(const Connection& c, const CommandLine& cl);
int RunHealthcheck(const Connection& c, const CommandLine& cl);

}  // namespace picker::cli

#endif  // PICKER_CLIENT_CLI_CLI_H_
