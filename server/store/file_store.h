// The embedded default store: two slot files per upstream under a data
// directory.
//
// An upstream's record is written whole, in turn to `u-<name>.slot0` and
// `u-<name>.slot1`, each time over the slot that holds the older record.
// A record carries a sequence number, its length and a checksum (xxHash64
// of the payload seeded with the sequence number); at load the newest whole
// record wins. A write is one write in place and one fdatasync (a single
// flush of the disk), with no file created, renamed or removed; a crash
// during it leaves the other slot, the previous acknowledged record, whole.
// A damaged slot beside a whole one is taken for such an interrupted write:
// the whole one is loaded and the damage logged. When no slot is whole,
// start-up stops with the file names: a record is never silently dropped.
//
// An upstream's first record is written to a temporary file, synced and
// renamed into slot 0 (and the directory synced), so that a crash cannot
// leave it with nothing but a torn record; its second slot is created, with
// a directory sync, by its second write. A lock on the directory keeps a
// second server from sharing it. Records of the layout before slots (one
// `u-<name>.rec` per upstream, replaced by rename) are moved into slots at
// open.
//
// Revisions: a start's changes are numbered from (boot << 32) + 1, so they
// grow across restarts without being written; the boot counter is kept in
// the file `meta`, two framed slots overwritten in place (so that a start
// needs no free disk space). Every record the first Load reads is at the
// start's revision, boot << 32. Watchers are told of every committed change;
// the last ChangeFeed::kDefaultHistory changes are kept for watchers that
// come back, and changes from before this start are gone (compacted).
//
// In a batch (core::Store::BeginBatch), a Put writes its slot (or a new
// upstream's temporary file) without syncing it, and a Delete only notes
// the removal. CommitBatch syncs the written files (one fdatasync for one,
// one syncfs for more), then renames new upstreams' files into place and
// makes the removals, with one directory sync if it did either: a lone
// write to an existing upstream costs one flush. All of a record's writes
// in a batch, and a write from another thread while one of its writes is
// staged, go to the staged slot, so that the other slot keeps the durable
// record until the commit. A staged write that reached the page cache may
// be loaded after a crash of the process before its commit; it was never
// acknowledged, so either answer is right. Watchers hear of a batch's
// changes, numbered, once the commit has made them durable.
//
// Folder: server/store owns the embedded store's files and record schema
// (store.proto). It may use core/ only.
#ifndef PICKER_SERVER_STORE_FILE_STORE_H_
#define PICKER_SERVER_STORE_FILE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "server/core/stats.h"
#include "server/core/store.h"

namespace picker::store {

class FileStore final : public core::Store {
 public:
  // Creates the directory if needed, locks it, and counts this start's
  // boot. The first Load reads the records (moving old layouts into the
  // current one); write to a directory that holds records only after it.
  // `stats`, when given, must outlive the store: it counts the damaged
  // records found at start.
  static absl::StatusOr<std::unique_ptr<FileStore>> Open(const std::string& dir,
                                                         core::ProcessStats* stats = nullptr);
  ~FileStore() override;

  absl::StatusOr<core::StoreState> Load(core::StoreWatcher* watcher) override;
  absl::Status Watch(uint64_t revision, core::StoreWatcher* watcher) override;
  void Unwatch(core::StoreWatcher* watcher) override;
  using core::Store::Put;
  absl::StatusOr<uint64_t> Put(core::RecordPtr record,
                               uint64_t expected_revision = core::kAnyRevision) override;
  absl::StatusOr<uint64_t> Delete(absl::string_view name,
                                  uint64_t expected_revision = core::kAnyRevision) override;
  void BeginBatch() override;
  absl::StatusOr<uint64_t> CommitBatch() override;
  uint64_t boot() const override { return boot_; }

 private:
  // What the store knows of one upstream's slot files.
  struct Slots {
    uint64_t seq = 0;           // The newest record's sequence number.
    uint64_t mod_revision = 0;  // Of the newest durable record.
    // The slot of the newest durable record (0 or 1); -1 while the
    // upstream's creation is staged (see WritePath).
    int durable = -1;
    bool exists[2] = {false, false};
    uint64_t size[2] = {0, 0};  // File sizes, to truncate only when one shrinks.
    int fd[2] = {-1, -1};       // Open files (see open_files_).
  };
  // A record's change staged in the current batch.
  struct Staged {
    bool remove = false;
    int slot = -1;           // The slot written (not for a removal).
    std::string data;        // The bytes written, to restore if a later write fails.
    core::RecordPtr record;  // For the watchers.
  };
  // The files of one upstream found at open.
  struct Found {
    std::string slot[2];
    std::string legacy;
  };

