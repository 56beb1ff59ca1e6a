// The two hash functions Envoy uses for consistent hashing.
//
// Folder: server/core/hash owns the hash functions and hash-policy
// evaluation. It uses core's config types only.
#ifndef PICKER_SERVER_CORE_HASH_HASH_H_
#define PICKER_SERVER_CORE_HASH_HASH_H_

#include <cstdint>
#include <string_view>

namespace picker::core {

// xxHash64 (XXH64), as Envoy's HashUtil::xxHash64.
uint64_t XxHash64(std::string_view data, uint64_t seed = 0);

// Envoy's MurmurHash::STD_HASH_SEED.
inline constexpr uint64_t kMurmurHash2Seed = 0xc70f6907;

// 64-bit MurmurHash2 exactly as libstdc++'s _Hash_bytes computes it on 64-bit
// targets (Envoy's MurmurHash::murmurHash2).
uint64_t MurmurHash2(std::string_view data, uint64_t seed = kMurmurHash2Seed);

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_HASH_HASH_H_
