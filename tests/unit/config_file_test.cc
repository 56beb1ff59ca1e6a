#include "server/config/config_file.h"

#include <fstream>
#include <sstream>
#include <variant>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/local_picker.h"

namespace picker::config {
namespace {

using ::testing::HasSubstr;

// Applies a file's plan through the control plane, as picker-server does.
absl::Status ApplyConfig(const std::vector<DeclaredUpstream>& declared,
                         testing::LocalPicker& picker) {
  for (core::Change& change : PlanConfig(declared, picker.snapshots())) {
    if (auto written = picker.control().Write(std::move(change)); !written.ok()) {
      return written.status();
    }
  }
  return absl::OkStatus();
}

std::string Error(const std::string& yaml) {
  absl::StatusOr<std::vector<DeclaredUpstream>> parsed = ParseConfig(yaml, "f.yaml");
  EXPECT_FALSE(parsed.ok()) << yaml;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(ConfigFileTest, ExampleFileLoads) {
  absl::StatusOr<std::vector<DeclaredUpstream>> parsed =
      LoadConfigFile(std::string(PICKER_SOURCE_DIR) + "/examples/picker.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 4u);
  const DeclaredUpstream& users = (*parsed)[1];
  EXPECT_EQ(users.config.load_balancer.kind, core::StrategyKind::kRingHash);
  EXPECT_EQ(users.config.load_balancer.hash_function, core::HashFunction::kXxHash);
  ASSERT_EQ(users.config.load_balancer.hash_policies.size(), 2u);
  EXPECT_TRUE(users.config.load_balancer.hash_policies[0].terminal);
  EXPECT_EQ(users.config.load_balancer.hash_policies[1].kind, core::HashPolicy::Kind::kSourceIp);
  EXPECT_FALSE(users.config.locality_aware);
  EXPECT_EQ(users.config.lease_ttl, core::Millis(30000));
  EXPECT_EQ(users.targets[1].weight, 50u);
  EXPECT_EQ(users.targets[2].address, "[2001:db8::10]:9000");
  const DeclaredUpstream& sessions = (*parsed)[2];
  EXPECT_EQ(sessions.config.load_balancer.hash_policies[0].cookie_ttl, core::Millis(3600000));
  EXPECT_EQ(sessions.config.passive.consecutive_failures, 3u);
  EXPECT_EQ(sessions.config.active.type, core::ActiveHealthConfig::Type::kHttp);
  EXPECT_EQ(sessions.config.active.http_path, "/healthz");
  EXPECT_EQ(sessions.config.active.healthy_http_statuses, (std::vector<uint32_t>{200, 204}));
  EXPECT_EQ(sessions.config.active.interval, core::Millis(5000));
  EXPECT_EQ(sessions.config.active.timeout, core::Millis(1000));
  EXPECT_EQ(sessions.config.active.unhealthy_failures, 3u);
  EXPECT_EQ((*parsed)[0].config.active.interval, core::Millis(0));  // Off by default.
  EXPECT_EQ(sessions.targets[0].weight, 100u);
  EXPECT_EQ((*parsed)[3].config.load_balancer.choice_count, 3u);
}

TEST(ConfigFileTest, BothHashFunctionSpellings) {
  for (const char* spelling : {"MurmurHash2", "MURMUR_HASH_2"}) {
    auto parsed = ParseConfig(std::string("upstreams:\n- name: u\n  loadBalancer:\n"
                                          "    type: RingHash\n    ringHash: {hashFunction: ") +
                                  spelling + "}\n",
                              "f.yaml");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ((*parsed)[0].config.load_balancer.hash_function, core::HashFunction::kMurmurHash2);
  }
}

TEST(ConfigFileTest, ActiveCheckTypesAndErrors) {
  auto parsed = ParseConfig(
      "upstreams:\n- name: u\n  healthChecks:\n    active: {type: TCP, interval: 250ms}\n",
      "f.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0].config.active.type, core::ActiveHealthConfig::Type::kTcp);
  EXPECT_EQ((*parsed)[0].config.active.interval, core::Millis(250));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  healthChecks:\n    active: {type: udp}\n"),
              HasSubstr("f.yaml:4: upstreams[0].healthChecks.active.type"));
  EXPECT_THAT(
      Error("upstreams:\n- name: u\n  healthChecks:\n    active: {healthyHttpStatuses: 200}\n"),
      HasSubstr("upstreams[0].healthChecks.active.healthyHttpStatuses"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  healthChecks:\n    active: {intervall: 1s}\n"),
              HasSubstr("intervall"));
}

TEST(ConfigFileTest, ErrorsNameFileLineAndField) {
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: Maglev\n"
                    "    maglev: {tableSize: 65536}\n"),
              HasSubstr("f.yaml:5: upstreams[0].loadBalancer.maglev.tableSize"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  targets:\n  - target: 10.0.0.1\n"),
              HasSubstr("f.yaml:4: upstreams[0].targets[0].target"));
  EXPECT_THAT(
      Error("upstreams:\n- name: u\n  targets:\n  - {target: 10.0.0.1:80, weight: 70000}\n"),
      HasSubstr("upstreams[0].targets[0].weight"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  lodBalancer: {}\n"),
              HasSubstr("f.yaml:3: upstreams[0].lodBalancer: unknown field"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer: {type: Fancy}\n"),
              HasSubstr("upstreams[0].loadBalancer.type"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n- name: u\n"),
              HasSubstr("f.yaml:3: upstreams[1].name"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  leaseTtl: soon\n"), HasSubstr("leaseTtl"));
  EXPECT_THAT(Error("upstreams: [\n"), HasSubstr("not valid YAML"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: LeastRequest\n"
                    "    leastRequest: {choiceCount: 1}\n"),
              HasSubstr("choiceCount"));
}

TEST(ConfigFileTest, ApplyCreatesThenReplaces) {
  core::MemoryStore store;
  auto registry = std::make_unique<testing::LocalPicker>(store);
  auto first = *ParseConfig(
      "upstreams:\n- name: u\n  targets:\n  - target: 10.0.0.1:80\n  - target: 10.0.0.2:80\n", "a");
  ASSERT_TRUE(ApplyConfig(first, *registry).ok());
  EXPECT_EQ(registry->Find("u")->targets().size(), 2u);
  auto second = *ParseConfig(
      "upstreams:\n- name: u\n  loadBalancer: {type: Random}\n  targets:\n"
      "  - target: 10.0.0.2:80\n    weight: 5\n",
      "b");
  ASSERT_TRUE(ApplyConfig(second, *registry).ok());
  auto snapshot = registry->Find("u");
  EXPECT_EQ(snapshot->config().load_balancer.kind, core::StrategyKind::kRandom);
  ASSERT_EQ(snapshot->targets().size(), 1u);
  EXPECT_EQ(snapshot->targets()[0].config.weight, 5u);
}

}  // namespace
}  // namespace picker::config

namespace picker::config {
namespace {

TEST(ConfigFileTest, ApplyingTheSameFileAgainPlansNothing) {
  core::MemoryStore store;
  testing::LocalPicker picker(store);
  auto declared = *ParseConfig(
      "upstreams:\n- name: u\n  loadBalancer: {type: Maglev}\n  targets:\n"
      "  - target: 10.0.0.2:80\n  - target: 10.0.0.1:80\n    weight: 5\n",
      "f.yaml");
  ASSERT_TRUE(ApplyConfig(declared, picker).ok());
  const uint64_t revision = picker.control().revision();
  EXPECT_TRUE(PlanConfig(declared, picker.snapshots()).empty());
  ASSERT_TRUE(ApplyConfig(declared, picker).ok());
  EXPECT_EQ(picker.control().revision(), revision);
  declared[0].targets[1].weight = 6;
  EXPECT_EQ(PlanConfig(declared, picker.snapshots()).size(), 1u);  // ReplaceTargets only.
}

TEST(ConfigFileTest, CoreRulesAreReportedAtTheirLine) {
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: RingHash\n"
                    "    ringHash:\n      minRingSize: 4096\n      maxRingSize: 2048\n"),
              HasSubstr("f.yaml:6: upstreams[0].loadBalancer.ringHash.minRingSize: "));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: Maglev\n"
                    "    maglev:\n      hashBalanceFactor: 99\n"),
              HasSubstr("f.yaml:6: upstreams[0].loadBalancer.maglev.hashBalanceFactor: must be "
                        "at least 100"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  healthChecks:\n    passive:\n"
                    "      baseEjectionTime: 10s\n      maxEjectionTime: 1s\n"),
              HasSubstr("f.yaml:6: upstreams[0].healthChecks.passive.maxEjectionTime: "));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: RingHash\n"
                    "    ringHash:\n      hashPolicies:\n      - type: Header\n"
                    "        header: {name: ''}\n"),
              HasSubstr("upstreams[0].loadBalancer.ringHash.hashPolicies[0].header.name: is "
                        "required"));
  // The field path once, not twice.
  const std::string no_port = Error("upstreams:\n- name: u\n  targets:\n  - target: 10.0.0.1\n");
  EXPECT_EQ(no_port.find("upstreams[0].targets[0].target"),
            no_port.rfind("upstreams[0].targets[0].target"))
      << no_port;
  EXPECT_THAT(Error("upstreams:\n- name: u\n  targets:\n  - target: 10.0.0.1:80\n"
                    "    zone: " +
                    std::string(300, 'z') + "\n"),
              HasSubstr("f.yaml:5: upstreams[0].targets[0].zone: "));
}

TEST(ConfigFileTest, DurationsTakeGoSyntax) {
  auto parsed = ParseConfig(
      "upstreams:\n- name: u\n  leaseTtl: 1m30s\n  healthChecks:\n"
      "    passive: {baseEjectionTime: 1.5s}\n",
      "f.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)[0].config.lease_ttl, core::Millis(90000));
  EXPECT_EQ((*parsed)[0].config.passive.base_ejection_time, core::Millis(1500));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  leaseTtl: -1s\n"), HasSubstr("leaseTtl"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  leaseTtl: 1.5ms\n"), HasSubstr("leaseTtl"));
}

TEST(ConfigFileTest, PickersOwnStrategiesAndSlowStart) {
  auto parsed = ParseConfig(
      "upstreams:\n"
      "- name: a\n  loadBalancer:\n    type: PeakEwma\n"
      "    peakEwma: {choiceCount: 3, decayTime: 250ms, failurePenalty: 2s}\n"
      "- name: b\n  loadBalancer:\n    type: WeightedRoundRobin\n"
      "    weightedRoundRobin: {blackoutPeriod: 0s, weightExpirationPeriod: 1m,\n"
      "                         weightUpdatePeriod: 100ms, errorUtilizationPenalty: 0.5}\n"
      "- name: c\n  loadBalancer:\n    type: RoundRobin\n"
      "    roundRobin: {slowStartConfig: {slowStartWindow: 30s, aggression: 2}}\n"
      "- name: d\n  loadBalancer:\n    type: LeastRequest\n"
      "    leastRequest: {slowStartConfig: {slowStartWindow: 500ms, minWeightPercent: 25}}\n"
      "- name: e\n  loadBalancer: {type: WeightedRoundRobin}\n",
      "f.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const core::LoadBalancerConfig& a = (*parsed)[0].config.load_balancer;
  EXPECT_EQ(a.kind, core::StrategyKind::kPeakEwma);
  EXPECT_EQ(a.choice_count, 3u);
  EXPECT_EQ(a.decay_time, core::Millis(250));
  EXPECT_EQ(a.failure_penalty, core::Millis(2000));
  const core::LoadBalancerConfig& b = (*parsed)[1].config.load_balancer;
  EXPECT_EQ(b.kind, core::StrategyKind::kWeightedRoundRobin);
  EXPECT_EQ(b.blackout_period, core::Millis(0));
  EXPECT_EQ(b.weight_expiration_period, core::Millis(60000));
  EXPECT_EQ(b.weight_update_period, core::Millis(100));
  EXPECT_EQ(b.error_utilization_penalty, 0.5);
  const core::SlowStartConfig& c = (*parsed)[2].config.load_balancer.slow_start;
  EXPECT_EQ(c.window, core::Millis(30000));
  EXPECT_EQ(c.aggression, 2.0);
  EXPECT_EQ(c.min_weight_percent, 10);
  const core::SlowStartConfig& d = (*parsed)[3].config.load_balancer.slow_start;
  EXPECT_EQ(d.window, core::Millis(500));
  EXPECT_EQ(d.aggression, 1.0);
  EXPECT_EQ(d.min_weight_percent, 25);
  // Absent: A58's defaults.
  const core::LoadBalancerConfig& e = (*parsed)[4].config.load_balancer;
  EXPECT_EQ(e.blackout_period, core::Millis(10000));
  EXPECT_EQ(e.weight_update_period, core::Millis(1000));
  EXPECT_EQ(e.error_utilization_penalty, 1.0);

  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: RoundRobin\n"
                    "    roundRobin:\n      slowStartConfig:\n        aggression: -1\n"),
              HasSubstr("f.yaml:7: upstreams[0].loadBalancer.roundRobin.slowStartConfig."
                        "aggression: must be a finite number > 0"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: WeightedRoundRobin\n"
                    "    weightedRoundRobin:\n      weightUpdatePeriod: 10ms\n"),
              HasSubstr("f.yaml:6: upstreams[0].loadBalancer.weightedRoundRobin."
                        "weightUpdatePeriod: must be at least 100ms"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: PeakEwma\n"
                    "    peakEwma: {decay: 1s}\n"),
              HasSubstr("upstreams[0].loadBalancer.peakEwma.decay: unknown field"));
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: Fastest\n"),
              HasSubstr("PeakEwma or WeightedRoundRobin"));
}

