// Abandoned clients (issue #8 point 5): leases that are never released
// expire after the upstream's lease_ttl, and a PickStream that goes away
// releases what it still holds at once, counted as abandoned. Afterwards no
// count is left behind, and a late Release answers EXPIRED.
#include <atomic>
#include <mutex>
#include <thread>

#include "tests/fault/fault_util.h"
#include "tests/integration/test_util.h"

namespace picker::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kTtlMs = 400;

class AbandonTest : public PickerServerTest {
 public:
  // A short drain: the suite's SIGTERM at the end need not wait 5 s for
  // client connections to go away.
  static void SetUpTestSuite() {
    ServerOptions options;
    options.extra_args = {"--drain-timeout-ms=1000"};
    StartServer(options);
  }

 protected:
  std::string MakeShortTtlUpstream(int64_t ttl_ms) {
    return MakeUpstream("round_robin {}", {MakeTarget("10.0.0.1:80"), MakeTarget("10.0.0.2:80")},
                        "lease_ttl { seconds: " + std::to_string(ttl_ms / 1000) +
                            " nanos: " + std::to_string((ttl_ms % 1000) * 1000000) + " }");
  }

  // picker_releases_total{upstream, outcome} (0 if absent).
  double Releases(const std::string& name, const std::string& outcome) {
    std::string error;
    auto v = ScrapeMetric(*server(), "picker_releases_total",
                          {"upstream=\"" + name + "\"", "outcome=\"" + outcome + "\""}, &error);
    EXPECT_TRUE(v.has_value()) << error;
    return v.value_or(-1);
  }
  double Metric(const std::string& metric, const std::string& name) {
    std::string error;
    auto v = ScrapeMetric(*server(), metric, {"upstream=\"" + name + "\""}, &error);
    EXPECT_TRUE(v.has_value()) << error;
    return v.value_or(-1);
  }
};

TEST_F(AbandonTest, UnreleasedLeasesExpireAfterTtl) {
  const std::string name = MakeShortTtlUpstream(kTtlMs);
  ASSERT_FALSE(HasFailure());
  auto got = GetUpstream(name);
  ASSERT_OK(got.status);
  ASSERT_EQ(Millis(got.value.lease_ttl()), kTtlMs);

  constexpr int kPicks = 20;
  std::vector<uint64_t> leases;
  const auto first = Clock::now();
  for (int i = 0; i < kPicks; ++i) {
    auto pick = Pick(name);
    ASSERT_OK(pick.status);
    EXPECT_EQ(Millis(pick.value.lease_ttl()), kTtlMs);
    leases.push_back(pick.value.lease_id());
  }
  // Before the TTL every lease still counts (only checkable if the picks
  // themselves were quick enough, e.g. not on a crawling sanitizer build).
  const int64_t active_now = TotalActive(name);
  if (Clock::now() - first < std::chrono::milliseconds(kTtlMs / 2)) {
    EXPECT_EQ(active_now, kPicks) << "leases ended before their TTL";
  }

  ASSERT_TRUE(WaitForActive(name, 0, std::chrono::seconds(5)))
      << "leases did not expire; active=" << TotalActive(name);
  EXPECT_GE(Clock::now() - first, std::chrono::milliseconds(kTtlMs));
  for (const auto& [address, active] : ActiveByTarget(name)) EXPECT_EQ(active, 0u) << address;
  EXPECT_EQ(Metric("picker_active_requests", name), 0);
  EXPECT_EQ(Metric("picker_leases_expired_total", name), kPicks);
  EXPECT_EQ(Releases(name, "expired"), kPicks);
  EXPECT_EQ(Releases(name, "success"), 0);

  // A late Release is OK and says EXPIRED, twice; it changes no count.
  for (uint64_t lease : leases) {
    for (int again = 0; again < 2; ++again) {
      auto release = Release(name, lease);
      ASSERT_OK(release.status);
      EXPECT_EQ(release.value.state(), v1::ReleaseResponse::EXPIRED) << "lease " << lease;
    }
  }
  EXPECT_EQ(TotalActive(name), 0);
  EXPECT_EQ(Metric("picker_leases_expired_total", name), kPicks);
  EXPECT_EQ(Releases(name, "success"), 0);
}

