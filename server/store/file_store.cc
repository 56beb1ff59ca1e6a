#include "server/store/file_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/arena.h"
#include "server/core/hash/hash.h"
#include "server/store/record_codec.h"
#include "server/store/store.pb.h"
#include "spdlog/spdlog.h"

namespace picker::store {
namespace {

namespace fs = std::filesystem;

// How a file frames its payload: an 8-byte magic, a sequence number if the
// file is numbered, the payload's length and checksum (xxHash64 of the
// payload seeded with the sequence number, or 0), then the payload. Numbers
// are little-endian.
struct Framing {
  std::string_view magic;
  bool numbered;
  size_t header_size() const { return magic.size() + (numbered ? 8 : 0) + 16; }
};
constexpr Framing kSlotFraming{"PICKSLT1", true};
// The meta record, and each upstream's record before slots.
constexpr Framing kRecordFraming{"PICKREC1", false};
constexpr const char* kSlotSuffix[2] = {".slot0", ".slot1"};
constexpr char kLegacySuffix[] = ".rec";
// A writing thread's buffers for records grow to this at most.
constexpr size_t kMaxBufferKept = 4 << 20;
// A slot's size when a failed write left it unknown.
constexpr uint64_t kUnknownSize = std::numeric_limits<uint64_t>::max();

// A failed call on `path`. A full disk or quota is a state, not a fault:
// RESOURCE_EXHAUSTED naming the disk, and the write that met it changes
// nothing (its slot is not the one holding the last acknowledged record).
absl::Status Errno(absl::string_view what, const std::string& path) {
  const int error = errno;
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the disk of the data directory is full: ", what, " ", path, ": ",
                     std::strerror(error), "; writes resume when space is freed"));
  }
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(error)));
}

void StoreU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t LoadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// Temporary files: "<record>.tmp", or, from the layout before slots,
// "u-<name>.rec.tmp<n>". An upstream's own name never ends a file name, so
// a name such as "x.tmp" is no temporary file.
bool IsTemporary(absl::string_view file) {
  if (absl::EndsWith(file, ".tmp")) return true;
  const size_t at = file.rfind(".rec.tmp");
  if (at == absl::string_view::npos || at + 8 == file.size()) return false;
  for (char c : file.substr(at + 8)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Writes `data` at the start of the file (a slot is rewritten whole, in place).
absl::Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + written, data.size() - written, static_cast<off_t>(written));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadFile(const std::string& path, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot read", path);
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  struct stat st;
  if (::fstat(fd, &st) != 0) return Errno("cannot stat", path);
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    const ssize_t n = ::pread(fd, out->data() + done, out->size() - done, done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read", path);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return absl::OkStatus();
}

struct Framed {
  uint64_t seq = 0;
  std::string payload;
};

// Checks `data` framed as `framing` says. With `padded`, bytes after the
// payload are allowed (the meta file's slots are padded with zeros).
absl::StatusOr<Framed> ParseFramed(const Framing& framing, std::string data,
                                   const std::string& path, bool padded = false) {
  const size_t header = framing.header_size();
  if (data.empty()) return absl::DataLossError(absl::StrCat(path, ": empty"));
  if (data.size() < header || !std::string_view(data).starts_with(framing.magic)) {
    return absl::DataLossError(absl::StrCat(path, ": not a picker record (bad header)"));
  }
  const char* fields = data.data() + framing.magic.size();
  Framed framed;
  if (framing.numbered) {
    framed.seq = LoadU64(fields);
    fields += 8;
  }
  const uint64_t length = LoadU64(fields);
  const uint64_t checksum = LoadU64(fields + 8);
  const uint64_t available = data.size() - header;
  if (padded ? available < length : available != length) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated record (", available, " of ", length, " bytes)"));
  }
  data = data.substr(header, length);
  if (core::XxHash64(data, framed.seq) != checksum) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch"));
  }
  framed.payload = std::move(data);
  return framed;
}

// Reads and checks a file framed as `framing` says.
absl::StatusOr<Framed> ReadFramed(const Framing& framing, const std::string& path) {
  std::string data;
  if (absl::Status s = ReadFile(path, &data); !s.ok()) return s;
  return ParseFramed(framing, std::move(data), path);
}

