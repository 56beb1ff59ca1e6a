// The embedded default store: one file per upstream under a data directory.
//
// Each upstream is one record written whole: to a temporary file, fsync'd,
// renamed over the old one, and the directory fsync'd, so a crash at any
// moment leaves either the old record or the new one, never a mix. Records
// carry a magic, a length and an xxHash64 checksum: a damaged or truncated
// file stops start-up with its name, it is never silently dropped. A lock on
// the directory keeps a second server from sharing it.
#ifndef PICKER_SERVER_STORE_FILE_STORE_H_
#define PICKER_SERVER_STORE_FILE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/store.h"

namespace picker::store {

class FileStore final : public core::Store {
 public:
  // Creates the directory if needed and locks it.
  static absl::StatusOr<std::unique_ptr<FileStore>> Open(const std::string& dir);
  ~FileStore() override;

  absl::StatusOr<std::vector<core::UpstreamRecord>> Load() override;
  absl::Status Put(const core::UpstreamRecord& record) override;
  absl::Status Delete(absl::string_view name) override;
  absl::StatusOr<uint64_t> NextEpoch() override;

 private:
  FileStore(std::string dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}
  std::string UpstreamPath(absl::string_view name) const;
  absl::Status WriteRecord(const std::string& path, const std::string& payload);

  const std::string dir_;
  const int lock_fd_;
};

}  // namespace picker::store

#endif  // PICKER_SERVER_STORE_FILE_STORE_H_
