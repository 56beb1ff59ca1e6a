// Fast per-thread random numbers for the pick path.
#ifndef PICKER_SERVER_CORE_RANDOM_H_
#define PICKER_SERVER_CORE_RANDOM_H_

#include <cstdint>

namespace picker::core {

// A uniform 64-bit number from a per-thread xoshiro256** generator seeded
// from std::random_device. No lock, no allocation.
uint64_t ThreadRandom();

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_RANDOM_H_