// Serializes `message` into `data` after `header_size` bytes left for the
// header. `data` keeps its capacity, so a caller can reuse one string from
// write to write.
bool EncodePayload(const google::protobuf::MessageLite& message, size_t header_size,
                   std::string* data) {
  data->assign(header_size, '\0');
  return message.AppendToString(data);
}

// Fills the header that EncodePayload left in `data`; `seq` is only for a
// numbered framing.
void Seal(const Framing& framing, uint64_t seq, std::string* data) {
  if (!framing.numbered) seq = 0;  // As ReadFramed checks it.
  const std::string_view payload = std::string_view(*data).substr(framing.header_size());
  char* header = data->data();
  std::memcpy(header, framing.magic.data(), framing.magic.size());
  header += framing.magic.size();
  if (framing.numbered) {
    StoreU64(header, seq);
    header += 8;
  }
  StoreU64(header, payload.size());
  StoreU64(header + 8, core::XxHash64(payload, seq));
}

// Encodes an upstream's record into `data`, its header left for Seal.
absl::Status EncodeUpstream(const core::UpstreamRecord& record, std::string* data) {
  // Each writing thread keeps one buffer for the record's messages, grown to
  // the largest record it has written: the arena takes its first block from
  // it, so that building the messages allocates nothing. On the heap a
  // target costs a few mallocs and frees: half of a 1000-target write's CPU.
  thread_local std::vector<char> buffer(16 << 10);
  google::protobuf::ArenaOptions options;
  options.initial_block = buffer.data();
  options.initial_block_size = buffer.size();
  size_t allocated = 0;
  bool encoded = false;
  {
    google::protobuf::Arena arena(options);
    auto& stored = *google::protobuf::Arena::CreateMessage<v1::StoredUpstream>(&arena);
    Encode(record, &stored);
    encoded = EncodePayload(stored, kSlotFraming.header_size(), data);
    allocated = arena.SpaceAllocated();
  }
  if (allocated > buffer.size() && allocated <= kMaxBufferKept) {
    buffer.assign(allocated + allocated / 4, 0);
  }
  if (!encoded) {
    return absl::ResourceExhaustedError(
        absl::StrCat("upstream \"", record.config.name, "\": record too large to store"));
  }
  return absl::OkStatus();
}

absl::StatusOr<core::UpstreamRecord> ParseUpstream(const std::string& payload,
                                                   const std::string& path) {
  // On an arena, as when written: parsed on the heap, every target's
  // messages were mallocs and frees that fragmented the heap the loaded
  // state then grows in.
  google::protobuf::Arena arena;
  auto& stored = *google::protobuf::Arena::CreateMessage<v1::StoredUpstream>(&arena);
  if (!stored.ParseFromString(payload)) {
    return absl::DataLossError(absl::StrCat(path, ": record does not parse"));
  }
  absl::StatusOr<core::UpstreamRecord> record = Decode(stored);
  if (!record.ok()) return absl::DataLossError(absl::StrCat(path, ": ", record.status().message()));
  return record;
}

