// Server reflection (grpc.reflection.v1alpha, which grpcurl and `buf curl`
// use) limited to a set of services: it lists them and describes only the
// .proto files they are made of. gRPC's own reflection plugin describes
// every file linked into the process, so on the data listener it would
// describe picker.v1.Admin too; the data listener serves this one instead.
//
//   LimitedReflection reflection({"picker.v1.Picker", "grpc.health.v1.Health"});
//   builder.RegisterCallbackGenericService(&reflection);
//   builder.SetOption(WithoutReflectionPlugin());
#ifndef PICKER_SERVER_API_REFLECTION_H_
#define PICKER_SERVER_API_REFLECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/impl/server_builder_option.h"

namespace picker::api {

namespace reflection {
class Request;
class Response;
}  // namespace reflection

class LimitedReflection final : public grpc::CallbackGenericService {
 public:
  // `services`: full names; the reflection service itself is added.
  explicit LimitedReflection(std::vector<std::string> services);

  // Serves the reflection method; any other method no service of the
  // server has answers UNIMPLEMENTED, as gRPC would.
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

  // The answer to one reflection request.
  void Answer(const reflection::Request& request, reflection::Response& response) const;

 private:
  // Adds `file` and what it imports, each once, if they are described.
  void AddFile(const std::string& name, absl::flat_hash_set<std::string>& sent,
               reflection::Response& response) const;

  std::vector<std::string> services_;
  absl::flat_hash_set<std::string> files_;  // The files the services need.
};

// A ServerBuilder option that drops gRPC's reflection plugin (which
// InitProtoReflectionServerBuilderPlugin installs for every server).
std::unique_ptr<grpc::ServerBuilderOption> WithoutReflectionPlugin();

}  // namespace picker::api

#endif  // PICKER_SERVER_API_REFLECTION_H_
