// Domain configuration of upstreams and targets, free of protobuf and gRPC.
//
// The API layer, the declarative config file and the store all translate
// into these types; validate.h holds the one copy of the rules. Every field
// holds an effective value: a default-constructed config is all defaults,
// and translators that take "0 means the default" (the API, the config
// file) call ReplaceZerosWithDefaults, so the rest of the core never sees
// "unset".
//
//   UpstreamConfig config;
//   config.name = "users";
//   config.load_balancer.kind = StrategyKind::kRingHash;
//   absl::Status valid = ValidateUpstreamConfig(config);
//
// Folder: server/core is the domain: configuration and its rules, admin
// changes, snapshots and their published map, leases, the store interface.
// It uses nothing of picker's outside itself, no gRPC and no threads of its
// own; hash/ and strategy/ are its parts that everything else builds on.
#ifndef PICKER_SERVER_CORE_CONFIG_H_
#define PICKER_SERVER_CORE_CONFIG_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/core/client.h"

namespace picker::core {

using Millis = std::chrono::milliseconds;

// The five of Kong Mesh's MeshLoadBalancingStrategy, then picker's own two
// (balancing on what Release reports: latency, ORCA load reports).
enum class StrategyKind {
  kRoundRobin,
  kLeastRequest,
  kRingHash,
  kRandom,
  kMaglev,
  kPeakEwma,
  kWeightedRoundRobin,
};

// Stable lower-case name, used in metrics labels and logs.
const char* StrategyName(StrategyKind kind);

enum class HashFunction { kXxHash, kMurmurHash2 };

// One source of a request's hash (Envoy's RouteAction.HashPolicy).
struct HashPolicy {
  enum class Kind { kHeader, kCookie, kSourceIp, kQueryParameter, kFilterState };
  Kind kind = Kind::kHeader;
  // Header name (stored lower case), cookie name, query parameter name or
  // filter-state key. Unused for kSourceIp.
  std::string name;
  bool terminal = false;
  // Cookie only: when set and the cookie is absent, one is generated with
  // this TTL; 0 makes it a session cookie (Envoy's rule, and Kong's
  // hash_on cookie). Unset: no cookie is generated.
  std::optional<Millis> cookie_ttl;
  std::string cookie_path;

  bool operator==(const HashPolicy&) const = default;
};

// Envoy's slow_start_config (RoundRobin and LeastRequest): a target that
// has just become healthy gets weight x max(min_weight_percent / 100,
// (time healthy / window)^(1 / aggression)) until `window` has passed.
struct SlowStartConfig {
  Millis window{0};  // 0 = off.
  double aggression = 1.0;
  double min_weight_percent = 10;

  bool enabled() const { return window.count() > 0; }
  bool operator==(const SlowStartConfig&) const = default;
};

struct LoadBalancerConfig {
  StrategyKind kind = StrategyKind::kRoundRobin;
  // LeastRequest and PeakEwma.
  uint32_t choice_count = 2;
  // LeastRequest.
  double active_request_bias = 1.0;
  // RoundRobin and LeastRequest.
  SlowStartConfig slow_start;
  // PeakEwma: the EWMA's time constant (tau), and the latency a FAILURE or
  // TIMEOUT counts as at least.
  Millis decay_time{10000};
  Millis failure_penalty{1000};
  // WeightedRoundRobin, with gRFC A58's names and defaults.
  Millis blackout_period{10000};
  Millis weight_expiration_period{180000};
  Millis weight_update_period{1000};
  double error_utilization_penalty = 1.0;
  // RingHash.
  HashFunction hash_function = HashFunction::kXxHash;
  uint64_t min_ring_size = 1024;
  uint64_t max_ring_size = 8388608;
  // Maglev.
  uint64_t table_size = 65537;
  // RingHash and Maglev.
  std::vector<HashPolicy> hash_policies;
  std::optional<uint32_t> hash_balance_factor;  // Unset: bounded load off; else >= 100.

