#include "server/core/snapshot_map.h"

#include <latch>
#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "server/core/upstream.h"

namespace picker::core {
namespace {

std::shared_ptr<const UpstreamSnapshot> Snapshot(const std::string& name) {
  UpstreamConfig config;
  config.name = name;
  return UpstreamSnapshot::Build(config, {}, std::make_shared<UpstreamLive>(), WallTime(), 1);
}

TEST(SnapshotMapTest, FindAndFindUncachedAgree) {
  SnapshotMap map;
  map.Publish({{"a", Snapshot("a")}});
  ASSERT_NE(map.Find("a"), nullptr);
  EXPECT_EQ(map.Find("a"), map.FindUncached("a"));
  EXPECT_EQ(map.FindUncached("b"), nullptr);
  map.Remove({"a"});
  EXPECT_EQ(map.Find("a"), nullptr);
  EXPECT_EQ(map.FindUncached("a"), nullptr);
}

// A thread that read the map before an upstream was deleted, and reads
// nothing since (an idle HTTP worker), does not keep the deleted upstream's
// snapshot alive: the overload manager's memory falls once it is deleted.
TEST(SnapshotMapTest, ADeletedSnapshotIsFreedThoughAnIdleThreadCachedTheMap) {
  SnapshotMap map;
  std::weak_ptr<const UpstreamSnapshot> deleted;
  {
    auto big = Snapshot("big");
    deleted = big;
    map.Publish({{"small", Snapshot("small")}, {"big", std::move(big)}});
  }
  std::latch read(1), removed(1);
  std::thread idle([&] {
    ASSERT_NE(map.Find("small"), nullptr);  // Caches the map, with big's slot.
    read.count_down();
    removed.wait();
  });
  read.wait();
  map.Remove({"big"});
  EXPECT_TRUE(deleted.expired());
  removed.count_down();
  idle.join();
}

}  // namespace
}  // namespace picker::core