// Writes `data` to `tmp`, syncs it, renames it over `path` and syncs the
// directory `dir_fd`: `path` then holds either its old content or `data`.
absl::Status ReplaceFile(const std::string& path, const std::string& tmp, const std::string& data,
                         int dir_fd, const std::string& dir) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  absl::Status status = WriteAll(fd, data, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = Errno("cannot fsync", tmp);
  ::close(fd);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = Errno("cannot rename", tmp);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  if (::fsync(dir_fd) != 0) return Errno("cannot fsync directory", dir);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The boot counter: the file `meta`, two slots of kMetaSlotBytes, each a
// numbered framed Meta record padded with zeros. The newer whole slot wins;
// a start overwrites the other in place (one pwrite, one fdatasync), into
// blocks that exist since the file was created, so a full disk does not stop
// a start.

constexpr size_t kMetaSlotBytes = 256;

// The meta slot bytes for `boot`, numbered `seq`.
std::string MetaSlot(uint64_t boot, uint64_t seq) {
  v1::Meta meta;
  meta.set_boot(boot);
  std::string data;
  EncodePayload(meta, kSlotFraming.header_size(), &data);
  Seal(kSlotFraming, seq, &data);
  data.resize(kMetaSlotBytes, '\0');
  return data;
}

// The boot of 0.1.0's meta.rec, or 0 when it has none.
absl::StatusOr<uint64_t> LegacyBoot(const std::string& path) {
  if (!fs::exists(path)) return 0;
  absl::StatusOr<Framed> record = ReadFramed(kRecordFraming, path);
  if (!record.ok()) return record.status();
  v1::LegacyMeta meta;
  if (!meta.ParseFromString(record->payload)) {
    return absl::DataLossError(absl::StrCat(path, ": record does not parse"));
  }
  return meta.epoch();
}

// Creates `meta` holding `boot` (the first start, or the first since 0.1.0).
absl::Status CreateMeta(const std::string& dir, uint64_t boot) {
  const std::string path = (fs::path(dir) / "meta").string();
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno("cannot open directory", dir);
  absl::Status status = ReplaceFile(
      path, path + ".tmp", MetaSlot(boot, 1) + std::string(kMetaSlotBytes, '\0'), dir_fd, dir);
  ::close(dir_fd);
  return status;
}

// Counts this start: the boot after the newest one in `meta`.
absl::StatusOr<uint64_t> CountBoot(const std::string& dir) {
  const std::string path = (fs::path(dir) / "meta").string();
  const std::string legacy = (fs::path(dir) / "meta.rec").string();
  if (!fs::exists(path)) {
    absl::StatusOr<uint64_t> last = LegacyBoot(legacy);
    if (!last.ok()) return last.status();
    if (absl::Status s = CreateMeta(dir, *last + 1); !s.ok()) {
      // Later starts overwrite `meta` in place and need no space.
      return absl::Status(s.code(), absl::StrCat(s.message(),
                                                 " (the first start of a data "
                                                 "directory, or the first since "
                                                 "0.1.0, writes `meta`)"));
    }
    if (*last > 0 && ::unlink(legacy.c_str()) != 0) return Errno("cannot remove", legacy);
    return *last + 1;
  }
  std::string data;
  if (absl::Status s = ReadFile(path, &data); !s.ok()) return s;
  data.resize(2 * kMetaSlotBytes, '\0');
  std::optional<Framed> newest;
  int newest_slot = 0;
  for (int k = 0; k < 2; ++k) {
    absl::StatusOr<Framed> slot = ParseFramed(
        kSlotFraming, data.substr(k * kMetaSlotBytes, kMetaSlotBytes), path, /*padded=*/true);
    if (slot.ok() && (!newest || slot->seq > newest->seq)) {
      newest = *std::move(slot);
      newest_slot = k;
    }
  }
  v1::Meta meta;
  if (!newest || !meta.ParseFromString(newest->payload)) {
    return absl::DataLossError(absl::StrCat(path, ": no whole boot counter"));
  }
  const uint64_t boot = meta.boot() + 1;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  const std::string slot = MetaSlot(boot, newest->seq + 1);
  const off_t at = static_cast<off_t>((1 - newest_slot) * kMetaSlotBytes);
  if (::pwrite(fd, slot.data(), slot.size(), at) != static_cast<ssize_t>(slot.size())) {
    return Errno("cannot write", path);
  }
  if (::fdatasync(fd) != 0) return Errno("cannot sync", path);
  return boot;
}

}  // namespace

// ---------------------------------------------------------------------------
// Opening.

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Open(const std::string& dir,
                                                           core::ProcessStats* stats) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "upstreams", ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create data directory ", dir, ": ", ec.message()));
  }
  const std::string lock_path = (fs::path(dir) / "LOCK").string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot open", lock_path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("data directory ", dir, " is in use by another picker-server"));
  }
  const std::string upstreams = (fs::path(dir) / "upstreams").string();
  const int upstreams_fd = ::open(upstreams.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (upstreams_fd < 0) {
    absl::Status error = Errno("cannot open directory", upstreams);
    ::close(fd);
    return error;
  }
  std::unique_ptr<FileStore> store(new FileStore(dir, fd, upstreams_fd));
  absl::StatusOr<uint64_t> boot = CountBoot(dir);
  if (!boot.ok()) return boot.status();
  store->boot_ = *boot;
  store->stats_ = stats;
  store->feed_.Reset(*boot << core::kRevisionBootShift);
  return store;
}

FileStore::~FileStore() {
  for (auto& [name, slots] : slots_) CloseFilesLocked(slots);
  ::close(upstreams_fd_);
  ::close(lock_fd_);
}

