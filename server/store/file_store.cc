#include "server/store/file_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/arena.h"
#include "server/api/convert.h"
#include "server/core/hash/hash.h"
#include "server/store/store.pb.h"

namespace picker::store {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'P', 'I', 'C', 'K', 'R', 'E', 'C', '1'};
constexpr size_t kHeaderSize = sizeof(kMagic) + 8 + 8;  // magic, length, checksum
constexpr char kRecordSuffix[] = ".rec";
// A record's temporary files are named "<record>.tmp", or "<record>.tmp<n>"
// when staged in a batch.
constexpr char kTempSuffix[] = ".rec.tmp";
// A writing thread's buffers for records grow to this at most.
constexpr size_t kMaxBufferKept = 4 << 20;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Errno("cannot open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot fsync directory", dir);
  return absl::OkStatus();
}

// Reads and checks one record; the payload on success.
absl::StatusOr<std::string> ReadRecord(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errno("cannot read", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();
  if (data.size() < kHeaderSize || std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a picker record (bad header)"));
  }
  const uint64_t length = GetU64(data.data() + sizeof(kMagic));
  const uint64_t checksum = GetU64(data.data() + sizeof(kMagic) + 8);
  if (data.size() - kHeaderSize != length) {
    return absl::DataLossError(absl::StrCat(path, ": truncated record (", data.size() - kHeaderSize,
                                            " of ", length, " bytes)"));
  }
  std::string payload = data.substr(kHeaderSize);
  if (core::XxHash64(payload) != checksum) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch"));
  }
  return payload;
}

// Serializes `message` into `data` as a file holds it: magic, length,
// checksum, then the payload. `data` keeps its capacity, so a caller can
// reuse one string from write to write.
bool EncodeRecord(const google::protobuf::MessageLite& message, std::string* data) {
  data->assign(kHeaderSize, '\0');
  if (!message.AppendToString(data)) return false;
  const std::string_view payload = std::string_view(*data).substr(kHeaderSize);
  std::string header(kMagic, sizeof(kMagic));
  PutU64(header, payload.size());
  PutU64(header, core::XxHash64(payload));
  data->replace(0, kHeaderSize, header);
  return true;
}

// Encodes an upstream's record into `data` (see EncodeRecord).
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
    auto& stored =
        *google::protobuf::Arena::CreateMessage<picker::store::v1::StoredUpstream>(&arena);
    *stored.mutable_upstream() = api::ToProto(record.config);
    stored.mutable_targets()->Reserve(static_cast<int>(record.targets.size()));
    for (const core::StoredTarget& t : record.targets) {
      picker::store::v1::StoredTarget* out = stored.add_targets();
      api::ToProto(t.config, out->mutable_target());
      out->set_health_override(api::ToProto(t.health_override));
    }
    encoded = EncodeRecord(stored, data);
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

}  // namespace

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Open(const std::string& dir) {
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
  return std::unique_ptr<FileStore>(new FileStore(dir, fd, upstreams_fd));
}

FileStore::~FileStore() {
  ::close(upstreams_fd_);
  ::close(lock_fd_);
}

absl::Status FileStore::SyncUpstreamsDir() {
  if (::fsync(upstreams_fd_) != 0) return Errno("cannot fsync directory", UpstreamsDir());
  return absl::OkStatus();
}

std::string FileStore::UpstreamPath(absl::string_view name) const {
  // Names are [A-Za-z0-9._-]; the prefix keeps "." and ".." ordinary names.
  return (fs::path(dir_) / "upstreams" / absl::StrCat("u-", name, kRecordSuffix)).string();
}

std::string FileStore::UpstreamsDir() const { return (fs::path(dir_) / "upstreams").string(); }

bool FileStore::Staging() {
  std::lock_guard<std::mutex> lock(mu_);
  return batch_owner_ == std::this_thread::get_id();
}

absl::Status FileStore::WriteRecord(const std::string& path, const std::string& data,
                                    const std::string& tmp, bool staged) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Errno("cannot write", tmp);
    }
    written += static_cast<size_t>(n);
  }
  if (staged) {
    // CommitBatch syncs and renames it.
    if (::close(fd) != 0) return Errno("cannot write", tmp);
    return absl::OkStatus();
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return Errno("cannot fsync", tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot rename", tmp);
  return SyncDirectory(fs::path(path).parent_path().string());
}

absl::StatusOr<std::vector<core::UpstreamRecord>> FileStore::Load() {
  std::vector<std::string> paths;
  for (const fs::directory_entry& entry : fs::directory_iterator(fs::path(dir_) / "upstreams")) {
    const std::string path = entry.path().string();
    if (path.find(kTempSuffix) != std::string::npos) {
      // An interrupted write that was never acknowledged.
      fs::remove(entry.path());
      continue;
    }
    if (path.ends_with(kRecordSuffix)) paths.push_back(path);
  }
  std::sort(paths.begin(), paths.end());
  std::vector<core::UpstreamRecord> records;
  records.reserve(paths.size());
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> payload = ReadRecord(path);
    if (!payload.ok()) return payload.status();
    // On an arena, as when written: parsed on the heap, every target's
    // messages were mallocs and frees that fragmented the heap the loaded
    // state then grows in.
    google::protobuf::Arena arena;
    auto& stored =
        *google::protobuf::Arena::CreateMessage<picker::store::v1::StoredUpstream>(&arena);
    if (!stored.ParseFromString(*payload)) {
      return absl::DataLossError(absl::StrCat(path, ": record does not parse"));
    }
    absl::StatusOr<core::UpstreamConfig> config = api::FromProto(stored.upstream());
    if (!config.ok()) {
      return absl::DataLossError(absl::StrCat(path, ": ", config.status().message()));
    }
    core::UpstreamRecord& record = records.emplace_back();
    record.config = *std::move(config);
    record.targets.reserve(stored.targets_size());
    for (const picker::store::v1::StoredTarget& t : stored.targets()) {
      absl::StatusOr<core::TargetConfig> target = api::FromProto(t.target(), "target");
      absl::StatusOr<core::HealthOverride> health = api::FromProto(t.health_override());
      if (!target.ok() || !health.ok()) {
        return absl::DataLossError(absl::StrCat(path, ": bad target record"));
      }
      record.targets.push_back({*std::move(target), *health});
    }
  }
  return records;
}

