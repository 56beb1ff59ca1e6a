// Fuzzes what the file store reads at start: an upstream's two slot files
// (and a record of the layout before slots), each either raw bytes or a
// record sealed around an arbitrary payload, so that both the header checks
// and the parsing behind the checksum are reached. Load must answer records
// or an error, never crash; and what it loads must come back the same after
// a write and another load.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "server/core/hash/hash.h"
#include "server/store/file_store.h"

namespace {

namespace fs = std::filesystem;

// The slot record's layout (server/store/file_store.cc): magic, sequence
// number, payload length, xxHash64 of the payload seeded with the sequence
// number, payload.
std::string Sealed(uint64_t seq, const std::string& payload) {
  std::string out = "PICKSLT1";
  for (uint64_t v : {seq, uint64_t{payload.size()}, picker::core::XxHash64(payload, seq)}) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  return out + payload;
}

void WriteFile(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// The data directory of this fuzzing process, removed when it exits; in
// memory where it can be, since each open syncs the boot counter.
struct ScratchDir {
  const fs::path path =
      (fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path()) /
      ("picker-store-fuzz-" + std::to_string(::getpid()));
  ~ScratchDir() { fs::remove_all(path); }
};

// The records a Load answers.
absl::StatusOr<std::vector<picker::core::UpstreamRecord>> Records(picker::store::FileStore& store) {
  absl::StatusOr<picker::core::StoreState> state = store.Load(nullptr);
  if (!state.ok()) return state.status();
  std::vector<picker::core::UpstreamRecord> out;
  for (picker::core::RevisionedRecord& r : state->records) out.push_back(std::move(r.record));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ScratchDir scratch;
  const fs::path& dir = scratch.path;
  if (size < 2) return 0;
  // Byte 0: which files exist and which are sealed; byte 1 splits the rest
  // between slot 0 and the other file.
  const uint8_t flags = data[0];
  const size_t split = 2 + (size - 2) * data[1] / 256;
  const std::string first(reinterpret_cast<const char*>(data) + 2, split - 2);
  const std::string second(reinterpret_cast<const char*>(data) + split, size - split);

  fs::remove_all(dir);
  fs::create_directories(dir / "upstreams");
  const fs::path upstreams = dir / "upstreams";
  WriteFile(upstreams / "u-f.slot0", flags & 1 ? Sealed(flags >> 4, first) : first);
  if (flags & 2) {
    WriteFile(upstreams / "u-f.slot1", flags & 4 ? Sealed((flags >> 4) ^ 1, second) : second);
  } else if (flags & 8) {
    WriteFile(upstreams / "u-f.rec", second);
  }

  std::vector<picker::core::UpstreamRecord> loaded;
  {
    auto store = picker::store::FileStore::Open(dir.string());
    if (!store.ok()) __builtin_trap();
    absl::StatusOr<std::vector<picker::core::UpstreamRecord>> records = Records(**store);
    if (!records.ok()) return 0;
    loaded = *std::move(records);
    // Each record written again, as an admin write after the start would.
    for (const picker::core::UpstreamRecord& record : loaded) {
      if (!(*store)->Put(record).ok()) __builtin_trap();
    }
  }
  auto store = picker::store::FileStore::Open(dir.string());
  if (!store.ok()) __builtin_trap();
  absl::StatusOr<std::vector<picker::core::UpstreamRecord>> again = Records(**store);
  if (!again.ok() || *again != loaded) __builtin_trap();
  return 0;
}
