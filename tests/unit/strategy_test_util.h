// Helpers for the strategy unit tests: hosts with live counters, and picks
// with scripted or seeded inputs.
#ifndef PICKER_TESTS_UNIT_STRATEGY_TEST_UTIL_H_
#define PICKER_TESTS_UNIT_STRATEGY_TEST_UTIL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "server/core/strategy/strategy.h"

// Tests build PickInputs with designated initializers naming only the
// fields they set; the rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace picker::core::testing {

// Hosts named by their hash keys, with optional weights (default 1) and
// active-request counters that outlive the strategies built over them.
class TestHosts {
 public:
  explicit TestHosts(std::vector<std::string> keys, std::vector<uint32_t> weights = {})
      : keys_(std::move(keys)),
        weights_(weights.empty() ? std::vector<uint32_t>(keys_.size(), 1) : std::move(weights)),
        active_(std::make_unique<std::atomic<uint64_t>[]>(keys_.size())) {
    for (size_t i = 0; i < keys_.size(); ++i) active_[i] = 0;
  }

  // "127.0.0.1:<first_port>" ... as Envoy's tests name `tcp://127.0.0.1:90`.
  static TestHosts Loopback(int first_port, int count, std::vector<uint32_t> weights = {}) {
    std::vector<std::string> keys;
    for (int i = 0; i < count; ++i) keys.push_back("127.0.0.1:" + std::to_string(first_port + i));
    return TestHosts(std::move(keys), std::move(weights));
  }

  std::vector<StrategyHost> hosts() const {
    std::vector<StrategyHost> out;
    for (size_t i = 0; i < keys_.size(); ++i) {
      out.push_back(StrategyHost{keys_[i], weights_[i], &active_[i]});
    }
    return out;
  }

  void SetActive(size_t i, uint64_t value) { active_[i] = value; }
  uint64_t TotalActive() const {
    uint64_t total = 0;
    for (size_t i = 0; i < keys_.size(); ++i) total += active_[i];
    return total;
  }
  size_t size() const { return keys_.size(); }
  const std::string& key(size_t i) const { return keys_[i]; }

 private:
  std::vector<std::string> keys_;
  std::vector<uint32_t> weights_;
  std::unique_ptr<std::atomic<uint64_t>[]> active_;
};

struct PickInputs {
  uint64_t hash = 0;
  std::function<bool(uint32_t)> avoid;  // null: avoid nothing.
  std::function<uint64_t()> random;     // null: a fixed-seed generator.
  uint64_t upstream_active_requests = 0;
};

// A strategy with the pick state it made from `seed`, as a snapshot holds
// them (for the strategies whose picks change something).
template <typename S>
struct Stateful {
  template <typename... Args>
  explicit Stateful(uint64_t seed, Args&&... args)
      : strategy(std::forward<Args>(args)...), state(strategy.NewPickState(seed)) {}

  uint32_t Pick(const PickParams& params) const { return strategy.Pick(params, state.get()); }
  StrategyStats Stats() const { return strategy.Stats(); }

  const S strategy;
  const std::unique_ptr<PickState> state;
};

inline uint32_t PickWith(const Strategy& strategy, PickState* state, const PickInputs& in) {
  std::mt19937_64 fallback(12345);
  auto avoid = [&](uint32_t h) { return in.avoid ? in.avoid(h) : false; };
  auto random = [&]() -> uint64_t { return in.random ? in.random() : fallback(); };
  return strategy.Pick(PickParams{.hash = in.hash,
                                  .avoid = avoid,
                                  .random = random,
                                  .upstream_active_requests = in.upstream_active_requests},
                       state);
}

// Picks of a strategy whose picks change nothing (it has no pick state).
inline uint32_t PickWith(const Strategy& strategy, const PickInputs& in) {
  return PickWith(strategy, nullptr, in);
}

template <typename S>
uint32_t PickWith(const Stateful<S>& stateful, const PickInputs& in) {
  return PickWith(stateful.strategy, stateful.state.get(), in);
}

inline uint32_t PickHash(const Strategy& strategy, uint64_t hash) {
  return PickWith(strategy, PickInputs{.hash = hash});
}

// Returns the given numbers in order, then repeats the last one.
class ScriptedRandom {
 public:
  explicit ScriptedRandom(std::vector<uint64_t> values) : values_(std::move(values)) {}
  uint64_t operator()() {
    ++calls_;
    if (next_ < values_.size()) return values_[next_++];
    return values_.empty() ? 0 : values_.back();
  }
  size_t calls() const { return calls_; }

 private:
  std::vector<uint64_t> values_;
  size_t next_ = 0;
  size_t calls_ = 0;
};

}  // namespace picker::core::testing

#endif  // PICKER_TESTS_UNIT_STRATEGY_TEST_UTIL_H_