absl::Status FileStore::SyncUpstreamsDir() {
  if (::fsync(upstreams_fd_) != 0) return Errno("cannot fsync directory", UpstreamsDir());
  return absl::OkStatus();
}

std::string FileStore::SlotPath(absl::string_view name, int slot) const {
  // Names are [A-Za-z0-9._-]; the prefix keeps "." and ".." ordinary names.
  return absl::StrCat(UpstreamsDir(), "/u-", name, kSlotSuffix[slot]);
}

std::string FileStore::WritePath(absl::string_view name, const Slots& slots, int slot) const {
  std::string path = SlotPath(name, slot);
  if (slots.durable < 0) path += ".tmp";  // Being created: renamed into place on commit.
  return path;
}

absl::Status FileStore::PlaceCreatedLocked(const std::string& name, Slots& slots) {
  const std::string tmp = WritePath(name, slots, 0);
  const std::string path = SlotPath(name, 0);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename", tmp);
  slots.durable = 0;
  return absl::OkStatus();
}

std::string FileStore::UpstreamsDir() const { return (fs::path(dir_) / "upstreams").string(); }

std::map<std::string, FileStore::Found> FileStore::ScanUpstreams() {
  std::map<std::string, Found> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(UpstreamsDir())) {
    const std::string file = entry.path().filename().string();
    if (IsTemporary(file)) {
      // An interrupted write that was never acknowledged.
      fs::remove(entry.path());
      continue;
    }
    if (!absl::StartsWith(file, "u-")) continue;
    for (int k = 0; k < 2; ++k) {
      if (absl::EndsWith(file, kSlotSuffix[k])) {
        found[file.substr(2, file.size() - 2 - std::strlen(kSlotSuffix[k]))].slot[k] =
            entry.path().string();
      }
    }
    if (absl::EndsWith(file, kLegacySuffix)) {
      found[file.substr(2, file.size() - 2 - std::strlen(kLegacySuffix))].legacy =
          entry.path().string();
    }
  }
  return found;
}

absl::StatusOr<core::UpstreamRecord> FileStore::LoadUpstream(const std::string& name,
                                                             const Found& files, Slots& slots) {
  std::optional<Framed> newest;
  std::string newest_path;
  std::vector<std::string> damaged;
  for (int k = 0; k < 2; ++k) {
    if (files.slot[k].empty()) continue;
    slots.exists[k] = true;
    absl::StatusOr<Framed> content = ReadFramed(kSlotFraming, files.slot[k]);
    if (!content.ok()) {
      damaged.emplace_back(content.status().message());
      slots.size[k] = kUnknownSize;
      continue;
    }
    slots.size[k] = kSlotFraming.header_size() + content->payload.size();
    if (!newest || content->seq > newest->seq) {
      newest = *std::move(content);
      newest_path = files.slot[k];
      slots.durable = k;
    }
  }
  if (!newest && !files.legacy.empty()) {
    absl::StatusOr<Framed> legacy = ReadFramed(kRecordFraming, files.legacy);
    if (legacy.ok()) {
      newest = *std::move(legacy);
      newest_path = files.legacy;
    } else {
      damaged.emplace_back(legacy.status().message());
    }
  }
  if (!newest) {
    return absl::DataLossError(
        absl::StrCat("no whole record of upstream \"", name, "\": ", absl::StrJoin(damaged, "; ")));
  }
  if (!damaged.empty()) {
    // With slots, only an interrupted write, never acknowledged, leaves a
    // damaged slot beside a whole one; the whole one is the last record
    // acknowledged.
    spdlog::warn("store: {}; loading the record in {}, taken to be the last one acknowledged",
                 absl::StrJoin(damaged, "; "), newest_path);
    // An error as well: if the damaged file was the newer record, this is
    // a fall-back to an older one, which an operator should hear about.
    spdlog::error(
        "store: upstream \"{}\": {} record file(s) did not verify ({}); loaded the "
        "older whole record in {}",
        name, damaged.size(), absl::StrJoin(damaged, "; "), newest_path);
    if (stats_ != nullptr) {
      stats_->store_damaged_records.fetch_add(damaged.size(), std::memory_order_relaxed);
    }
  }
  absl::StatusOr<core::UpstreamRecord> record = ParseUpstream(newest->payload, newest_path);
  if (!record.ok()) return record.status();
  if (record->config.name != name) {
    return absl::DataLossError(
        absl::StrCat(newest_path, ": holds upstream \"", record->config.name, "\""));
  }
  slots.seq = newest->seq;
  if (slots.durable < 0) {
    // From the layout before slots: its record becomes slot 0.
    std::string data(kSlotFraming.header_size(), '\0');
    data += newest->payload;
    slots.seq = 1;
    Seal(kSlotFraming, slots.seq, &data);
    if (absl::Status s = ReplaceFile(SlotPath(name, 0), SlotPath(name, 0) + ".tmp", data,
                                     upstreams_fd_, UpstreamsDir());
        !s.ok()) {
      return s;
    }
    slots.durable = 0;
    slots.exists[0] = true;
    slots.size[0] = data.size();
  }
  if (!files.legacy.empty()) {
    // Its content is in a slot now (synced before): the old file goes.
    if (::unlink(files.legacy.c_str()) != 0) return Errno("cannot remove", files.legacy);
  }
  return record;
}

