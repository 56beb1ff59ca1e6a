#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/cli/cli.h"
#include "client/cli/flags.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

namespace picker::cli {
namespace {

absl::StatusOr<std::string> ReadFlagFile(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("--", flag, " ", path, ": ", std::strerror(errno)));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kNames[i] : "UNKNOWN";
}

void FlattenInto(const YAML::Node& node, const std::string& path,
                 std::vector<std::pair<std::string, std::string>>& out) {
  if (node.IsMap() && node.size() == 0) {
    out.emplace_back(path, "{}");  // An empty message, such as a strategy without options.
  } else if (node.IsMap()) {
    for (const auto& entry : node) {
      const std::string key = entry.first.as<std::string>();
      FlattenInto(entry.second, path.empty() ? key : path + "." + key, out);
    }
  } else if (node.IsSequence()) {
    bool scalars = true;
    for (const auto& item : node) scalars = scalars && item.IsScalar();
    if (scalars) {
      std::string joined;
      for (const auto& item : node) joined += (joined.empty() ? "" : ",") + item.as<std::string>();
      out.emplace_back(path, joined);
      return;
    }
    for (size_t i = 0; i < node.size(); ++i) {
      FlattenInto(node[i], absl::StrCat(path, "[", i, "]"), out);
    }
  } else if (node.IsScalar()) {
    out.emplace_back(path, node.as<std::string>());
  }
}

}  // namespace

const std::vector<std::string>& CommandLine::Values(const std::string& flag) const {
  static const std::vector<std::string> kNone;
  auto it = repeated.find(flag);
  return it == repeated.end() ? kNone : it->second;
}

absl::StatusOr<Connection> Connection::FromFlags() {
  Connection c;
  c.admin_addr_ = absl::GetFlag(FLAGS_admin_addr);
  c.addr_ = absl::GetFlag(FLAGS_addr);
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output == "json") {
    c.format_ = Format::kJson;
  } else if (output == "yaml") {
    c.format_ = Format::kYaml;
  } else if (output != "table") {
    return absl::InvalidArgumentError(
        absl::StrCat("-o/--output: must be table, json or yaml, got '", output, "'"));
  }
  if (absl::GetFlag(FLAGS_deadline_ms) <= 0) {
    return absl::InvalidArgumentError("--deadline-ms: must be positive");
  }
  c.deadline_ = std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms));
  if (const std::string path = absl::GetFlag(FLAGS_token_file); !path.empty()) {
    absl::StatusOr<std::string> token = ReadFlagFile("token-file", path);
    if (!token.ok()) return token.status();
    c.token_ = std::string(absl::StripAsciiWhitespace(*token));
    if (c.token_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file ", path, " holds no token"));
    }
  }
  for (auto [flag, name, out] : {std::tuple{&FLAGS_tls_ca, "tls-ca", &c.root_certs_},
                                 std::tuple{&FLAGS_tls_cert, "tls-cert", &c.cert_chain_},
                                 std::tuple{&FLAGS_tls_key, "tls-key", &c.private_key_}}) {
    const std::string path = absl::GetFlag(*flag);
    if (path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadFlagFile(name, path);
    if (!pem.ok()) return pem.status();
    *out = *std::move(pem);
  }
  if (c.cert_chain_.empty() != c.private_key_.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  c.tls_ = absl::GetFlag(FLAGS_tls) || !c.root_certs_.empty() || !c.cert_chain_.empty();
  return c;
}

std::shared_ptr<grpc::Channel> Connection::Channel(const std::string& address) const {
  if (!tls_) return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = root_certs_;
  ssl.pem_cert_chain = cert_chain_;
  ssl.pem_private_key = private_key_;
  return grpc::CreateChannel(address, grpc::SslCredentials(ssl));
}

std::shared_ptr<grpc::Channel> Connection::AdminChannel() const { return Channel(admin_addr_); }
std::shared_ptr<grpc::Channel> Connection::DataChannel() const { return Channel(addr_); }

std::unique_ptr<v1::Admin::Stub> Connection::Admin() const {
  return v1::Admin::NewStub(AdminChannel());
}

std::unique_ptr<grpc::ClientContext> Connection::Context(bool admin) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + deadline_);
  if (admin && !token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  return context;
}

int UsageError(const std::string& message) {
  std::cerr << "picker-cli: " << message << "\n(see picker-cli --help)\n";
  return kExitUsage;
}

int LocalError(const absl::Status& status) {
  std::cerr << "picker-cli: " << status.message() << "\n";
  return kExitLocal;
}

int RpcError(const std::string& what, const grpc::Status& status) {
  std::cerr << "picker-cli: " << what << ": " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  return static_cast<int>(status.error_code()) * 8;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// JSON loads as flow-style YAML; people read block style.
void BlockStyle(YAML::Node node) {
  if (node.IsMap() || node.IsSequence()) node.SetStyle(YAML::EmitterStyle::Block);
  if (node.IsMap()) {
    for (auto entry : node) BlockStyle(entry.second);
  } else if (node.IsSequence()) {
    for (auto item : node) BlockStyle(item);
  }
}

std::string ToYaml(const google::protobuf::Message& message) {
  // JSON is YAML: load it, and emit it in block style.
  YAML::Node node = YAML::Load(ToJson(message));
  BlockStyle(node);
  YAML::Emitter out;
  out << node;
  return std::string(out.c_str()) + "\n";
}

void Print(const Connection& c, const google::protobuf::Message& message,
           const std::function<void()>& table) {
  switch (c.format()) {
    case Format::kJson:
      std::cout << ToJson(message);
      break;
    case Format::kYaml:
      std::cout << ToYaml(message);
      break;
    case Format::kTable:
      table();
      break;
  }
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

std::vector<std::pair<std::string, std::string>> Flatten(const google::protobuf::Message& message) {
  std::vector<std::pair<std::string, std::string>> out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  FlattenInto(YAML::Load(json), "", out);
  return out;
}

}  // namespace picker::cli