TEST(ConfigFileTest, WhatWouldBeIgnoredIsAnError) {
  EXPECT_THAT(Error("upstreams:\n- name: u\n  loadBalancer:\n    type: RingHash\n"
                    "    maglev: {tableSize: 7}\n"),
              HasSubstr("f.yaml:5: upstreams[0].loadBalancer.maglev: does not go with type"));
  EXPECT_THAT(Error(""), HasSubstr("f.yaml: the file is empty"));
  EXPECT_THAT(Error("# nothing\n"), HasSubstr("f.yaml: the file is empty"));
  // Every document is read: one that does not parse is an error at its line.
  EXPECT_THAT(Error("upstreams: []\n---\nupstreams: [{name: v}\n"),
              HasSubstr("f.yaml:4: not valid YAML"));
  EXPECT_TRUE(ParseConfig("upstreams: []\n", "f.yaml").ok());
  // yaml-cpp's LoadAll looped forever on this (the config fuzzer found it):
  // an error now, at once.
  EXPECT_FALSE(
      ParseConfig(",pstreams:\n- name: u\n  loadBalancer: {type: Maglev251}}\n", "f.yaml").ok());
  absl::StatusOr<std::vector<DeclaredUpstream>> missing = LoadConfigFile("/nonexistent/x.yaml");
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("No such file or directory"));
}

}  // namespace
}  // namespace picker::config