absl::StatusOr<std::vector<core::RevisionedRecord>> FileStore::ScanLocked() {
  const std::map<std::string, Found> found = ScanUpstreams();
  slots_.reserve(found.size());
  std::vector<core::RevisionedRecord> records;
  records.reserve(found.size());
  for (const auto& [name, files] : found) {
    Slots slots;
    absl::StatusOr<core::UpstreamRecord> record = LoadUpstream(name, files, slots);
    if (!record.ok()) return record.status();
    slots.mod_revision = feed_.revision();
    slots_.emplace(name, slots);  // Unless a write came first.
    records.push_back(core::RevisionedRecord{*std::move(record), feed_.revision()});
  }
  if (absl::Status s = SyncUpstreamsDir(); !s.ok()) return s;
  scanned_ = true;
  return records;
}

// ---------------------------------------------------------------------------
// Reading and watching.

absl::StatusOr<std::vector<core::RevisionedRecord>> FileStore::ReadAllLocked() {
  std::map<std::string, const Slots*> durable;
  for (const auto& [name, slots] : slots_) {
    if (slots.durable >= 0) durable.emplace(name, &slots);
  }
  std::vector<core::RevisionedRecord> records;
  records.reserve(durable.size());
  for (const auto& [name, slots] : durable) {
    const std::string path = SlotPath(name, slots->durable);
    absl::StatusOr<Framed> content = ReadFramed(kSlotFraming, path);
    if (!content.ok()) return content.status();
    absl::StatusOr<core::UpstreamRecord> record = ParseUpstream(content->payload, path);
    if (!record.ok()) return record.status();
    records.push_back(core::RevisionedRecord{*std::move(record), slots->mod_revision});
  }
  return records;
}

absl::StatusOr<core::StoreState> FileStore::Load(core::StoreWatcher* watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  core::StoreState state;
  state.revision = feed_.revision();
  absl::StatusOr<std::vector<core::RevisionedRecord>> records =
      scanned_ ? ReadAllLocked() : ScanLocked();
  if (!records.ok()) return records.status();
  state.records = *std::move(records);
  if (watcher != nullptr) feed_.Add(watcher);
  return state;
}

absl::Status FileStore::Watch(uint64_t revision, core::StoreWatcher* watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  return feed_.Watch(revision, watcher);
}

void FileStore::Unwatch(core::StoreWatcher* watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  feed_.Remove(watcher);
}

uint64_t FileStore::ModRevisionLocked(absl::string_view name) const {
  auto it = slots_.find(name);
  return it == slots_.end() || it->second.durable < 0 ? 0 : it->second.mod_revision;
}

// ---------------------------------------------------------------------------
// Writing.

