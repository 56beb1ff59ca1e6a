// A small streaming JSON writer: enough for answers built field by field,
// with strings escaped as RFC 8259 requires (and bytes that are not UTF-8
// replaced by U+FFFD, so the output always parses).
//
//   JsonWriter json;
//   json.BeginObject();
//   json.Key("name").String("users");
//   json.Key("targets").BeginArray().Number(1).Null().EndArray();
//   json.EndObject();
//   std::string text = std::move(json).Take();   // {"name":"users","targets":[1,null]}
#ifndef PICKER_SERVER_HTTP_JSON_H_
#define PICKER_SERVER_HTTP_JSON_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace picker::http {

// `text` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // An object member's name; the value follows.
  JsonWriter& Key(absl::string_view name);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Number(int64_t value);
  JsonWriter& Number(uint64_t value);
  JsonWriter& Number(uint32_t value) { return Number(static_cast<uint64_t>(value)); }
  JsonWriter& Number(int value) { return Number(static_cast<int64_t>(value)); }
  // A finite double with up to 6 significant digits; NaN and infinities as null.
  JsonWriter& Number(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // A value that is JSON already (another serializer's output).
  JsonWriter& Raw(absl::string_view json);

  std::string Take() && { return std::move(out_); }

 private:
  // Writes the comma before a value or key when one is needed.
  void Separate();

  std::string out_;
  // Per open container: has it a member yet. After Key, the value needs no comma.
  std::vector<bool> has_member_;
  bool after_key_ = false;
};

}  // namespace picker::http

#endif  // PICKER_SERVER_HTTP_JSON_H_
