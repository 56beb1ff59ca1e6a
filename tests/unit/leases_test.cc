// The lease table on its own: counters, the answers a Release gets, expiry,
// abandonment, and the deadlines that released leases leave behind.
#include "server/core/leases.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace picker::core {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseTable table_{7};
  std::shared_ptr<TargetLive> target_ = std::make_shared<TargetLive>();
  std::shared_ptr<UpstreamLive> upstream_ = std::make_shared<UpstreamLive>();

  uint64_t Count(ReleaseOutcome outcome) const {
    return upstream_->counters.releases[static_cast<size_t>(outcome)].load();
  }
};

TEST_F(LeaseTableTest, AcquireRaisesAndReleaseLowersBothCounters) {
  const uint64_t a = *table_.Acquire(target_, upstream_, Millis(60000));
  const uint64_t b = *table_.Acquire(target_, upstream_, Millis(60000));
  EXPECT_NE(a, b);
  EXPECT_EQ(LeaseId::Decode(a).boot, 7u);
  EXPECT_EQ(target_->active_requests.load(), 2u);
  EXPECT_EQ(upstream_->active_requests.load(), 2u);

  LeaseTable::ReleaseResult released = table_.Release(a, upstream_.get());
  EXPECT_EQ(released.state, LeaseState::kReleased);
  EXPECT_EQ(released.target, target_);
  EXPECT_EQ(target_->active_requests.load(), 1u);
  EXPECT_EQ(upstream_->active_requests.load(), 1u);
  EXPECT_EQ(table_.active_count(), 1u);
}

TEST_F(LeaseTableTest, ReleaseTellsReleasedTwiceFromNeverIssued) {
  const uint64_t id = *table_.Acquire(target_, upstream_, Millis(60000));
  ASSERT_EQ(table_.Release(id, upstream_.get()).state, LeaseState::kReleased);
  EXPECT_EQ(table_.Release(id, upstream_.get()).state, LeaseState::kAlreadyReleased);
  EXPECT_EQ(target_->active_requests.load(), 0u);
  // A sequence not handed out yet, sequence 0, and a later boot.
  EXPECT_EQ(table_.Release(id + 1, upstream_.get()).state, LeaseState::kNeverIssued);
  EXPECT_EQ(table_.Release(LeaseId{7, 0, 0}.Encode(), upstream_.get()).state,
            LeaseState::kNeverIssued);
  EXPECT_EQ(table_.Release(LeaseId{8, 0, 1}.Encode(), upstream_.get()).state,
            LeaseState::kNeverIssued);
  // An earlier run's lease ended with that run.
  EXPECT_EQ(table_.Release(LeaseId{6, 0, 1}.Encode(), upstream_.get()).state, LeaseState::kExpired);
}

TEST_F(LeaseTableTest, ALeaseOfAnotherUpstreamIsNeverIssuedThereAndStaysOpen) {
  const uint64_t id = *table_.Acquire(target_, upstream_, Millis(60000));
  UpstreamLive other;
  EXPECT_EQ(table_.Release(id, &other).state, LeaseState::kNeverIssued);
  EXPECT_EQ(target_->active_requests.load(), 1u);
  EXPECT_EQ(table_.Release(id, upstream_.get()).state, LeaseState::kReleased);
}

TEST_F(LeaseTableTest, ExpiryEndsDueLeasesOnceAndALateReleaseIsToldSo) {
  const uint64_t short_lived = *table_.Acquire(target_, upstream_, Millis(10));
  const uint64_t long_lived = *table_.Acquire(target_, upstream_, Millis(60000));
  const LeaseTable::Clock::time_point later = LeaseTable::Clock::now() + milliseconds(100);
  EXPECT_EQ(table_.ExpireDue(later), 1u);
  EXPECT_EQ(table_.ExpireDue(later), 0u);
  EXPECT_EQ(target_->active_requests.load(), 1u);
  EXPECT_EQ(Count(ReleaseOutcome::kExpired), 1u);
  EXPECT_EQ(table_.Release(short_lived, upstream_.get()).state, LeaseState::kExpired);
  EXPECT_EQ(table_.Release(long_lived, upstream_.get()).state, LeaseState::kReleased);
  EXPECT_EQ(upstream_->active_requests.load(), 0u);
}

TEST_F(LeaseTableTest, AbandonEndsALeaseOnceAndCountsIt) {
  const uint64_t id = *table_.Acquire(target_, upstream_, Millis(60000));
  EXPECT_TRUE(table_.Abandon(id));
  EXPECT_FALSE(table_.Abandon(id));
  EXPECT_EQ(target_->active_requests.load(), 0u);
  EXPECT_EQ(Count(ReleaseOutcome::kAbandoned), 1u);
  EXPECT_EQ(table_.Release(id, upstream_.get()).state, LeaseState::kAlreadyReleased);
}

TEST_F(LeaseTableTest, DeadlinesOfReleasedLeasesDoNotPileUp) {
  // Many short requests under a long TTL, with a few leases held open all
  // along: maintenance keeps the deadlines near the open leases' count
  // instead of one per pick made in the last TTL.
  std::vector<uint64_t> held;
  for (int i = 0; i < 64; ++i) held.push_back(*table_.Acquire(target_, upstream_, Millis(3600000)));
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 10000; ++i) {
      const uint64_t id = *table_.Acquire(target_, upstream_, Millis(3600000));
      ASSERT_EQ(table_.Release(id, upstream_.get()).state, LeaseState::kReleased);
    }
    EXPECT_EQ(table_.ExpireDue(LeaseTable::Clock::now()), 0u);
  }
  EXPECT_EQ(table_.active_count(), 64u);
  // Per shard: at most twice its open leases plus the slack, and at least
  // its open leases.
  EXPECT_LE(table_.deadline_count(), 2 * 64 + 32 * 1024u);
  EXPECT_GE(table_.deadline_count(), 64u);

  // The held leases still expire at their deadline, and only then.
  EXPECT_EQ(table_.ExpireDue(LeaseTable::Clock::now() + hours(2)), 64u);
  EXPECT_EQ(target_->active_requests.load(), 0u);
  for (uint64_t id : held) {
    EXPECT_EQ(table_.Release(id, upstream_.get()).state, LeaseState::kExpired);
  }
}

}  // namespace
}  // namespace picker::core
