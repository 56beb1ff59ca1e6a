#include "server/api/reflection.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "server/api/reflection.pb.h"
#include "server/api/wire.h"

namespace picker::api {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

constexpr char kReflectionService[] = "grpc.reflection.v1alpha.ServerReflection";
constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

void Error(grpc::StatusCode code, const std::string& message, reflection::Response& response) {
  response.mutable_error_response()->set_error_code(static_cast<int32_t>(code));
  response.mutable_error_response()->set_error_message(message);
}

// One reflection stream: each request read is answered before the next.
class Reactor final : public grpc::ServerGenericBidiReactor {
 public:
  Reactor(const LimitedReflection& reflection, bool is_reflection) : reflection_(reflection) {
    if (!is_reflection) {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
      return;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    reflection::Request request;
    if (absl::Status parsed = ParseFromWire(in_, request); !parsed.ok()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(parsed.message())));
      return;
    }
    reflection::Response response;
    reflection_.Answer(request, response);
    out_.Clear();  // Serializing needs an empty buffer.
    SerializeToWire(response, out_);
    StartWrite(&out_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client is gone"));
      return;
    }
    StartRead(&in_);
  }

  void OnDone() override { delete this; }

 private:
  const LimitedReflection& reflection_;
  grpc::ByteBuffer in_, out_;
};

class DropReflectionPlugin final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return p->name().find("reflection") != std::string::npos;
                                  }),
                   plugins->end());
  }
};

}  // namespace

LimitedReflection::LimitedReflection(std::vector<std::string> services)
    : services_(std::move(services)) {
  services_.push_back(kReflectionService);
  // The files that define the services, and what they import.
  std::vector<const FileDescriptor*> pending;
  for (const std::string& service : services_) {
    const auto* descriptor = DescriptorPool::generated_pool()->FindServiceByName(service);
    if (descriptor != nullptr) pending.push_back(descriptor->file());
  }
  while (!pending.empty()) {
    const FileDescriptor* file = pending.back();
    pending.pop_back();
    if (!files_.insert(file->name()).second) continue;
    for (int i = 0; i < file->dependency_count(); ++i) pending.push_back(file->dependency(i));
  }
}

grpc::ServerGenericBidiReactor* LimitedReflection::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  return new Reactor(*this, context->method() == kReflectionMethod);
}

void LimitedReflection::AddFile(const std::string& name, absl::flat_hash_set<std::string>& sent,
                                reflection::Response& response) const {
  if (!files_.contains(name) || !sent.insert(name).second) return;
  const FileDescriptor* file = DescriptorPool::generated_pool()->FindFileByName(name);
  if (file == nullptr) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(response.mutable_file_descriptor_response()->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AddFile(file->dependency(i)->name(), sent, response);
  }
}

void LimitedReflection::Answer(const reflection::Request& request,
                               reflection::Response& response) const {
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  absl::flat_hash_set<std::string> sent;
  switch (request.message_request_case()) {
    case reflection::Request::kListServices:
      for (const std::string& service : services_) {
        response.mutable_list_services_response()->add_service()->set_name(service);
      }
      return;
    case reflection::Request::kFileByFilename:
      AddFile(request.file_by_filename(), sent, response);
      if (sent.empty()) Error(grpc::StatusCode::NOT_FOUND, "file not found", response);
      return;
    case reflection::Request::kFileContainingSymbol: {
      const FileDescriptor* file = pool->FindFileContainingSymbol(request.file_containing_symbol());
      if (file != nullptr) AddFile(file->name(), sent, response);
      if (sent.empty()) Error(grpc::StatusCode::NOT_FOUND, "symbol not found", response);
      return;
    }
    case reflection::Request::kFileContainingExtension:
      Error(grpc::StatusCode::NOT_FOUND, "extension not found", response);
      return;
    case reflection::Request::kAllExtensionNumbersOfType: {
      const auto* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr || !files_.contains(type->file()->name())) {
        Error(grpc::StatusCode::NOT_FOUND, "type not found", response);
        return;
      }
      response.mutable_all_extension_numbers_response()->set_base_type_name(type->full_name());
      return;
    }
    case reflection::Request::MESSAGE_REQUEST_NOT_SET:
      break;
  }
  Error(grpc::StatusCode::INVALID_ARGUMENT, "unknown reflection request", response);
}

std::unique_ptr<grpc::ServerBuilderOption> WithoutReflectionPlugin() {
  return std::make_unique<DropReflectionPlugin>();
}

}  // namespace picker::api