namespace picker::config {
namespace {

// picker-cli dump writes what ParseConfig reads back unchanged, and the
// planner then has nothing to do; --prune deletes what the file lacks.
TEST(ConfigFileTest, WrittenFileReadsBackAndPlansNothing) {
  std::ifstream in(std::string(PICKER_SOURCE_DIR) + "/examples/picker.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto declared = ParseConfig(text.str(), "examples/picker.yaml");
  ASSERT_TRUE(declared.ok()) << declared.status();
  ASSERT_FALSE(declared->empty());
  core::UpstreamConfig cookie;
  cookie.name = "sticky";
  cookie.load_balancer.kind = core::StrategyKind::kMaglev;
  cookie.load_balancer.hash_balance_factor = 150;
  cookie.load_balancer.hash_policies = {
      {core::HashPolicy::Kind::kCookie, "session", false, core::Millis(90000), "/app"},
      {core::HashPolicy::Kind::kSourceIp, "", true}};
  cookie.locality_aware = false;
  // Per-client configurations read back with their selectors (tag values
  // that YAML would read as other types stay strings).
  core::ClientConfig& web = cookie.client_configs.emplace_back();
  web.client = {"web", {{"kuma.io/zone", "east"}, {"version", "2"}}};
  web.load_balancer.kind = core::StrategyKind::kRingHash;
  web.load_balancer.hash_policies = {{core::HashPolicy::Kind::kHeader, "x-header"}};
  web.locality_aware = false;
  core::ClientConfig& canary = cookie.client_configs.emplace_back();
  canary.client = {"", {{"canary", "true"}}};
  canary.load_balancer.kind = core::StrategyKind::kLeastRequest;
  canary.load_balancer.choice_count = 3;
  cookie.tags = {"team-a", "123"};
  declared->push_back({cookie, {{"[2001:db8::1]:80", 0, "z", "k", {"blue", "true"}}}});
  const std::string written = WriteConfig(*declared);
  auto read_back = ParseConfig(written, "dump.yaml");
  ASSERT_TRUE(read_back.ok()) << read_back.status() << "\n" << written;
  ASSERT_EQ(read_back->size(), declared->size());
  for (size_t i = 0; i < declared->size(); ++i) {
    EXPECT_EQ((*read_back)[i].config, (*declared)[i].config) << written;
    EXPECT_EQ((*read_back)[i].targets, (*declared)[i].targets) << written;
  }
  EXPECT_TRUE(PlanChanges(*read_back, *declared, /*prune=*/true).empty());
  EXPECT_TRUE(ParseConfig(WriteConfig({}), "empty.yaml").ok());
  // Pruning: an upstream the file lacks is deleted, only with prune.
  std::vector<DeclaredUpstream> fewer(declared->begin() + 1, declared->end());
  EXPECT_TRUE(PlanChanges(fewer, *declared, false).empty());
  std::vector<core::Change> pruned = PlanChanges(fewer, *declared, true);
  ASSERT_EQ(pruned.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<core::DeleteUpstream>(pruned[0]));
}

// Every strategy, each option away from its default, reads back equal:
// dump then apply must not turn an upstream into another strategy or drop
// an option (slow start, PeakEwma's and WeightedRoundRobin's).
TEST(ConfigFileTest, EveryStrategyAndOptionReadsBackAsWritten) {
  using Kind = core::StrategyKind;
  std::vector<DeclaredUpstream> declared;
  auto add = [&](const std::string& name, Kind kind) -> core::LoadBalancerConfig& {
    core::UpstreamConfig c;
    c.name = name;
    c.load_balancer.kind = kind;
    declared.push_back({c, {{"10.0.0.1:80", 100, "", ""}}});
    return declared.back().config.load_balancer;
  };
  for (Kind kind : {Kind::kRoundRobin, Kind::kLeastRequest, Kind::kRingHash, Kind::kRandom,
                    Kind::kMaglev, Kind::kPeakEwma, Kind::kWeightedRoundRobin}) {
    add(absl::StrCat("defaults-", core::StrategyName(kind)), kind);
  }
  add("rr-slow", Kind::kRoundRobin).slow_start = {core::Millis(30000), 2.5, 25};
  core::LoadBalancerConfig& lr = add("lr-slow", Kind::kLeastRequest);
  lr.choice_count = 5;
  lr.active_request_bias = 0.25;
  lr.slow_start = {core::Millis(1500), 0.5, 40};
  core::LoadBalancerConfig& ewma = add("ewma", Kind::kPeakEwma);
  ewma.choice_count = 7;
  ewma.decay_time = core::Millis(250);
  ewma.failure_penalty = core::Millis(2500);
  core::LoadBalancerConfig& wrr = add("wrr", Kind::kWeightedRoundRobin);
  wrr.blackout_period = core::Millis(0);
  wrr.weight_expiration_period = core::Millis(60000);
  wrr.weight_update_period = core::Millis(200);
  wrr.error_utilization_penalty = 0.75;
  core::LoadBalancerConfig& wrr2 = add("wrr-blackout", Kind::kWeightedRoundRobin);
  wrr2.blackout_period = core::Millis(4000);

  const std::string written = WriteConfig(declared);
  auto read_back = ParseConfig(written, "dump.yaml");
  ASSERT_TRUE(read_back.ok()) << read_back.status() << "\n" << written;
  ASSERT_EQ(read_back->size(), declared.size());
  for (size_t i = 0; i < declared.size(); ++i) {
    EXPECT_EQ((*read_back)[i].config, declared[i].config) << declared[i].config.name << " in\n"
                                                          << written;
  }
  EXPECT_TRUE(PlanChanges(*read_back, declared, /*prune=*/true).empty());
  EXPECT_THAT(written, HasSubstr("type: PeakEwma"));
  EXPECT_THAT(written, HasSubstr("type: WeightedRoundRobin"));
  EXPECT_THAT(written, HasSubstr("slowStartConfig"));
}

}  // namespace
}  // namespace picker::config

namespace picker::config {
namespace {

// Kong Mesh's MeshLoadBalancingStrategy documents, beside picker's own.
constexpr char kUpstreams[] = R"(upstreams:
  - name: backend
    targets: [{target: 10.0.0.1:80}, {target: 10.0.0.2:80}]
  - name: frontend
    loadBalancer: {type: Maglev}
    targets: [{target: 10.0.1.1:80}]
)";

const DeclaredUpstream& Named(const std::vector<DeclaredUpstream>& all, const std::string& name) {
  for (const DeclaredUpstream& u : all) {
    if (u.config.name == name) return u;
  }
  ADD_FAILURE() << "no upstream " << name;
  return all.front();
}

// The policy page's first example ("from web to backend": ring hash on
// x-header), its spec in both of Kong Mesh's forms.
constexpr char kPageSpec[] = R"(spec:
  targetRef:
    kind: MeshService
    name: web
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        loadBalancer:
          type: RingHash
          ringHash:
            hashPolicies:
              - type: Header
                header:
                  name: x-header
)";

std::string Universal(const std::string& spec) {
  return "---\ntype: MeshLoadBalancingStrategy\nname: ring-hash\nmesh: default\n" + spec;
}

std::string Kubernetes(const std::string& spec) {
  return "---\napiVersion: kuma.io/v1alpha1\nkind: MeshLoadBalancingStrategy\nmetadata:\n"
         "  name: ring-hash\n  namespace: kong-mesh-system\n  labels:\n"
         "    kuma.io/mesh: default\n" +
         spec;
}

TEST(MeshPolicyTest, BothFormsOfThePagesExample) {
  for (const std::string& policy : {Universal(kPageSpec), Kubernetes(kPageSpec)}) {
    auto parsed = ParseConfig(kUpstreams + policy, "f.yaml");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const core::UpstreamConfig& backend = Named(*parsed, "backend").config;
    // Other clients keep backend's own strategy; web gets the ring.
    EXPECT_EQ(backend.load_balancer.kind, core::StrategyKind::kRoundRobin);
    ASSERT_EQ(backend.client_configs.size(), 1u);
    const core::ClientConfig& web = backend.client_configs[0];
    EXPECT_EQ(web.client, (core::ClientSelector{"web", {}}));
    EXPECT_EQ(web.load_balancer.kind, core::StrategyKind::kRingHash);
    ASSERT_EQ(web.load_balancer.hash_policies.size(), 1u);
    EXPECT_EQ(web.load_balancer.hash_policies[0].kind, core::HashPolicy::Kind::kHeader);
    EXPECT_EQ(web.load_balancer.hash_policies[0].name, "x-header");
    EXPECT_EQ(Named(*parsed, "backend").targets.size(), 2u);
    // The other upstream is not selected.
    EXPECT_TRUE(Named(*parsed, "frontend").config.client_configs.empty());
    EXPECT_EQ(Named(*parsed, "frontend").config.load_balancer.kind, core::StrategyKind::kMaglev);
  }
}

// Every top-level kind: Mesh patches the upstream itself; MeshSubset,
// MeshService and MeshServiceSubset become client configurations, one per
// set of clients they tell apart (their intersections too), most specific
// first, each with every policy that covers it merged in order.
TEST(MeshPolicyTest, EveryClientKindOfTheMatrix) {
  const std::string policies = R"(---
type: MeshLoadBalancingStrategy
name: all
spec:
  targetRef: {kind: Mesh}
  to: [{targetRef: {kind: Mesh}, default: {loadBalancer: {type: LeastRequest}}}]
---
type: MeshLoadBalancingStrategy
name: east
spec:
  targetRef: {kind: MeshSubset, tags: {kuma.io/zone: east}}
  to: [{targetRef: {kind: MeshService, name: backend}, default: {localityAwareness: {disabled: true}}}]
---
type: MeshLoadBalancingStrategy
name: web
spec:
  targetRef: {kind: MeshService, name: web}
  to: [{targetRef: {kind: Mesh}, default: {loadBalancer: {leastRequest: {choiceCount: 3}}}}]
---
type: MeshLoadBalancingStrategy
name: web-v2
spec:
  targetRef: {kind: MeshServiceSubset, name: web, tags: {version: v2}}
  to: [{targetRef: {kind: MeshService, name: backend}, default: {loadBalancer: {type: Random}}}]
)";
  auto parsed = ParseConfig(kUpstreams + policies, "f.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const core::UpstreamConfig& backend = Named(*parsed, "backend").config;
  EXPECT_EQ(backend.load_balancer.kind, core::StrategyKind::kLeastRequest);
  EXPECT_TRUE(backend.locality_aware);
  std::vector<std::string> order;
  for (const core::ClientConfig& c : backend.client_configs) {
    std::string tags;
    for (const auto& [k, v] : c.client.tags) tags += k + "=" + v + ",";
    order.push_back(c.client.service + "/" + tags + " " + core::StrategyName(c.load_balancer.kind) +
                    " " + std::to_string(c.load_balancer.choice_count) +
                    (c.locality_aware ? "" : " local-off"));
  }
  // web-v2's Random leaves web's leastRequest options behind, as Kong
  // Mesh's merge does; they are dropped, as Kong Mesh ignores them.
  EXPECT_THAT(order, ::testing::ElementsAre("web/kuma.io/zone=east,version=v2, random 2 local-off",
                                            "web/version=v2, random 2",
                                            "web/kuma.io/zone=east, least_request 3 local-off",
                                            "/kuma.io/zone=east, least_request 2 local-off",
                                            "web/ least_request 3"));
  // frontend: only `web` selects it (its to is Mesh), over Mesh's patch.
  const core::UpstreamConfig& frontend = Named(*parsed, "frontend").config;
  EXPECT_EQ(frontend.load_balancer.kind, core::StrategyKind::kLeastRequest);
  ASSERT_EQ(frontend.client_configs.size(), 1u);
  EXPECT_EQ(frontend.client_configs[0].client, (core::ClientSelector{"web", {}}));
  EXPECT_EQ(frontend.client_configs[0].load_balancer.choice_count, 3u);
}

// Mesh < MeshService, then by name; maps merge, null removes, lists are
// replaced. Within a policy, its Mesh entries come first wherever listed.
TEST(MeshPolicyTest, MergeOrder) {
  const std::string policies = R"(---
type: MeshLoadBalancingStrategy
name: b-backend
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {loadBalancer: {leastRequest: {choiceCount: 5}}}
    - targetRef: {kind: Mesh}
      default: {loadBalancer: {type: LeastRequest, leastRequest: {choiceCount: 4}}}
---
type: MeshLoadBalancingStrategy
name: a-everywhere
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: Mesh}
      default:
        loadBalancer: {type: LeastRequest, leastRequest: {choiceCount: 3}, maglev: null}
        localityAwareness: {disabled: true}
)";
  auto parsed = ParseConfig(kUpstreams + policies, "f.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // a-everywhere (3), then b-backend's Mesh entry (4), then its backend one.
  EXPECT_EQ(Named(*parsed, "backend").config.load_balancer.choice_count, 5u);
  EXPECT_EQ(Named(*parsed, "frontend").config.load_balancer.choice_count, 4u);
  EXPECT_EQ(Named(*parsed, "frontend").config.load_balancer.kind,
            core::StrategyKind::kLeastRequest);
  EXPECT_FALSE(Named(*parsed, "backend").config.locality_aware);

  // Lists are replaced whole.
  const std::string lists = R"(---
type: MeshLoadBalancingStrategy
name: one
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default:
        loadBalancer:
          type: RingHash
          ringHash: {hashPolicies: [{type: Header, header: {name: a}}, {type: Header, header: {name: b}}]}
---
type: MeshLoadBalancingStrategy
name: two
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default:
        loadBalancer: {ringHash: {hashPolicies: [{type: Header, header: {name: c}}]}}
)";
  parsed = ParseConfig(kUpstreams + lists, "f.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto& hash = Named(*parsed, "backend").config.load_balancer.hash_policies;
  ASSERT_EQ(hash.size(), 1u);
  EXPECT_EQ(hash[0].name, "c");
}