TEST_F(AbandonTest, CancelledPickStreamReleasesItsLeasesAtOnce) {
  // A long TTL: only the stream's end can bring the count down in time.
  const std::string name = MakeShortTtlUpstream(60000);
  ASSERT_FALSE(HasFailure());
  std::vector<uint64_t> leases;
  grpc::ClientContext ctx;
  auto stream = picker_->PickStream(&ctx);
  for (int i = 1; i <= 5; ++i) {
    v1::PickStreamRequest request;
    request.set_request_id(i);
    request.mutable_pick()->set_upstream(name);
    // The second pick carries the release of the first: that one ends as a
    // success, not as abandoned.
    if (i == 2) {
      v1::ReleaseRequest* release = request.add_releases();
      release->set_upstream(name);
      release->set_lease_id(leases[0]);
    }
    ASSERT_TRUE(stream->Write(request));
    v1::PickStreamResponse response;
    ASSERT_TRUE(stream->Read(&response));
    ASSERT_EQ(response.code(), 0) << response.message();
    leases.push_back(response.pick().lease_id());
  }
  EXPECT_EQ(TotalActive(name), 4);

  const auto cancelled = Clock::now();
  ctx.TryCancel();
  const grpc::Status finished = stream->Finish();
  EXPECT_CODE(finished, CANCELLED);
  ASSERT_TRUE(WaitForActive(name, 0, std::chrono::seconds(3)))
      << "a cancelled stream's leases were not released; active=" << TotalActive(name);
  EXPECT_LT(Clock::now() - cancelled, std::chrono::seconds(3));
  EXPECT_EQ(Metric("picker_active_requests", name), 0);
  EXPECT_EQ(Releases(name, "abandoned"), 4);
  EXPECT_EQ(Releases(name, "success"), 1);
  EXPECT_EQ(Metric("picker_leases_expired_total", name), 0);
  // Ended already: a late Release is OK and changes nothing.
  for (size_t i = 0; i < leases.size(); ++i) {
    auto release = Release(name, leases[i]);
    ASSERT_OK(release.status);
    EXPECT_EQ(release.value.state(), v1::ReleaseResponse::ALREADY_RELEASED) << "lease #" << i;
  }
  EXPECT_EQ(Releases(name, "abandoned"), 4);
  EXPECT_EQ(Releases(name, "success"), 1);
}

// Many clients that pick and forget while their leases expire around them,
// and a stream cut off mid-way: every pick ends exactly once, as expired or
// abandoned, and every count returns to 0.
TEST_F(AbandonTest, ConcurrentForgetfulClientsEachLeaseEndsOnce) {
  const std::string name = MakeShortTtlUpstream(300);
  ASSERT_FALSE(HasFailure());
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<uint64_t> unary_leases;
  std::atomic<int> picks{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      auto stub = v1::Picker::NewStub(NewChannel(server()->data_address()));
      while (!stop) {
        v1::PickRequest request;
        request.set_upstream(name);
        v1::PickResponse response;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        if (!stub->Pick(&ctx, request, &response).ok()) {
          ++errors;
          continue;
        }
        ++picks;
        std::lock_guard lock(mu);
        unary_leases.push_back(response.lease_id());
      }
    });
  }
  // The stream is cancelled while it holds leases younger than the TTL.
  std::atomic<int> stream_picks{0};
  threads.emplace_back([&] {
    auto stub = v1::Picker::NewStub(NewChannel(server()->data_address()));
    grpc::ClientContext ctx;
    auto stream = stub->PickStream(&ctx);
    for (uint64_t id = 1; !stop; ++id) {
      v1::PickStreamRequest request;
      request.set_request_id(id);
      request.mutable_pick()->set_upstream(name);
      v1::PickStreamResponse response;
      if (!stream->Write(request) || !stream->Read(&response) || response.code() != 0) {
        ++errors;
        break;
      }
      ++picks;
      ++stream_picks;
    }
    ctx.TryCancel();
    stream->Finish();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  ASSERT_GT(stream_picks, 5);
  ASSERT_GT(picks, 50);

  ASSERT_TRUE(WaitForActive(name, 0, std::chrono::seconds(5))) << "active=" << TotalActive(name);
  EXPECT_EQ(Metric("picker_active_requests", name), 0);
  const double expired = Metric("picker_leases_expired_total", name);
  const double abandoned = Releases(name, "abandoned");
  EXPECT_EQ(Releases(name, "expired"), expired);
  EXPECT_EQ(expired + abandoned, picks) << "expired=" << expired << " abandoned=" << abandoned;
  EXPECT_GT(abandoned, 0) << "the cancelled stream held no young lease";
  EXPECT_LE(abandoned, stream_picks);
  // No unary lease was abandoned: each one expired, and says so.
  std::lock_guard lock(mu);
  for (uint64_t lease : unary_leases) {
    auto release = Release(name, lease);
    ASSERT_OK(release.status);
    ASSERT_EQ(release.value.state(), v1::ReleaseResponse::EXPIRED) << "lease " << lease;
  }
}

}  // namespace
}  // namespace picker::testing
