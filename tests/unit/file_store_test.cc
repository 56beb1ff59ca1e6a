// The embedded file store on a real directory: durable writes, and the
// staged writes of a batch (group commit).
#include "server/store/file_store.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace picker::store {
namespace {

namespace fs = std::filesystem;

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("picker-file-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<FileStore> Open() {
    absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(dir_.string());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static core::UpstreamRecord Record(const std::string& name, uint32_t weight) {
    core::UpstreamRecord record;
    record.config.name = name;
    core::StoredTarget target;
    target.config.address = "10.0.0.1:80";
    target.config.weight = weight;
    record.targets.push_back(target);
    return record;
  }

  // Name -> weight of the single target, as a fresh open loads them.
  std::map<std::string, uint32_t> Loaded() {
    std::unique_ptr<FileStore> store = Open();
    std::map<std::string, uint32_t> out;
    absl::StatusOr<std::vector<core::UpstreamRecord>> records = store->Load();
    EXPECT_TRUE(records.ok()) << records.status();
    for (const core::UpstreamRecord& r : *records) out[r.config.name] = r.targets[0].config.weight;
    return out;
  }

  // The files of the upstreams directory; a staged file's number is shown
  // as "#" ("u-a.rec.tmp#").
  std::set<std::string> Files() {
    std::set<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir_ / "upstreams")) {
      std::string name = entry.path().filename().string();
      const size_t tmp = name.find(".rec.tmp");
      if (tmp != std::string::npos && name.size() > tmp + 8)
        name.replace(tmp + 8, std::string::npos, "#");
      out.insert(name);
    }
    return out;
  }

  fs::path dir_;
};

// The writer reuses its buffers from one record to the next (see
// SerializeRecord): records that grow, shrink and grow again, past the size
// it keeps, still come back whole.
TEST_F(FileStoreTest, RecordsOfEverySizeRoundTrip) {
  auto record = [](const std::string& name, int targets) {
    core::UpstreamRecord r;
    r.config.name = name;
    r.config.load_balancer.kind = core::StrategyKind::kMaglev;
    for (int i = 0; i < targets; ++i) {
      core::StoredTarget t;
      t.config.address = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80";
      t.config.weight = 1 + i % 50;
      t.config.zone = i % 3 == 0 ? "zone-a-with-a-name-longer-than-sso" : "";
      t.config.hash_key = i % 5 == 0 ? "key-" + std::to_string(i) : "";
      t.health_override =
          i % 7 == 0 ? core::HealthOverride::kUnhealthy : core::HealthOverride::kNone;
      r.targets.push_back(t);
    }
    return r;
  };
  const std::vector<core::UpstreamRecord> written = {record("small", 3), record("large", 5000),
                                                     record("empty", 0), record("huge", 40000),
                                                     record("after-huge", 10)};
  {
    std::unique_ptr<FileStore> store = Open();
    for (const core::UpstreamRecord& r : written) ASSERT_TRUE(store->Put(r).ok()) << r.config.name;
  }
  std::unique_ptr<FileStore> store = Open();
  absl::StatusOr<std::vector<core::UpstreamRecord>> loaded = store->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), written.size());
  for (const core::UpstreamRecord& want : written) {
    auto got = std::find_if(loaded->begin(), loaded->end(), [&](const core::UpstreamRecord& r) {
      return r.config.name == want.config.name;
    });
    ASSERT_NE(got, loaded->end()) << want.config.name;
    EXPECT_EQ(got->config, want.config);
    ASSERT_EQ(got->targets.size(), want.targets.size()) << want.config.name;
    for (size_t i = 0; i < want.targets.size(); ++i) {
      EXPECT_EQ(got->targets[i].config, want.targets[i].config) << want.config.name << " " << i;
      EXPECT_EQ(got->targets[i].health_override, want.targets[i].health_override);
    }
  }
}

