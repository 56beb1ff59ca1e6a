// absl::Status and grpc::Status share their codes (the core's errors use the
// gRPC codes of the contract), so the mapping is a cast.
#ifndef PICKER_SERVER_API_STATUS_H_
#define PICKER_SERVER_API_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace picker::api {

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace picker::api

#endif  // PICKER_SERVER_API_STATUS_H_
