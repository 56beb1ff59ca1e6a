#include "server/core/random.h"

#include <random>

namespace picker::core {
namespace {

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

struct Xoshiro256 {
  uint64_t s[4];
  Xoshiro256() {
    std::random_device device;
    for (uint64_t& word : s) word = (uint64_t{device()} << 32) | device();
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return result;
  }
};

}  // namespace

uint64_t ThreadRandom() {
  thread_local Xoshiro256 generator;
  return generator.Next();
}

}  // namespace picker::core