absl::Status FileStore::Put(const core::UpstreamRecord& record) {
  // The encoded record's string is kept from write to write (up to a bound):
  // a new one of tens of kilobytes each time came from the top of the heap,
  // which the free gave back to the kernel, so that every write faulted its
  // pages in afresh; that doubled the cost of a 1000-target write.
  thread_local std::string data;
  absl::Cleanup release_large = [] {
    if (data.capacity() > kMaxBufferKept) std::string().swap(data);
  };
  if (absl::Status s = EncodeUpstream(record, &data); !s.ok()) return s;
  const std::string path = UpstreamPath(record.config.name);
  if (!Staging()) {
    if (absl::Status s = WriteRecord(path, data, path + ".tmp", false); !s.ok()) {
      return s;
    }
    DropStaged(path);  // A durable write supersedes a staged one.
    return absl::OkStatus();
  }
  // Each staged write has a file of its own: a later write to the same
  // record that fails half way must not spoil the one before it, which
  // will be acknowledged.
  std::string tmp;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tmp = absl::StrCat(path, ".tmp", ++staged_writes_);
  }
  if (absl::Status s = WriteRecord(path, data, tmp, true); !s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  Stage(path, tmp);
  return absl::OkStatus();
}

absl::Status FileStore::Delete(absl::string_view name) {
  const std::string path = UpstreamPath(name);
  if (Staging()) {
    Stage(path, std::nullopt);
    return absl::OkStatus();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("cannot remove", path);
  DropStaged(path);
  return SyncUpstreamsDir();
}

void FileStore::Stage(const std::string& path, std::optional<std::string> tmp) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string>& staged = staged_[path];
  // The record's earlier staged file, if any, is superseded.
  if (staged) ::unlink(staged->c_str());
  staged = std::move(tmp);
}

void FileStore::DropStaged(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = staged_.find(path);
  if (it == staged_.end()) return;
  if (it->second) ::unlink(it->second->c_str());
  staged_.erase(it);
}

void FileStore::BeginBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  batch_owner_ = std::this_thread::get_id();
}

absl::Status FileStore::CommitBatch() {
  std::map<std::string, std::optional<std::string>> staged;
  {
    std::lock_guard<std::mutex> lock(mu_);
    staged.swap(staged_);
    batch_owner_.reset();
  }
  if (staged.empty()) return absl::OkStatus();
  // First the staged records' data: a rename must never reach the disk
  // before the data it names.
  std::vector<const std::string*> files;
  for (const auto& [path, tmp] : staged) {
    if (tmp) files.push_back(&*tmp);
  }
  if (files.size() == 1) {
    // One file: its own fsync, as outside a batch.
    const int fd = ::open(files[0]->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open", *files[0]);
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return Errno("cannot fsync", *files[0]);
  } else if (files.size() > 1) {
    // Several: one syncfs of the filesystem instead of an fsync per file,
    // each of which would wait for its own journal commit.
    if (::syncfs(upstreams_fd_) != 0) return Errno("cannot syncfs", UpstreamsDir());
  }
  // Then the names, and the directory once.
  for (const auto& [path, tmp] : staged) {
    if (tmp) {
      if (::rename(tmp->c_str(), path.c_str()) != 0) return Errno("cannot rename", *tmp);
    } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Errno("cannot remove", path);
    }
  }
  return SyncUpstreamsDir();
}

absl::StatusOr<uint64_t> FileStore::NextEpoch() {
  const std::string path = (fs::path(dir_) / "meta.rec").string();
  picker::store::v1::StoreMeta meta;
  if (fs::exists(path)) {
    absl::StatusOr<std::string> payload = ReadRecord(path);
    if (!payload.ok()) return payload.status();
    if (!meta.ParseFromString(*payload)) {
      return absl::DataLossError(absl::StrCat(path, ": record does not parse"));
    }
  }
  meta.set_epoch(meta.epoch() + 1);
  std::string data;
  if (!EncodeRecord(meta, &data)) {
    return absl::InternalError("cannot encode the store's meta record");
  }
  if (absl::Status s = WriteRecord(path, data, path + ".tmp", false); !s.ok()) return s;
  return meta.epoch();
}

}  // namespace picker::store
