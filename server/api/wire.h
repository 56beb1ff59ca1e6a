// Requests and answers as bytes, for handlers that parse their own requests.
//
// gRPC C++ (1.51) answers a unary request that does not parse with
// UNIMPLEMENTED and no message, and ends a stream whose next message does not
// parse as if the client had closed it, with OK. The client then learns
// nothing, yet it is easy to get there: a C++ client that passes on a header
// value that is not UTF-8 sends a proto3 string that protobuf refuses to
// parse. picker's handlers (Picker's and Admin's) take the bytes instead, so
// that such a client hears INVALID_ARGUMENT and which field it was.
#ifndef PICKER_SERVER_API_WIRE_H_
#define PICKER_SERVER_API_WIRE_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace picker::api {

// Makes protobuf's parse errors (it logs them; its parse calls return only
// false) available to ParseFromWire instead of printing them. Call once
// before serving; other protobuf log lines still go where they went.
void CaptureProtobufParseErrors();

// Parses `wire` into `message`. If it does not parse: INVALID_ARGUMENT
// "not a valid <message type>", with protobuf's reason when it gave one
// (which names the field); callers put the request's name in front.
absl::Status ParseFromWire(const grpc::ByteBuffer& wire, google::protobuf::Message& message);

// Serializes `message` into `wire`.
void SerializeToWire(const google::protobuf::Message& message, grpc::ByteBuffer& wire);

}  // namespace picker::api

#endif  // PICKER_SERVER_API_WIRE_H_
