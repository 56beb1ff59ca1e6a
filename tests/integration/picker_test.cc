// picker.v1.Picker over gRPC against the real server: leases, strategies,
// weights, hashing, exclude, expiry and PickStream.
#include <functional>
#include <set>
#include <thread>

#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using ::testing::HasSubstr;
using v1::PickRequest;
using v1::ReleaseResponse;

class PickerTest : public PickerServerTest {};

PickRequest Request(const std::string& upstream) {
  PickRequest request;
  request.set_upstream(upstream);
  return request;
}

TEST_F(PickerTest, PickAndRelease) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80", 100, "z1")});
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  EXPECT_EQ(pick.value.target(), "10.0.0.1:80");
  EXPECT_EQ(pick.value.zone(), "z1");
  EXPECT_NE(pick.value.lease_id(), 0u);
  EXPECT_EQ(Millis(pick.value.lease_ttl()), 60000);
  EXPECT_FALSE(pick.value.has_hash()) << "round robin uses no hash";

  auto release = Release(name, pick.value.lease_id());
  ASSERT_OK(release.status);
  EXPECT_EQ(release.value.state(), ReleaseResponse::RELEASED);
  release = Release(name, pick.value.lease_id());
  ASSERT_OK(release.status);
  EXPECT_EQ(release.value.state(), ReleaseResponse::ALREADY_RELEASED);
  release = Release(name, pick.value.lease_id(), v1::ReleaseRequest::FAILURE);
  ASSERT_OK(release.status);
  EXPECT_EQ(release.value.state(), ReleaseResponse::ALREADY_RELEASED);
}

TEST_F(PickerTest, LeaseIdsAreUnique) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  std::set<uint64_t> ids;
  for (int i = 0; i < 20; ++i) {
    auto pick = Pick(name);
    ASSERT_OK(pick.status);
    EXPECT_TRUE(ids.insert(pick.value.lease_id()).second) << "duplicate lease id";
    ASSERT_OK(Release(name, pick.value.lease_id()).status);
  }
}

TEST_F(PickerTest, ReleaseUnknownLeaseOrUpstreamIsNotFound) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  auto release = Release(name, 0xDEADBEEFCAFEF00Dull);
  EXPECT_CODE(release.status, NOT_FOUND);
  release = Release(NewName("missing"), pick.value.lease_id());
  EXPECT_CODE(release.status, NOT_FOUND);
  EXPECT_EQ(TotalActive(name), 1) << "a failed release changes nothing";
  ASSERT_OK(Release(name, pick.value.lease_id()).status);
}

// Ids no boot of this store can have issued (lease_id.h): boot 0 (an id
// from before the first boot, such as 12345), sequence 0, a sequence the
// issuing shard has not reached, a boot still to come.
TEST_F(PickerTest, LeaseIdsNoBootIssuedAreNotFound) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  const uint64_t id = pick.value.lease_id();
  const uint64_t boot = id >> 40;
  ASSERT_GT(boot, 0u);
  for (uint64_t never :
       {uint64_t{12345}, boot << 40, id + (uint64_t{1} << 33), (boot + 1) << 40 | 1}) {
    auto release = Release(name, never);
    EXPECT_CODE(release.status, NOT_FOUND);
    EXPECT_THAT(release.status.error_message(), HasSubstr("never issued")) << never;
  }
  // (A lease of an earlier boot answers EXPIRED: RestartTest.)
  ASSERT_OK(Release(name, id).status);
}

TEST_F(PickerTest, PickUnknownUpstreamIsNotFound) {
  const std::string missing = NewName("missing");
  auto pick = Pick(missing);
  EXPECT_CODE(pick.status, NOT_FOUND);
  EXPECT_THAT(pick.status.error_message(), HasSubstr(missing));
}

