// The store's change feed (core/store.h), on the in-memory store: every
// committed change has a revision, revisions only grow (across a restart
// too), a watcher that comes back resumes after the revision it saw, and
// one whose history is gone is told "compacted".
#include "server/core/store.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace picker::core {
namespace {

using ::testing::ElementsAre;

UpstreamRecord Record(const std::string& name, uint32_t weight = 100) {
  UpstreamRecord record;
  record.config.name = name;
  record.targets.push_back(StoredTarget{TargetConfig{.address = "10.0.0.1:80", .weight = weight}});
  return record;
}

// What a watcher heard: "name@revision" (or "-name@revision" for a delete).
class Recorder : public StoreWatcher {
 public:
  void OnChanges(const std::vector<StoreEvent>& events) override {
    for (const StoreEvent& e : events) {
      heard.push_back((e.record ? "" : "-") + e.name + "@" + std::to_string(e.revision));
    }
  }
  std::vector<std::string> heard;
};

TEST(StoreTest, EveryChangeHasTheNextRevision) {
  MemoryStore store(/*boot=*/3);
  const uint64_t base = uint64_t{3} << kRevisionBootShift;
  EXPECT_EQ(store.Load(nullptr)->revision, base);
  EXPECT_EQ(*store.Put(Record("a")), base + 1);
  EXPECT_EQ(*store.Put(Record("b")), base + 2);
  EXPECT_EQ(*store.Delete("a"), base + 3);
  EXPECT_EQ(*store.Delete("a"), base + 3);  // Nothing to delete: no change.
  absl::StatusOr<StoreState> state = store.Load(nullptr);
  EXPECT_EQ(state->revision, base + 3);
  ASSERT_EQ(state->records.size(), 1u);
  EXPECT_EQ(state->records[0].record.config.name, "b");
  EXPECT_EQ(state->records[0].mod_revision, base + 2);
}

TEST(StoreTest, RevisionsGrowAcrossARestart) {
  MemoryStore store(1);
  const uint64_t before = *store.Put(Record("a"));
  store.Reopen();
  EXPECT_GT(store.Load(nullptr)->revision, before);
  EXPECT_GT(*store.Put(Record("a", 7)), before);
}

TEST(StoreTest, AWriteWhoseExpectedRevisionDiffersIsAborted) {
  MemoryStore store;
  const uint64_t created = *store.Put(Record("a"), /*expected_revision=*/0);
  EXPECT_EQ(store.Put(Record("a"), 0).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store.Put(Record("a"), created + 5).status().code(), absl::StatusCode::kAborted);
  const uint64_t updated = *store.Put(Record("a", 2), created);
  EXPECT_EQ(store.Delete("a", created).status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store.Delete("a", updated).ok());
}

TEST(StoreTest, AWatcherHearsEveryChangeInOrder) {
  MemoryStore store(0);
  Recorder watcher;
  ASSERT_TRUE(store.Load(&watcher).ok());
  ASSERT_TRUE(store.Put(Record("a")).ok());
  ASSERT_TRUE(store.Put(Record("b")).ok());
  ASSERT_TRUE(store.Delete("a").ok());
  EXPECT_THAT(watcher.heard, ElementsAre("a@1", "b@2", "-a@3"));
}

TEST(StoreTest, AWatcherThatComesBackResumesAfterWhatItSaw) {
  MemoryStore store(0);
  Recorder watcher;
  ASSERT_TRUE(store.Load(&watcher).ok());
  ASSERT_TRUE(store.Put(Record("a")).ok());
  store.Unwatch(&watcher);
  ASSERT_TRUE(store.Put(Record("b")).ok());
  ASSERT_TRUE(store.Delete("a").ok());
  ASSERT_TRUE(store.Watch(1, &watcher).ok());
  ASSERT_TRUE(store.Put(Record("c")).ok());
  EXPECT_THAT(watcher.heard, ElementsAre("a@1", "b@2", "-a@3", "c@4"));
  EXPECT_EQ(store.Watch(9, &watcher).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StoreTest, AWatcherWhoseHistoryIsGoneIsToldCompacted) {
  MemoryStore store(0, /*history=*/2);
  Recorder watcher;
  for (const char* name : {"a", "b", "c", "d"}) ASSERT_TRUE(store.Put(Record(name)).ok());
  // Revisions 3 and 4 are kept: after 2 can resume, after 1 cannot.
  EXPECT_TRUE(store.Watch(2, &watcher).ok());
  store.Unwatch(&watcher);
  const absl::Status compacted = store.Watch(1, &watcher);
  EXPECT_TRUE(IsCompacted(compacted)) << compacted;
  // After a restart nothing from before is kept.
  store.Reopen();
  EXPECT_TRUE(IsCompacted(store.Watch(4, &watcher)));
  EXPECT_TRUE(store.Watch(store.Load(nullptr)->revision, &watcher).ok());
}

// Admin clients that rewrite large upstreams again and again must not make
// the history keep 4096 large records: it keeps at most kHistoryTargets
// targets' worth, and always the latest change.
TEST(StoreTest, TheHistoryIsBoundedByTheTargetsItHolds) {
  MemoryStore store(0);
  Recorder watcher;
  UpstreamRecord big = Record("big");
  big.targets.assign(ChangeFeed::kHistoryTargets / 4, big.targets.front());
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(store.Put(big).ok());
  // Revisions 5..8 hold exactly the budget; 4 and before are gone.
  EXPECT_TRUE(store.Watch(4, &watcher).ok());
  store.Unwatch(&watcher);
  EXPECT_TRUE(IsCompacted(store.Watch(3, &watcher)));
  big.targets.assign(ChangeFeed::kHistoryTargets * 2, big.targets.front());
  ASSERT_TRUE(store.Put(big).ok());
  EXPECT_TRUE(store.Watch(8, &watcher).ok());  // The latest stays, alone.
  store.Unwatch(&watcher);
  EXPECT_TRUE(IsCompacted(store.Watch(7, &watcher)));
}

TEST(StoreTest, ALostWatchIsReported) {
  MemoryStore store;
  struct Lost : Recorder {
    void OnWatchLost() override { ++lost; }
    int lost = 0;
  } watcher;
  ASSERT_TRUE(store.Load(&watcher).ok());
  store.InterruptWatches();
  EXPECT_EQ(watcher.lost, 1);
  ASSERT_TRUE(store.Put(Record("a")).ok());
  EXPECT_TRUE(watcher.heard.empty());
}

}  // namespace
}  // namespace picker::core