TEST_F(FileStoreTest, PutAndDeleteAreDurableWhenTheyReturn) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());
    ASSERT_TRUE(store->Put(Record("b", 2)).ok());
    ASSERT_TRUE(store->Put(Record("a", 3)).ok());
    ASSERT_TRUE(store->Delete("b").ok());
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 3}}));
}

TEST_F(FileStoreTest, ABatchLandsWholeOnCommit) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("kept", 1)).ok());
    ASSERT_TRUE(store->Put(Record("removed", 1)).ok());
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());
    ASSERT_TRUE(store->Put(Record("b", 2)).ok());
    ASSERT_TRUE(store->Put(Record("a", 3)).ok());          // The last write of a wins.
    ASSERT_TRUE(store->Put(Record("kept", 4)).ok());       // Replaces a record.
    ASSERT_TRUE(store->Delete("removed").ok());            // Removes one.
    ASSERT_TRUE(store->Put(Record("transient", 5)).ok());  // Put, then deleted.
    ASSERT_TRUE(store->Delete("transient").ok());
    // Staged: the records on disk are still those from before the batch,
    // beside one staged file per record (a record's later write removes the
    // file of its earlier one, and a removal the file of the write before).
    EXPECT_EQ(Files(), (std::set<std::string>{"u-kept.rec", "u-removed.rec", "u-a.rec.tmp#",
                                              "u-b.rec.tmp#", "u-kept.rec.tmp#"}));
    ASSERT_TRUE(store->CommitBatch().ok());
    EXPECT_EQ(Files(), (std::set<std::string>{"u-a.rec", "u-b.rec", "u-kept.rec"}));
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 3}, {"b", 2}, {"kept", 4}}));
}

TEST_F(FileStoreTest, ABatchCutShortLeavesTheStateBeforeIt) {
  // A crash before CommitBatch: no write of the batch was acknowledged, and
  // none of them is loaded; their temporary files are removed.
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("kept", 1)).ok());
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("kept", 2)).ok());
    ASSERT_TRUE(store->Put(Record("new", 3)).ok());
    ASSERT_TRUE(store->Delete("kept").ok());
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"kept", 1}}));
  EXPECT_EQ(Files(), (std::set<std::string>{"u-kept.rec"}));
}

TEST_F(FileStoreTest, AStagedWriteThatFailsLeavesTheOneBeforeIt) {
  {
    std::unique_ptr<FileStore> store = Open();
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());  // Staged as u-a.rec.tmp1.
    // The next staged file cannot be created: a directory stands in its way.
    fs::create_directory(dir_ / "upstreams" / "u-a.rec.tmp2");
    EXPECT_FALSE(store->Put(Record("a", 2)).ok());
    ASSERT_TRUE(store->CommitBatch().ok());
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 1}}));
}

TEST_F(FileStoreTest, WritesFromOtherThreadsStayDurableDuringABatch) {
  std::unique_ptr<FileStore> store = Open();
  ASSERT_TRUE(store->Put(Record("shared", 1)).ok());
  store->BeginBatch();
  ASSERT_TRUE(store->Put(Record("staged", 1)).ok());
  ASSERT_TRUE(store->Put(Record("shared", 2)).ok());
  std::thread other([&] {
    // Durable at once, and it supersedes the staged write of the same record.
    ASSERT_TRUE(store->Put(Record("shared", 7)).ok());
    ASSERT_TRUE(store->Put(Record("other", 8)).ok());
  });
  other.join();
  EXPECT_TRUE(Files().contains("u-other.rec"));
  ASSERT_TRUE(store->CommitBatch().ok());
  store.reset();
  EXPECT_EQ(Loaded(),
            (std::map<std::string, uint32_t>{{"other", 8}, {"shared", 7}, {"staged", 1}}));
}

TEST_F(FileStoreTest, AnEmptyBatchCommits) {
  std::unique_ptr<FileStore> store = Open();
  store->BeginBatch();
  EXPECT_TRUE(store->CommitBatch().ok());
  EXPECT_TRUE(store->Put(Record("after", 1)).ok());
  store.reset();
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"after", 1}}));
}

}  // namespace
}  // namespace picker::store
