// The embedded default store: one file per upstream under a data directory.
//
// Each upstream is one record written whole: to a temporary file, fsync'd,
// renamed over the old one, and the directory fsync'd, so a crash at any
// moment leaves either the old record or the new one, never a mix. Records
// carry a magic, a length and an xxHash64 checksum: a damaged or truncated
// file stops start-up with its name, it is never silently dropped. A lock on
// the directory keeps a second server from sharing it.
//
// In a batch (core::Store::BeginBatch), a Put writes its temporary file
// without syncing it and a Delete only notes the removal; CommitBatch syncs
// the staged files (one fsync for one file, one syncfs for more), renames
// and removes, then syncs the directory once: two syncs for the batch
// instead of two per write. A crash before CommitBatch leaves temporary
// files, which Load removes: none of the batch had been acknowledged.
#ifndef PICKER_SERVER_STORE_FILE_STORE_H_
#define PICKER_SERVER_STORE_FILE_STORE_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

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
  void BeginBatch() override;
  absl::Status CommitBatch() override;

 private:
  FileStore(std::string dir, int lock_fd, int upstreams_fd)
      : dir_(std::move(dir)), lock_fd_(lock_fd), upstreams_fd_(upstreams_fd) {}
  std::string UpstreamPath(absl::string_view name) const;
  std::string UpstreamsDir() const;
  // Writes an encoded record (magic, length, checksum, payload) at `path`
  // through the temporary file `tmp`:
  // synced and renamed into place, or, when `staged`, left for CommitBatch.
  absl::Status WriteRecord(const std::string& path, const std::string& data, const std::string& tmp,
                           bool staged);
  // True when the calling thread began the current batch.
  bool Staging();
  // Notes the staged change of a record (its staged file, or nullopt for a
  // removal), removing the file of a change to it staged before.
  void Stage(const std::string& path, std::optional<std::string> tmp);
  // Forgets a record's staged change, after a durable write from outside
  // the batch superseded it.
  void DropStaged(const std::string& path);

  // Makes the names in the upstreams directory durable.
  absl::Status SyncUpstreamsDir();

  const std::string dir_;
  const int lock_fd_;
  // The upstreams directory, open for the store's life: each commit syncs
  // it, and opening it each time cost a path walk and two system calls.
  const int upstreams_fd_;

  std::mutex mu_;
  std::optional<std::thread::id> batch_owner_;  // Guarded by mu_.
  // The staged change of each record path (guarded by mu_): the file to
  // rename over it, or nullopt to remove it.
  std::map<std::string, std::optional<std::string>> staged_;
  uint64_t staged_writes_ = 0;  // Guarded by mu_; numbers the staged files.
};

}  // namespace picker::store

#endif  // PICKER_SERVER_STORE_FILE_STORE_H_
