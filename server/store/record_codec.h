// Translation between the core's records and the file store's own schema
// (store.proto). Records hold effective values both ways.
#ifndef PICKER_SERVER_STORE_RECORD_CODEC_H_
#define PICKER_SERVER_STORE_RECORD_CODEC_H_

#include "absl/status/statusor.h"
#include "server/core/record.h"
#include "server/store/store.pb.h"

namespace picker::store {

void Encode(const core::UpstreamRecord& record, v1::StoredUpstream* out);
// DATA_LOSS naming the part that does not decode.
absl::StatusOr<core::UpstreamRecord> Decode(const v1::StoredUpstream& stored);

}  // namespace picker::store

#endif  // PICKER_SERVER_STORE_RECORD_CODEC_H_
