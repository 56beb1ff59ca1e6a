#include "server/core/hash/hash.h"

#include <xxhash.h>

#include <cstring>

namespace picker::core {

uint64_t XxHash64(std::string_view data, uint64_t seed) {
  return XXH64(data.data(), data.size(), seed);
}

namespace {

// The pieces of libstdc++'s 64-bit _Hash_bytes (MurmurHash64A with its own
// tail handling). Reproduced from the algorithm so that the result does not
// depend on which standard library picker is built with.
constexpr uint64_t kMurmurMul = (uint64_t{0xc6a4a793} << 32) + uint64_t{0x5bd1e995};

inline uint64_t ShiftMix(uint64_t v) { return v ^ (v >> 47); }

inline uint64_t LoadLittleEndian64(const char* p) {
  // Assemble explicitly so the result is the same on any host byte order.
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Loads the last `n` (1..7) bytes, first byte least significant.
inline uint64_t LoadTail(const char* p, size_t n) {
  uint64_t v = 0;
  while (n > 0) {
    --n;
    v = (v << 8) + static_cast<unsigned char>(p[n]);
  }
  return v;
}

}  // namespace

uint64_t MurmurHash2(std::string_view data, uint64_t seed) {
  const char* const buf = data.data();
  const size_t len = data.size();
  const size_t len_aligned = len & ~size_t{7};
  uint64_t hash = seed ^ (len * kMurmurMul);
  for (size_t i = 0; i < len_aligned; i += 8) {
    const uint64_t block = ShiftMix(LoadLittleEndian64(buf + i) * kMurmurMul) * kMurmurMul;
    hash ^= block;
    hash *= kMurmurMul;
  }
  if ((len & 7) != 0) {
    hash ^= LoadTail(buf + len_aligned, len & 7);
    hash *= kMurmurMul;
  }
  hash = ShiftMix(hash) * kMurmurMul;
  return ShiftMix(hash);
}

}  // namespace picker::core