void FileStore::CloseFilesLocked(Slots& slots) {
  for (int& fd : slots.fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

absl::StatusOr<int> FileStore::SlotFileLocked(const std::string& name, Slots& slots, int slot) {
  if (slots.fd[slot] >= 0) return slots.fd[slot];
  if (open_files_.size() >= kMaxOpenFiles / 2) {
    for (const std::string& open : open_files_) {
      if (auto it = slots_.find(open); it != slots_.end()) CloseFilesLocked(it->second);
    }
    open_files_.clear();
  }
  const std::string path = WritePath(name, slots, slot);
  const bool create = !slots.exists[slot];
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) return Errno(create ? "cannot create" : "cannot open", path);
  if (slots.fd[0] < 0 && slots.fd[1] < 0) open_files_.push_back(name);
  slots.fd[slot] = fd;
  slots.exists[slot] = true;
  // A new slot's name must be durable with the record it will hold (a
  // temporary file's is, by the directory sync after its rename).
  if (create && slots.durable >= 0) {
    if (absl::Status s = SyncUpstreamsDir(); !s.ok()) return s;
  }
  return fd;
}

absl::Status FileStore::WriteSlotLocked(const std::string& name, Slots& slots, int slot,
                                        const std::string& data) {
  absl::StatusOr<int> fd = SlotFileLocked(name, slots, slot);
  if (!fd.ok()) return fd.status();
  const uint64_t size_before = slots.size[slot];
  slots.size[slot] = kUnknownSize;  // Until the write is whole.
  const std::string path = WritePath(name, slots, slot);
  if (absl::Status s = WriteAll(*fd, data, path); !s.ok()) return s;
  if (size_before != data.size() && ::ftruncate(*fd, static_cast<off_t>(data.size())) != 0) {
    return Errno("cannot truncate", path);
  }
  slots.size[slot] = data.size();
  return absl::OkStatus();
}

absl::Status FileStore::CreateLocked(const std::string& name, std::string& data) {
  // A new upstream outside a batch: slot 0, whole or absent, at once.
  Seal(kSlotFraming, 1, &data);
  if (absl::Status s = ReplaceFile(SlotPath(name, 0), SlotPath(name, 0) + ".tmp", data,
                                   upstreams_fd_, UpstreamsDir());
      !s.ok()) {
    return s;
  }
  Slots& slots = slots_[name];
  slots.seq = 1;
  slots.durable = 0;
  slots.exists[0] = true;
  slots.size[0] = data.size();
  return absl::OkStatus();
}

absl::Status FileStore::WriteLocked(const std::string& name, std::string& data, bool staging) {
  // A new upstream in a batch is written to a temporary file that the commit
  // renames into slot 0; until then its slot 0 is that file.
  Slots& slots = slots_[name];
  auto staged = staged_.find(name);
  const bool has_staged_write = staged != staged_.end() && !staged->second.remove;
  // The slot of a staged write, or else the one not holding the durable record.
  const int slot = has_staged_write    ? staged->second.slot
                   : slots.durable < 0 ? 0
                                       : 1 - slots.durable;
  Seal(kSlotFraming, ++slots.seq, &data);
  absl::Status status = WriteSlotLocked(name, slots, slot, data);
  if (status.ok() && !staging) {
    if (::fdatasync(slots.fd[slot]) != 0) {
      status = Errno("cannot sync", WritePath(name, slots, slot));
    } else if (slots.durable < 0) {
      // Another thread's write to an upstream whose creation is staged.
      status = PlaceCreatedLocked(name, slots);
      if (status.ok()) status = SyncUpstreamsDir();
    }
  }
  if (!status.ok()) {
    if (has_staged_write) {
      // The slot held a staged write, to be acknowledged on commit: put its
      // bytes back, or fail the commit.
      absl::Status restored = WriteSlotLocked(name, slots, slot, staged->second.data);
      if (!restored.ok() && batch_error_.ok()) {
        batch_error_ = absl::DataLossError(absl::StrCat(
            "a staged write to upstream \"", name, "\" was overwritten by a failed one (",
            status.message(), ") and could not be put back: ", restored.message()));
      }
    } else if (slots.durable < 0) {
      // A creation that failed: nothing of it stays.
      RemoveLocked(name).IgnoreError();
    }
    return status;
  }
  if (staging) {
    Staged& entry = staged_[name];  // New, or a removal or write it supersedes.
    entry.remove = false;
    entry.slot = slot;
    entry.data = data;
    return absl::OkStatus();
  }
  // Durable now; it supersedes a staged write of the record.
  slots.durable = slot;
  if (has_staged_write) staged_.erase(staged);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FileStore::Put(core::RecordPtr record, uint64_t expected_revision) {
  // The encoded record's string is kept from write to write (up to a bound):
  // a new one of tens of kilobytes each time came from the top of the heap,
  // which the free gave back to the kernel, so that every write faulted its
  // pages in afresh; that doubled the cost of a 1000-target write.
  thread_local std::string data;
  absl::Cleanup release_large = [] {
    if (data.capacity() > kMaxBufferKept) std::string().swap(data);
  };
  if (absl::Status s = EncodeUpstream(*record, &data); !s.ok()) return s;
  const std::string& name = record->config.name;

  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s =
          core::CheckExpectedRevision(name, expected_revision, ModRevisionLocked(name));
      !s.ok()) {
    return s;
  }
  const bool staging = StagingLocked();
  absl::Status status = !slots_.contains(name) && !staging ? CreateLocked(name, data)
                                                           : WriteLocked(name, data, staging);
  if (!status.ok()) return status;
  if (staging) {
    staged_[name].record = record;
    return 0;
  }
  slots_[name].mod_revision = feed_.revision() + 1;
  return feed_.Commit({core::StoreEvent{0, name, std::move(record)}});
}

absl::Status FileStore::RemoveLocked(const std::string& name) {
  auto it = slots_.find(name);
  if (it == slots_.end()) return absl::OkStatus();
  CloseFilesLocked(it->second);
  if (it->second.durable < 0) {
    const std::string tmp = WritePath(name, it->second, 0);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return Errno("cannot remove", tmp);
    slots_.erase(it);
    return absl::OkStatus();
  }
  const int newest = it->second.durable;
  for (int slot : {1 - newest, newest}) {
    const std::string path = SlotPath(name, slot);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("cannot remove", path);
  }
  slots_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FileStore::Delete(absl::string_view name_view,
                                           uint64_t expected_revision) {
  const std::string name(name_view);
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s =
          core::CheckExpectedRevision(name, expected_revision, ModRevisionLocked(name));
      !s.ok()) {
    return s;
  }
  if (StagingLocked()) {
    if (slots_.contains(name)) staged_[name] = Staged{.remove = true};
    return 0;
  }
  if (!slots_.contains(name)) return feed_.revision();
  staged_.erase(name);
  if (absl::Status s = RemoveLocked(name); !s.ok()) return s;
  if (absl::Status s = SyncUpstreamsDir(); !s.ok()) return s;
  return feed_.Commit({core::StoreEvent{0, name, nullptr}});
}

void FileStore::BeginBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  batch_owner_ = std::this_thread::get_id();
}