  FileStore(std::string dir, int lock_fd, int upstreams_fd)
      : dir_(std::move(dir)), lock_fd_(lock_fd), upstreams_fd_(upstreams_fd) {}
  // Reads the records from the directory (the first Load); moves old
  // layouts into slots. Requires mu_.
  absl::StatusOr<std::vector<core::RevisionedRecord>> ScanLocked();
  // Loads one upstream's newest whole record from the files found.
  absl::StatusOr<core::UpstreamRecord> LoadUpstream(const std::string& name, const Found& files,
                                                    Slots& slots);
  std::map<std::string, Found> ScanUpstreams();
  // Reads the newest durable record of every upstream (a Load after the
  // first). Requires mu_.
  absl::StatusOr<std::vector<core::RevisionedRecord>> ReadAllLocked();
  std::string SlotPath(absl::string_view name, int slot) const;
  // Where a slot is written: its file, or, for slot 0 of an upstream whose
  // creation is staged, the temporary file the commit renames into place.
  std::string WritePath(absl::string_view name, const Slots& slots, int slot) const;
  // Renames a staged creation's temporary file into slot 0 (unsynced).
  absl::Status PlaceCreatedLocked(const std::string& name, Slots& slots);
  std::string UpstreamsDir() const;
  // True when the calling thread began the current batch. Requires mu_.
  bool StagingLocked() const { return batch_owner_ == std::this_thread::get_id(); }
  // An upstream's first record, outside a batch: a temporary file renamed
  // over slot 0.
  absl::Status CreateLocked(const std::string& name, std::string& data);
  // A write of an existing record, or of any record in a batch.
  absl::Status WriteLocked(const std::string& name, std::string& data, bool staging);
  // The open file of a slot, opened (or created, with a directory sync)
  // if need be.
  absl::StatusOr<int> SlotFileLocked(const std::string& name, Slots& slots, int slot);
  void CloseFilesLocked(Slots& slots);
  // Writes `data` over slot `slot` of `name`, unsynced.
  absl::Status WriteSlotLocked(const std::string& name, Slots& slots, int slot,
                               const std::string& data);
  // Removes both slot files of `name`, the older first, so that a crash in
  // between leaves the newest record.
  absl::Status RemoveLocked(const std::string& name);
  // Syncs the slots a batch wrote: one fdatasync for one, a syncfs for more.
  absl::Status SyncStagedLocked(const std::map<std::string, Staged>& staged);
  // Makes the names in the upstreams directory durable.
  absl::Status SyncUpstreamsDir();
  // The mod revision of `name`'s durable record (0: none). Requires mu_.
  uint64_t ModRevisionLocked(absl::string_view name) const;

  const std::string dir_;
  const int lock_fd_;
  // The upstreams directory, open for the store's life: commits sync it.
  const int upstreams_fd_;
  uint64_t boot_ = 0;
  core::ProcessStats* stats_ = nullptr;

  mutable std::mutex mu_;  // Guards everything below; held across a write's I/O.
  std::optional<std::thread::id> batch_owner_;
  absl::flat_hash_map<std::string, Slots> slots_;
  std::map<std::string, Staged> staged_;
  bool scanned_ = false;  // The first Load has read the directory.
  core::ChangeFeed feed_;
  // Slot files are kept open from write to write, which saves an open (a
  // path walk) and a close per write; past kMaxOpenFiles they are all
  // closed, so the store never holds more than that many descriptors.
  static constexpr size_t kMaxOpenFiles = 128;
  std::vector<std::string> open_files_;  // Names whose Slots hold an fd.
  // Set when a failed write could not put back a staged record's bytes: the
  // commit then fails, as the record it would vouch for is gone.
  absl::Status batch_error_;
};

}  // namespace picker::store

#endif  // PICKER_SERVER_STORE_FILE_STORE_H_
