#include "server/api/wire.h"

#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/slice.h"

namespace picker::api {
namespace {

// Where the parse running on this thread wants protobuf's first error line;
// null when no parse runs here.
thread_local std::string* parse_error = nullptr;
google::protobuf::LogHandler* previous_handler = nullptr;

void LogOrCapture(google::protobuf::LogLevel level, const char* filename, int line,
                  const std::string& message) {
  if (parse_error != nullptr) {
    if (parse_error->empty()) *parse_error = message;
    return;
  }
  if (previous_handler != nullptr) previous_handler(level, filename, line, message);
}

// "String field 'x.y' contains invalid UTF-8 data when parsing a protocol
// buffer. Use the 'bytes' type if ..." keeps what concerns the client.
std::string Reason(const std::string& logged) {
  std::string reason = logged.substr(0, logged.find(" when parsing"));
  while (!reason.empty() && (reason.back() == ' ' || reason.back() == '.')) reason.pop_back();
  return reason;
}

}  // namespace

void CaptureProtobufParseErrors() {
  static std::once_flag once;
  std::call_once(once, [] { previous_handler = google::protobuf::SetLogHandler(&LogOrCapture); });
}

absl::Status ParseFromWire(const grpc::ByteBuffer& wire, google::protobuf::Message& message) {
  std::string error;
  parse_error = &error;
  bool parsed;
  grpc::Slice slice;
  if (wire.TrySingleSlice(&slice).ok()) {
    parsed = message.ParseFromArray(slice.begin(), static_cast<int>(slice.size()));
  } else {
    // The reader only reads the buffer (it decompresses into its own).
    grpc::ProtoBufferReader reader(const_cast<grpc::ByteBuffer*>(&wire));
    parsed = message.ParseFromZeroCopyStream(&reader);
  }
  parse_error = nullptr;
  if (parsed) return absl::OkStatus();
  const std::string type = message.GetDescriptor()->full_name();
  message.Clear();
  if (error.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid ", type, " (malformed protobuf encoding)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("not a valid ", type, ": ", Reason(error)));
}

void SerializeToWire(const google::protobuf::Message& message, grpc::ByteBuffer& wire) {
  bool own_buffer;
  // Fails only for a message over 2 GiB, which picker never builds.
  (void)grpc::SerializationTraits<google::protobuf::Message>::Serialize(message, &wire,
                                                                        &own_buffer);
}

}  // namespace picker::api