TEST_F(PickerTest, NoPickableTargetIsUnavailable) {
  const std::string empty = MakeUpstream("round_robin {}", {});
  EXPECT_CODE(Pick(empty).status, UNAVAILABLE);
  for (const char* lb :
       {"round_robin {}", "least_request {}", "random {}", "ring_hash {}", "maglev {}"}) {
    const std::string zero =
        MakeUpstream(lb, {MakeTarget("10.0.0.1:80", 0), MakeTarget("10.0.0.2:80", 0)});
    EXPECT_CODE(Pick(zero).status, UNAVAILABLE) << lb;
    EXPECT_EQ(TotalActive(zero), 0) << lb;
  }
}

TEST_F(PickerTest, RoundRobinAlternatesBetweenEqualTargets) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  std::vector<std::string> seq;
  for (int i = 0; i < 10; ++i) {
    auto pick = Pick(name);
    ASSERT_OK(pick.status);
    seq.push_back(pick.value.target());
    ASSERT_OK(Release(name, pick.value.lease_id()).status);
  }
  for (size_t i = 1; i < seq.size(); ++i) {
    EXPECT_NE(seq[i], seq[i - 1]) << "round robin alternates: " << ::testing::PrintToString(seq);
  }
}

TEST_F(PickerTest, WeightZeroNeverPicked) {
  for (const char* lb : {"round_robin {}", "least_request {}", "random {}",
                         "ring_hash { hash_policies { header { name: 'x-user' } } }",
                         "maglev { hash_policies { header { name: 'x-user' } } }"}) {
    const std::string name = MakeUpstream(
        lb, {MakeTarget("10.0.0.1:80", 0), MakeTarget("10.0.0.2:80"), MakeTarget("10.0.0.3:80")});
    std::map<std::string, int> counts;
    for (int i = 0; i < 40; ++i) {
      PickRequest request = Request(name);
      (*request.mutable_attributes()->mutable_headers())["x-user"] = "user-" + std::to_string(i);
      auto pick = Pick(request);
      ASSERT_OK(pick.status) << lb;
      ++counts[pick.value.target()];
      ASSERT_OK(Release(name, pick.value.lease_id()).status);
    }
    EXPECT_EQ(counts.count("10.0.0.1:80"), 0u) << lb << ": " << ::testing::PrintToString(counts);
  }
}

// 3:1 weights give about 3:1 picks.
void ExpectThreeToOne(const std::map<std::string, int>& counts, int n, const std::string& what) {
  const int heavy = counts.count("10.0.0.1:80") ? counts.at("10.0.0.1:80") : 0;
  const int light = counts.count("10.0.0.2:80") ? counts.at("10.0.0.2:80") : 0;
  EXPECT_EQ(heavy + light, n) << what;
  // Binomial(n, 0.75): n=800 gives sd ~12; allow about 5 sd.
  EXPECT_GE(heavy, n * 3 / 4 - 60) << what << ": " << ::testing::PrintToString(counts);
  EXPECT_LE(heavy, n * 3 / 4 + 60) << what << ": " << ::testing::PrintToString(counts);
}

TEST_F(PickerTest, WeightsHonouredByRoundRobin) {
  const std::string name = MakeUpstream(
      "round_robin {}", {MakeTarget("10.0.0.1:80", 300), MakeTarget("10.0.0.2:80", 100)});
  auto counts = PickAndReleaseCounts(Request(name), 400);
  // Weighted round robin is deterministic: exactly 3:1 over whole cycles
  // (allow one pick of slack for the cycle's phase).
  EXPECT_NEAR(counts["10.0.0.1:80"], 300, 1) << ::testing::PrintToString(counts);
  EXPECT_NEAR(counts["10.0.0.2:80"], 100, 1) << ::testing::PrintToString(counts);
}

TEST_F(PickerTest, WeightsHonouredByRandom) {
  const std::string name =
      MakeUpstream("random {}", {MakeTarget("10.0.0.1:80", 3), MakeTarget("10.0.0.2:80", 1)});
  ExpectThreeToOne(PickAndReleaseCounts(Request(name), 800), 800, "random");
}