TEST(MeshPolicyTest, WhatPickerCannotUseIsRefusedWithFileLineAndField) {
  const std::string head =
      std::string(kUpstreams) + "---\ntype: MeshLoadBalancingStrategy\nname: p\n";
  // kUpstreams is 6 lines; the policy starts at line 7 (`---`).
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: MeshService}\n  to: []\n"),
              HasSubstr("f.yaml:11: spec.targetRef.name: is required"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: MeshSubset, name: web}\n  to: []\n"),
              HasSubstr("f.yaml:11: spec.targetRef.name: kind MeshSubset takes no name"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: MeshSubset, tags: {}}\n  to: []\n"),
              HasSubstr("f.yaml:11: spec.targetRef.tags: must be a non-empty mapping"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: Mesh}\n  from: []\n"),
              HasSubstr("f.yaml:12: spec.from: is not supported"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: Mesh}\n  to:\n"
                           "    - targetRef: {kind: MeshService, name: backend}\n"
                           "      default:\n        loadBalancer:\n          type: RingHash\n"
                           "          ringHash: {minRingSize: 1024, vnodes: 3}\n"),
              HasSubstr("f.yaml:17: upstreams[0].loadBalancer.ringHash.vnodes: unknown field"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: Mesh}\n  to:\n"
                           "    - targetRef: {kind: MeshService, name: nowhere}\n"
                           "      default: {loadBalancer: {type: Random}}\n"),
              HasSubstr("f.yaml:13: targetRef.name: names no upstream this file declares"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: Mesh}\n  to:\n"
                           "    - targetRef: {kind: Mesh}\n"
                           "      default:\n        localityAwareness:\n"
                           "          crossZone: {failover: []}\n"),
              HasSubstr("f.yaml:16: upstreams[0].localityAwareness.crossZone: is not supported"));
  EXPECT_THAT(Error(head + "spec:\n  targetRef: {kind: Mesh}\n  rules: []\n"),
              HasSubstr("f.yaml:12: spec.rules: unknown field"));
  EXPECT_THAT(Error(std::string(kUpstreams) + "---\napiVersion: kuma.io/v1beta7\n"
                                              "kind: MeshLoadBalancingStrategy\n"),
              HasSubstr("f.yaml:8: apiVersion: must be kuma.io/v1alpha1"));
  EXPECT_THAT(Error(std::string(kUpstreams) + "---\ntype: MeshTimeout\nname: t\nspec: {}\n"),
              HasSubstr("f.yaml:8: type: must be MeshLoadBalancingStrategy"));
  // Nothing after the first document is ignored any more.
  EXPECT_THAT(Error(std::string(kUpstreams) + "---\nupstreams: [{name: backend}]\n"),
              HasSubstr("f.yaml:8: upstreams[0].name: duplicates the upstream at line 2"));
}

}  // namespace
}  // namespace picker::config