  bool operator==(const LoadBalancerConfig&) const = default;
};

// LeastRequest's choice_count is 2..kMaxChoiceCount. gRPC's least_request
// policy (gRFC A48, as gRPC-Go and gRPC-Java build it) clamps at 10 as well:
// beyond a few choices the balance hardly improves (the power of two choices
// does most of the work), while every choice costs the pick a random number
// and an atomic read. Records stored before the bound existed may hold more;
// they still load, and their picks use kMaxChoiceCount choices.
// Another strategy with a choice_count (peak_ewma) uses the same bound.
inline constexpr uint32_t kMaxChoiceCount = 10;

// Most entries in an active health check's healthy_http_statuses: Kong's
// default healthy list (17 statuses) fits with room to spare.
inline constexpr size_t kMaxHealthyHttpStatuses = 100;

// Most addresses in a Pick's `exclude`: a client's retries of one request
// are a handful (Envoy's and gRPC's retry policies allow 5 attempts by
// default). Each excluded target is checked on every candidate a pick
// considers, so this bounds a pick's cost as well as its request.
inline constexpr size_t kMaxExclude = 64;

inline constexpr uint64_t kDefaultMinRingSize = 1024;
inline constexpr uint64_t kMaxRingSize = 8388608;
inline constexpr uint64_t kDefaultMaglevTableSize = 65537;
inline constexpr uint64_t kMaxMaglevTableSize = 5000011;
// gRFC A58's floor on weight_update_period.
inline constexpr Millis kMinWeightUpdatePeriod{100};

struct PassiveHealthConfig {
  uint32_t consecutive_failures = 5;  // 0 = off.
  Millis base_ejection_time{30000};
  Millis max_ejection_time{300000};
  uint32_t max_ejection_percent = 10;

  bool operator==(const PassiveHealthConfig&) const = default;
};

struct ActiveHealthConfig {
  enum class Type { kHttp, kTcp, kGrpc };
  Type type = Type::kHttp;
  std::string http_path = "/";
  std::vector<uint32_t> healthy_http_statuses = {200, 302};
  Millis interval{0};  // 0 = off.
  Millis timeout{1000};
  uint32_t healthy_successes = 2;
  uint32_t unhealthy_failures = 3;

  bool operator==(const ActiveHealthConfig&) const = default;
};

// A configuration of the upstream for picks from some clients (Kong Mesh's
// policies whose top-level targetRef selects calling services): its own
// strategy and locality, built into tables of its own over the same
// targets, whose counts and health stay shared.
struct ClientConfig {
  ClientSelector client;
  LoadBalancerConfig load_balancer;
  bool locality_aware = true;

  bool operator==(const ClientConfig&) const = default;
};

struct UpstreamConfig {
  std::string name;
  LoadBalancerConfig load_balancer;
  bool locality_aware = true;
  PassiveHealthConfig passive;
  ActiveHealthConfig active;
  uint32_t panic_threshold_percent = 50;
  Millis lease_ttl{60000};
  uint32_t max_active_requests_per_target = 0;  // 0 = no limit.
  uint32_t max_active_requests = 0;             // 0 = no limit.
  // A pick uses the first whose selector matches its client, else the
  // fields above. At most kMaxClientConfigs.
  std::vector<ClientConfig> client_configs;
  // Kong's tags: labels kept and returned, which picking ignores.
  std::vector<std::string> tags;

  bool operator==(const UpstreamConfig&) const = default;
};

// The convention of the API and the config file, where a field left out
// reads as 0: a 0 in choice_count, the ring and table sizes, lease_ttl, the
// passive ejection times, the active timeout and the active counts, slow
// start's aggression and min_weight_percent, PeakEwma's decay_time and
// failure_penalty, and WeightedRoundRobin's weight_expiration_period and
// weight_update_period means the default. (A 0 keeps its own meaning where it has one: passive
// consecutive_failures 0 turns passive checks off, panic threshold 0 never
// panics, interval 0 turns active checks off, slow_start_window 0 turns
// slow start off. The API and the file give active_request_bias,
// blackout_period and error_utilization_penalty their defaults themselves
// when they are absent, since 0 means something there: no bias, no
// blackout, no penalty, as in Envoy and gRPC.)
void ReplaceZerosWithDefaults(UpstreamConfig& config);
// The same for one strategy (an upstream's own or a per-client one).
void ReplaceZerosWithDefaults(LoadBalancerConfig& lb);

// Kong's tags on an upstream or a target: at most kMaxTags, each 1 to
// kMaxTagLength printable characters without ',' or '/' (Kong's rule: its
// list filters split on them).
inline constexpr size_t kMaxTags = 64;
inline constexpr size_t kMaxTagLength = 128;

inline constexpr uint32_t kDefaultTargetWeight = 100;
inline constexpr uint32_t kMaxTargetWeight = 65535;

struct TargetConfig {
  std::string address;  // Canonical `host:port`.
  uint32_t weight = kDefaultTargetWeight;
  std::string zone;
  std::string hash_key;           // Empty = hash on the address.
  std::vector<std::string> tags;  // Kong's tags, as on upstreams.

  // The consistent-hash key: hash_key if set, else the canonical address.
  const std::string& HashKey() const { return hash_key.empty() ? address : hash_key; }
  bool operator==(const TargetConfig&) const = default;
};

}  // namespace picker::core

#endif  // PICKER_SERVER_CORE_CONFIG_H_