TEST_F(PickerTest, WeightsHonouredByLeastRequest) {
  const std::string name = MakeUpstream(
      "least_request {}", {MakeTarget("10.0.0.1:80", 300), MakeTarget("10.0.0.2:80", 100)});
  ExpectThreeToOne(PickAndReleaseCounts(Request(name), 800), 800, "least_request");
}

TEST_F(PickerTest, LeastRequestAvoidsBusyTarget) {
  const std::string name = MakeUpstream("least_request { choice_count: 5 }",
                                        {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  // Hold 5 leases on 10.0.0.1 (exclude steers them there).
  std::vector<uint64_t> held;
  for (int i = 0; i < 5; ++i) {
    PickRequest request = Request(name);
    request.add_exclude("10.0.0.2:80");
    auto pick = Pick(request);
    ASSERT_OK(pick.status);
    ASSERT_EQ(pick.value.target(), "10.0.0.1:80");
    held.push_back(pick.value.lease_id());
  }
  EXPECT_EQ(ActiveByTarget(name)["10.0.0.1:80"], 5u);
  // With 5 choices out of 2 targets, the idle one is among them with
  // probability 31/32: nearly every pick goes there.
  auto counts = PickAndReleaseCounts(Request(name), 20);
  EXPECT_GE(counts["10.0.0.2:80"], 16) << ::testing::PrintToString(counts);
  for (uint64_t lease : held) ASSERT_OK(Release(name, lease).status);
  EXPECT_EQ(TotalActive(name), 0);
}

TEST_F(PickerTest, LeastRequestUnequalWeightsSeeActiveCounts) {
  // Unequal weights: weight / (active + 1). 10.0.0.1 (weight 200) with 9
  // held leases weighs 20 against 10.0.0.2's 100: most picks go to .2.
  const std::string name = MakeUpstream(
      "least_request {}", {MakeTarget("10.0.0.1:80", 200), MakeTarget("10.0.0.2:80", 100)});
  std::vector<uint64_t> held;
  for (int i = 0; i < 9; ++i) {
    PickRequest request = Request(name);
    request.add_exclude("10.0.0.2:80");
    auto pick = Pick(request);
    ASSERT_OK(pick.status);
    ASSERT_EQ(pick.value.target(), "10.0.0.1:80");
    held.push_back(pick.value.lease_id());
  }
  auto counts = PickAndReleaseCounts(Request(name), 60);
  EXPECT_GT(counts["10.0.0.2:80"], counts["10.0.0.1:80"]) << ::testing::PrintToString(counts);
  for (uint64_t lease : held) ASSERT_OK(Release(name, lease).status);
}

void ExpectConsistentHashing(
    const std::string& name,
    const std::function<Result<v1::PickResponse>(const PickRequest&)>& pick,
    const std::function<void(const std::string&, uint64_t)>& release) {
  std::set<std::string> used;
  for (int user = 0; user < 20; ++user) {
    PickRequest request;
    request.set_upstream(name);
    (*request.mutable_attributes()->mutable_headers())["x-user"] = "user-" + std::to_string(user);
    auto first = pick(request);
    ASSERT_OK(first.status);
    ASSERT_TRUE(first.value.has_hash()) << "consistent hashing returns the hash";
    release(name, first.value.lease_id());
    for (int again = 0; again < 3; ++again) {
      auto next = pick(request);
      ASSERT_OK(next.status);
      EXPECT_EQ(next.value.target(), first.value.target()) << "user " << user;
      EXPECT_EQ(next.value.hash(), first.value.hash()) << "user " << user;
      release(name, next.value.lease_id());
    }
    used.insert(first.value.target());
  }
  EXPECT_GT(used.size(), 1u) << "20 keys over 4 targets all on one target";
}

TEST_F(PickerTest, RingHashSameHeaderSameTarget) {
  const std::string name = MakeUpstream("ring_hash { hash_policies { header { name: 'X-User' } } }",
                                        {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"),
                                         MakeTarget("10.0.0.3:80"), MakeTarget("10.0.0.4:80")});
  ExpectConsistentHashing(
      name, [this](const PickRequest& r) { return Pick(r); },
      [this](const std::string& u, uint64_t l) { ASSERT_OK(Release(u, l).status); });
}

TEST_F(PickerTest, MaglevSameHeaderSameTarget) {
  const std::string name = MakeUpstream("maglev { hash_policies { header { name: 'x-user' } } }",
                                        {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"),
                                         MakeTarget("10.0.0.3:80"), MakeTarget("10.0.0.4:80")});
  ExpectConsistentHashing(
      name, [this](const PickRequest& r) { return Pick(r); },
      [this](const std::string& u, uint64_t l) { ASSERT_OK(Release(u, l).status); });
}

TEST_F(PickerTest, HeaderHashIsCaseInsensitiveOnName) {
  const std::string name = MakeUpstream(
      "ring_hash { hash_policies { header { name: 'X-User' } } }",
      {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"), MakeTarget("10.0.0.3:80")});
  for (int user = 0; user < 5; ++user) {
    PickRequest lower = Request(name), upper = Request(name);
    (*lower.mutable_attributes()->mutable_headers())["x-user"] = std::to_string(user);
    (*upper.mutable_attributes()->mutable_headers())["X-USER"] = std::to_string(user);
    auto a = Pick(lower);
    auto b = Pick(upper);
    ASSERT_OK(a.status);
    ASSERT_OK(b.status);
    EXPECT_EQ(a.value.hash(), b.value.hash());
    EXPECT_EQ(a.value.target(), b.value.target());
    ASSERT_OK(Release(name, a.value.lease_id()).status);
    ASSERT_OK(Release(name, b.value.lease_id()).status);
  }
}

TEST_F(PickerTest, RequestHashIsUsedDirectly) {
  for (const char* lb : {"ring_hash { hash_policies { header { name: 'x-user' } } }",
                         "maglev { hash_policies { header { name: 'x-user' } } }"}) {
    const std::string name = MakeUpstream(
        lb, {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"), MakeTarget("10.0.0.3:80")});
    std::set<std::string> used;
    for (uint64_t h : {1ull, 42ull, 0x123456789abcdefull, 0xfedcba9876543210ull, 7777ull,
                       99999999ull, 0x8000000000000000ull, 31337ull}) {
      PickRequest request = Request(name);
      request.set_hash(h);
      auto first = Pick(request);
      ASSERT_OK(first.status) << lb;
      ASSERT_TRUE(first.value.has_hash()) << lb;
      EXPECT_EQ(first.value.hash(), h) << lb << ": PickRequest.hash is used as is";
      // Header values are ignored when hash is given.
      (*request.mutable_attributes()->mutable_headers())["x-user"] = "someone";
      auto second = Pick(request);
      ASSERT_OK(second.status) << lb;
      EXPECT_EQ(second.value.hash(), h) << lb;
      EXPECT_EQ(second.value.target(), first.value.target()) << lb << " hash " << h;
      used.insert(first.value.target());
      ASSERT_OK(Release(name, first.value.lease_id()).status);
      ASSERT_OK(Release(name, second.value.lease_id()).status);
    }
    EXPECT_GT(used.size(), 1u) << lb;
  }
}

TEST_F(PickerTest, ActiveRequestsRiseWithPickAndFallWithRelease) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  std::vector<uint64_t> leases;
  for (int i = 1; i <= 4; ++i) {
    auto pick = Pick(name);
    ASSERT_OK(pick.status);
    leases.push_back(pick.value.lease_id());
    EXPECT_EQ(TotalActive(name), i);
  }
  auto active = ActiveByTarget(name);
  EXPECT_EQ(active["10.0.0.1:80"], 2u);
  EXPECT_EQ(active["10.0.0.2:80"], 2u);
  for (size_t i = 0; i < leases.size(); ++i) {
    ASSERT_OK(Release(name, leases[i],
                      i % 2 ? v1::ReleaseRequest::SUCCESS : v1::ReleaseRequest::OUTCOME_UNSPECIFIED)
                  .status);
    EXPECT_EQ(TotalActive(name), static_cast<int64_t>(leases.size() - i - 1));
  }
}

TEST_F(PickerTest, LeaseExpiresAfterTtl) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")}, "lease_ttl { nanos: 200000000 }");
  auto pick = Pick(name);
  ASSERT_OK(pick.status);
  EXPECT_EQ(Millis(pick.value.lease_ttl()), 200);
  EXPECT_EQ(TotalActive(name), 1);
  EXPECT_TRUE(WaitForActive(name, 0, std::chrono::seconds(5)))
      << "active_requests still " << TotalActive(name) << " long after the 200ms lease TTL";
  auto release = Release(name, pick.value.lease_id());
  ASSERT_OK(release.status);
  EXPECT_EQ(release.value.state(), ReleaseResponse::EXPIRED);
  EXPECT_EQ(TotalActive(name), 0) << "releasing an expired lease changes nothing";
  // Released again: still a known, ended lease.
  release = Release(name, pick.value.lease_id());
  ASSERT_OK(release.status);
  EXPECT_NE(release.value.state(), ReleaseResponse::RELEASED);
}

TEST_F(PickerTest, ExcludeAvoidsTargetWhenAnotherExists) {
  for (const char* lb : {"round_robin {}", "least_request {}", "random {}"}) {
    const std::string name = MakeUpstream(
        lb, {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80"), MakeTarget("10.0.0.3:80")});
    for (int i = 0; i < 12; ++i) {
      PickRequest request = Request(name);
      request.add_exclude("10.0.0.1:80");
      request.add_exclude("10.0.0.3:80");
      auto pick = Pick(request);
      ASSERT_OK(pick.status) << lb;
      EXPECT_EQ(pick.value.target(), "10.0.0.2:80") << lb;
      ASSERT_OK(Release(name, pick.value.lease_id()).status);
    }
    // Everything excluded: best effort, still a target.
    PickRequest request = Request(name);
    for (const char* a : {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}) request.add_exclude(a);
    auto pick = Pick(request);
    ASSERT_OK(pick.status) << lb << ": exclude is best effort";
    ASSERT_OK(Release(name, pick.value.lease_id()).status);
  }
}

// For RingHash and Maglev, exclude follows Envoy's retry attempts on the
// ring/table (a bounded number of perturbed lookups), which escapes the
// excluded host most of the time but not always: assert what Envoy
// guarantees, not more.
TEST_F(PickerTest, ExcludeWithConsistentHashing) {
  for (const char* lb : {"ring_hash { hash_policies { header { name: 'x-user' } } }",
                         "maglev { hash_policies { header { name: 'x-user' } } }"}) {
    const std::string name =
        MakeUpstream(lb, {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
    int natural_excluded = 0, escaped = 0;
    for (int i = 0; i < 40; ++i) {
      PickRequest request = Request(name);
      (*request.mutable_attributes()->mutable_headers())["x-user"] = "u" + std::to_string(i);
      auto natural = Pick(request);
      ASSERT_OK(natural.status) << lb;
      ASSERT_OK(Release(name, natural.value.lease_id()).status);
      const std::string other =
          natural.value.target() == "10.0.0.1:80" ? "10.0.0.2:80" : "10.0.0.1:80";
      // Excluding a target the key does not map to leaves the key alone.
      PickRequest not_mine = request;
      not_mine.add_exclude(other);
      auto same = Pick(not_mine);
      ASSERT_OK(same.status) << lb;
      EXPECT_EQ(same.value.target(), natural.value.target()) << lb << " key u" << i;
      ASSERT_OK(Release(name, same.value.lease_id()).status);
      // Excluding the key's own target usually moves it, deterministically.
      PickRequest mine = request;
      mine.add_exclude(natural.value.target());
      auto moved = Pick(mine);
      ASSERT_OK(moved.status) << lb;
      auto moved_again = Pick(mine);
      ASSERT_OK(moved_again.status) << lb;
      EXPECT_EQ(moved.value.target(), moved_again.value.target()) << lb << " key u" << i;
      ++natural_excluded;
      if (moved.value.target() != natural.value.target()) ++escaped;
      ASSERT_OK(Release(name, moved.value.lease_id()).status);
      ASSERT_OK(Release(name, moved_again.value.lease_id()).status);
    }
    EXPECT_GE(escaped * 2, natural_excluded) << lb << ": exclude escaped the excluded target only "
                                             << escaped << " of " << natural_excluded << " times";
  }
}

TEST_F(PickerTest, PickStreamAnswersWithRequestIdsAndReleasesOnClose) {
  const std::string name =
      MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  auto ctx = Ctx(std::chrono::seconds(20));
  auto stream = picker_->PickStream(ctx.get());
  ASSERT_NE(stream, nullptr);

  // Five picks; picks 3 and 5 carry the releases of picks 1 and 2.
  std::map<uint64_t, v1::PickResponse> answers;
  std::vector<uint64_t> order;
  for (uint64_t id : {101u, 102u, 103u, 104u, 105u}) {
    v1::PickStreamRequest request;
    request.set_request_id(id);
    *request.mutable_pick() = Request(name);
    if (id == 103 && answers.count(101)) {
      auto* release = request.add_releases();
      release->set_upstream(name);
      release->set_lease_id(answers[101].lease_id());
      release->set_outcome(v1::ReleaseRequest::SUCCESS);
    }
    if (id == 105 && answers.count(102)) {
      auto* release = request.add_releases();
      release->set_upstream(name);
      release->set_lease_id(answers[102].lease_id());
      release->set_outcome(v1::ReleaseRequest::FAILURE);
    }
    ASSERT_TRUE(stream->Write(request));
    v1::PickStreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.request_id(), id);
    EXPECT_EQ(response.code(), 0) << response.message();
    EXPECT_FALSE(response.pick().target().empty());
    EXPECT_NE(response.pick().lease_id(), 0u);
    answers[response.request_id()] = response.pick();
  }
  ASSERT_EQ(answers.size(), 5u);
  std::set<uint64_t> leases;
  for (const auto& [id, pick] : answers) leases.insert(pick.lease_id());
  EXPECT_EQ(leases.size(), 5u) << "each pick its own lease";

  // An error answer carries the id, the code and a message; the stream goes on.
  {
    v1::PickStreamRequest request;
    request.set_request_id(106);
    request.mutable_pick()->set_upstream(NewName("missing"));
    ASSERT_TRUE(stream->Write(request));
    v1::PickStreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.request_id(), 106u);
    EXPECT_EQ(response.code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
    EXPECT_FALSE(response.message().empty());
  }
  // A release-only message gets no answer; the next pick's answer comes next.
  {
    v1::PickStreamRequest release_only;
    auto* release = release_only.add_releases();
    release->set_upstream(name);
    release->set_lease_id(answers[103].lease_id());
    ASSERT_TRUE(stream->Write(release_only));
    v1::PickStreamRequest request;
    request.set_request_id(107);
    *request.mutable_pick() = Request(name);
    ASSERT_TRUE(stream->Write(request));
    v1::PickStreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.request_id(), 107u);
    EXPECT_EQ(response.code(), 0) << response.message();
  }
  // Held now: 104, 105, 107.
  EXPECT_EQ(TotalActive(name), 3) << "releases riding on the stream were applied";

  // A lease from the stream can also be released with the unary call.
  auto unary = Release(name, answers[104].lease_id());
  ASSERT_OK(unary.status);
  EXPECT_EQ(unary.value.state(), ReleaseResponse::RELEASED);
  // And one released on the stream reads as already released.
  unary = Release(name, answers[101].lease_id());
  ASSERT_OK(unary.status);
  EXPECT_EQ(unary.value.state(), ReleaseResponse::ALREADY_RELEASED);
  EXPECT_EQ(TotalActive(name), 2);

  ASSERT_TRUE(stream->WritesDone());
  v1::PickStreamResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  const grpc::Status finished = stream->Finish();
  EXPECT_OK(finished);
  EXPECT_TRUE(WaitForActive(name, 0, std::chrono::seconds(5)))
      << "leases still held by a closed stream are released at once; active=" << TotalActive(name);
  unary = Release(name, answers[105].lease_id());
  ASSERT_OK(unary.status);
  EXPECT_EQ(unary.value.state(), ReleaseResponse::ALREADY_RELEASED)
      << "a lease abandoned by its stream is released, not expired";
}

TEST_F(PickerTest, PickStreamCancelledReleasesLeases) {
  const std::string name = MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80")});
  {
    auto ctx = Ctx(std::chrono::seconds(20));
    auto stream = picker_->PickStream(ctx.get());
    for (uint64_t id = 1; id <= 3; ++id) {
      v1::PickStreamRequest request;
      request.set_request_id(id);
      *request.mutable_pick() = Request(name);
      ASSERT_TRUE(stream->Write(request));
      v1::PickStreamResponse response;
      ASSERT_TRUE(stream->Read(&response));
      ASSERT_EQ(response.code(), 0) << response.message();
    }
    EXPECT_EQ(TotalActive(name), 3);
    ctx->TryCancel();
    stream->Finish();
  }
  EXPECT_TRUE(WaitForActive(name, 0, std::chrono::seconds(5)))
      << "a cancelled stream's leases are released; active=" << TotalActive(name);
}

TEST_F(PickerTest, PickStreamManyPicksPipelined) {
  const std::string name =
      MakeUpstream("least_request {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")});
  auto ctx = Ctx(std::chrono::seconds(30));
  auto stream = picker_->PickStream(ctx.get());
  constexpr int kPicks = 200;
  std::thread writer([&] {
    for (int i = 0; i < kPicks; ++i) {
      v1::PickStreamRequest request;
      request.set_request_id(1000 + i);
      *request.mutable_pick() = Request(name);
      if (!stream->Write(request)) return;
    }
  });
  std::set<uint64_t> ids;
  std::vector<uint64_t> leases;
  for (int i = 0; i < kPicks; ++i) {
    v1::PickStreamResponse response;
    if (!stream->Read(&response)) break;
    EXPECT_EQ(response.code(), 0) << response.message();
    ids.insert(response.request_id());
    leases.push_back(response.pick().lease_id());
  }
  writer.join();
  EXPECT_EQ(ids.size(), static_cast<size_t>(kPicks));
  EXPECT_EQ(*ids.begin(), 1000u);
  EXPECT_EQ(*ids.rbegin(), 1000u + kPicks - 1);
  EXPECT_EQ(TotalActive(name), kPicks);
  // Release everything on the stream in one message.
  v1::PickStreamRequest release_all;
  for (uint64_t lease : leases) {
    auto* r = release_all.add_releases();
    r->set_upstream(name);
    r->set_lease_id(lease);
  }
  ASSERT_TRUE(stream->Write(release_all));
  EXPECT_TRUE(WaitForActive(name, 0, std::chrono::seconds(5)));
  stream->WritesDone();
  EXPECT_OK(stream->Finish());
}

}  // namespace
}  // namespace picker::testing