absl::Status FileStore::SyncStagedLocked(const std::map<std::string, Staged>& staged) {
  const std::pair<const std::string, Staged>* only_write = nullptr;
  size_t writes = 0;
  for (const auto& change : staged) {
    if (!change.second.remove && ++writes == 1) only_write = &change;
  }
  if (writes == 1) {
    const auto& [name, change] = *only_write;
    auto it = slots_.find(name);
    if (it == slots_.end()) return absl::OkStatus();
    absl::StatusOr<int> fd = SlotFileLocked(name, it->second, change.slot);
    if (!fd.ok()) return fd.status();
    if (::fdatasync(*fd) != 0) {
      return Errno("cannot sync", WritePath(name, it->second, change.slot));
    }
  } else if (writes > 1) {
    // One syncfs of the filesystem instead of an fdatasync per file, each
    // of which would wait for a flush of its own.
    if (::syncfs(upstreams_fd_) != 0) return Errno("cannot syncfs", UpstreamsDir());
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FileStore::CommitBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, Staged> staged;
  staged.swap(staged_);
  batch_owner_.reset();
  if (absl::Status s = std::exchange(batch_error_, absl::OkStatus()); !s.ok()) return s;
  // The written slots first, then the removals.
  if (absl::Status s = SyncStagedLocked(staged); !s.ok()) return s;
  bool names_changed = false;
  std::vector<core::StoreEvent> events;
  for (auto& [name, change] : staged) {
    if (change.remove) {
      if (absl::Status s = RemoveLocked(name); !s.ok()) return s;
      names_changed = true;
    } else if (auto it = slots_.find(name); it != slots_.end()) {
      if (it->second.durable < 0) {
        if (absl::Status s = PlaceCreatedLocked(name, it->second); !s.ok()) return s;
        names_changed = true;
      }
      it->second.durable = change.slot;
      it->second.mod_revision = feed_.revision() + events.size() + 1;
    }
    events.push_back(core::StoreEvent{0, name, std::move(change.record)});
  }
  if (names_changed) {
    if (absl::Status s = SyncUpstreamsDir(); !s.ok()) return s;
  }
  return feed_.Commit(std::move(events));
}

}  // namespace picker::store
