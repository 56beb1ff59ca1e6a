// The embedded file store on a real directory: durable writes to two slot
// files per upstream, damaged slots, the layout before slots, and the staged
// writes of a batch (group commit).
#include "server/store/file_store.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include <fstream>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/hash/hash.h"
#include "server/store/record_codec.h"
#include "server/store/store.pb.h"

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

  // The records a Load answers.
  static absl::StatusOr<std::vector<core::UpstreamRecord>> Records(FileStore& store) {
    absl::StatusOr<core::StoreState> state = store.Load(nullptr);
    if (!state.ok()) return state.status();
    std::vector<core::UpstreamRecord> out;
    for (core::RevisionedRecord& r : state->records) out.push_back(std::move(r.record));
    return out;
  }

  // Name -> weight of the single target, as a fresh open loads them.
  std::map<std::string, uint32_t> Loaded() {
    std::unique_ptr<FileStore> store = Open();
    std::map<std::string, uint32_t> out;
    absl::StatusOr<std::vector<core::UpstreamRecord>> records = Records(*store);
    EXPECT_TRUE(records.ok()) << records.status();
    for (const core::UpstreamRecord& r : *records) out[r.config.name] = r.targets[0].config.weight;
    return out;
  }

  // The file names of the upstreams directory.
  std::set<std::string> Files() {
    std::set<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir_ / "upstreams")) {
      out.insert(entry.path().filename().string());
    }
    return out;
  }

  fs::path Slot(const std::string& name, int slot) {
    return dir_ / "upstreams" / ("u-" + name + ".slot" + std::to_string(slot));
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
  absl::StatusOr<std::vector<core::UpstreamRecord>> loaded = Records(*store);
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

// The options of slow start, PeakEwma and WeightedRoundRobin have their own
// field numbers in the store's schema: they survive a restart.
TEST_F(FileStoreTest, TheNewStrategyOptionsSurviveARestart) {
  std::vector<core::UpstreamRecord> written;
  auto add = [&](const std::string& name, auto set) {
    core::UpstreamRecord r = Record(name, 7);
    set(r.config.load_balancer);
    written.push_back(r);
  };
  add("rr", [](core::LoadBalancerConfig& lb) { lb.slow_start = {core::Millis(30000), 1.5, 25}; });
  add("lr", [](core::LoadBalancerConfig& lb) {
    lb.kind = core::StrategyKind::kLeastRequest;
    lb.choice_count = 3;
    lb.active_request_bias = 0.5;
    lb.slow_start = {core::Millis(1500), 0.5, 5};
  });
  add("ewma", [](core::LoadBalancerConfig& lb) {
    lb.kind = core::StrategyKind::kPeakEwma;
    lb.choice_count = 4;
    lb.decay_time = core::Millis(2500);
    lb.failure_penalty = core::Millis(750);
  });
  add("wrr", [](core::LoadBalancerConfig& lb) {
    lb.kind = core::StrategyKind::kWeightedRoundRobin;
    lb.blackout_period = core::Millis(0);
    lb.weight_expiration_period = core::Millis(60000);
    lb.weight_update_period = core::Millis(250);
    lb.error_utilization_penalty = 0;
  });
  // Per-client configurations, with their selectors, strategies and
  // locality.
  core::UpstreamRecord clients = Record("clients", 2);
  core::ClientConfig& web = clients.config.client_configs.emplace_back();
  web.client = {"web", {{"kuma.io/zone", "east"}, {"version", "v2"}}};
  web.load_balancer.kind = core::StrategyKind::kRingHash;
  web.load_balancer.hash_policies = {{.kind = core::HashPolicy::Kind::kHeader, .name = "x-header"}};
  web.locality_aware = false;
  core::ClientConfig& api = clients.config.client_configs.emplace_back();
  api.client = {"api", {}};
  api.load_balancer.kind = core::StrategyKind::kLeastRequest;
  api.load_balancer.choice_count = 4;
  clients.config.tags = {"team-a", "prod"};
  clients.targets.front().config.tags = {"blue"};
  written.push_back(clients);
  {
    std::unique_ptr<FileStore> store = Open();
    for (const core::UpstreamRecord& r : written) ASSERT_TRUE(store->Put(r).ok());
  }
  std::unique_ptr<FileStore> store = Open();
  absl::StatusOr<std::vector<core::UpstreamRecord>> loaded = Records(*store);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (const core::UpstreamRecord& want : written) {
    auto got = std::find_if(loaded->begin(), loaded->end(), [&](const core::UpstreamRecord& r) {
      return r.config.name == want.config.name;
    });
    ASSERT_NE(got, loaded->end()) << want.config.name;
    EXPECT_EQ(got->config, want.config) << want.config.name;
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

TEST_F(FileStoreTest, WritesAlternateBetweenTwoFilesInPlace) {
  std::unique_ptr<FileStore> store = Open();
  ASSERT_TRUE(store->Put(Record("a", 1)).ok());
  ASSERT_TRUE(store->Put(Record("a", 2)).ok());
  struct stat before[2];
  for (int k = 0; k < 2; ++k) ASSERT_EQ(::stat(Slot("a", k).c_str(), &before[k]), 0);
  for (uint32_t weight = 3; weight <= 10; ++weight) {
    ASSERT_TRUE(store->Put(Record("a", weight)).ok());
  }
  store.reset();
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 10}}));
  // Written over, never replaced: the same two files throughout.
  EXPECT_EQ(Files(), (std::set<std::string>{"u-a.slot0", "u-a.slot1"}));
  for (int k = 0; k < 2; ++k) {
    struct stat after;
    ASSERT_EQ(::stat(Slot("a", k).c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before[k].st_ino) << k;
  }
}

size_t OpenDescriptors() {
  return static_cast<size_t>(
      std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

// Slot files stay open between writes, up to a bound however many
// upstreams are written.
TEST_F(FileStoreTest, OpenFilesAreBounded) {
  const size_t before = OpenDescriptors();
  std::map<std::string, uint32_t> written;
  {
    std::unique_ptr<FileStore> store = Open();
    for (uint32_t round = 1; round <= 3; ++round) {
      for (int i = 0; i < 300; ++i) {
        const std::string name = "u" + std::to_string(i);
        ASSERT_TRUE(store->Put(Record(name, round * 1000 + i)).ok()) << name;
        written[name] = round * 1000 + i;
      }
      EXPECT_LE(OpenDescriptors(), before + 2 + 128) << round;
    }
  }
  EXPECT_EQ(Loaded(), written);
}

TEST_F(FileStoreTest, ARecordShrinksInPlace) {
  auto with_targets = [](int n) {
    core::UpstreamRecord r = Record("a", 1);
    for (int i = 1; i < n; ++i) {
      core::StoredTarget t;
      t.config.address = "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80";
      r.targets.push_back(t);
    }
    return r;
  };
  {
    std::unique_ptr<FileStore> store = Open();
    for (int n : {1000, 1000, 3, 2}) ASSERT_TRUE(store->Put(with_targets(n)).ok()) << n;
  }
  std::unique_ptr<FileStore> store = Open();
  absl::StatusOr<std::vector<core::UpstreamRecord>> loaded = Records(*store);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].targets.size(), 2u);
  EXPECT_LT(fs::file_size(Slot("a", 0)), 1000u);  // Truncated, not just overwritten.
}

// A write cut short (a crash, or a write error) leaves its slot damaged; the
// other slot holds the record acknowledged before it, which is loaded, and
// the next write goes to the damaged slot again.
TEST_F(FileStoreTest, ADamagedSlotLoadsTheRecordBeforeIt) {
  {
    std::unique_ptr<FileStore> store = Open();
    for (uint32_t weight : {1, 2, 3}) ASSERT_TRUE(store->Put(Record("a", weight)).ok());
    ASSERT_TRUE(store->Put(Record("b", 1)).ok());
    ASSERT_TRUE(store->Put(Record("b", 2)).ok());
  }
  // Weight 3 is in slot 0: cut it short. Weight 2 of b is in slot 1: flip a
  // byte of its payload.
  fs::resize_file(Slot("a", 0), fs::file_size(Slot("a", 0)) - 3);
  {
    std::fstream f(Slot("b", 1), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 2}, {"b", 1}}));
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Load(nullptr).ok());
    ASSERT_TRUE(store->Put(Record("a", 4)).ok());
    // Over the damaged slot: the one before stays whole.
    EXPECT_EQ(fs::file_size(Slot("a", 0)), fs::file_size(Slot("a", 1)));
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 4}, {"b", 1}}));
}

TEST_F(FileStoreTest, NoWholeSlotStopsTheLoadWithTheFileNames) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());
    ASSERT_TRUE(store->Put(Record("a", 2)).ok());
    ASSERT_TRUE(store->Put(Record("lone", 1)).ok());
  }
  fs::resize_file(Slot("lone", 0), 10);
  {
    std::unique_ptr<FileStore> store = Open();
    absl::StatusOr<std::vector<core::UpstreamRecord>> loaded = Records(*store);
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(loaded.status().message().find("u-lone.slot0"), std::string::npos) << loaded.status();
  }
  fs::remove(Slot("lone", 0));
  for (int k = 0; k < 2; ++k) fs::resize_file(Slot("a", k), 40);
  std::unique_ptr<FileStore> store = Open();
  absl::StatusOr<std::vector<core::UpstreamRecord>> loaded = Records(*store);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("u-a.slot0"), std::string::npos) << loaded.status();
  EXPECT_NE(loaded.status().message().find("u-a.slot1"), std::string::npos) << loaded.status();
}

// A data directory written before slots (one u-<name>.rec per upstream) is
// moved into slots by the first Load.
TEST_F(FileStoreTest, RecordsOfTheLayoutBeforeSlotsAreMovedIntoSlots) {
  fs::create_directories(dir_ / "upstreams");
  {
    // The store's schema reads those records as they are (store.proto).
    picker::store::v1::StoredUpstream stored;
    Encode(Record("old", 7), &stored);
    const std::string payload = stored.SerializeAsString();
    std::string file = "PICKREC1";
    auto put_u64 = [&file](uint64_t v) {
      for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    put_u64(payload.size());
    put_u64(core::XxHash64(payload));
    file += payload;
    std::ofstream(dir_ / "upstreams" / "u-old.rec", std::ios::binary) << file;
    // An interrupted write of that layout, never acknowledged.
    std::ofstream(dir_ / "upstreams" / "u-old.rec.tmp3") << "partial";
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"old", 7}}));
  EXPECT_EQ(Files(), (std::set<std::string>{"u-old.slot0"}));
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Load(nullptr).ok());
    ASSERT_TRUE(store->Put(Record("old", 8)).ok());
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"old", 8}}));
}

// File names end with the kind of file; an upstream's name may look like
// any of those endings.
TEST_F(FileStoreTest, NamesThatLookLikeFileEndingsAreKept) {
  const std::map<std::string, uint32_t> written = {
      {"x.tmp", 1}, {"y.rec.tmp1", 2}, {"z.slot1", 3}, {"w.rec", 4}, {"v.slot0.tmp", 5}};
  {
    std::unique_ptr<FileStore> store = Open();
    for (const auto& [name, weight] : written) {
      ASSERT_TRUE(store->Put(Record(name, weight)).ok()) << name;
      ASSERT_TRUE(store->Put(Record(name, weight)).ok()) << name;  // Both slots.
    }
  }
  EXPECT_EQ(Loaded(), written);
  EXPECT_EQ(Loaded(), written);  // The first load removed nothing of theirs.
}

TEST_F(FileStoreTest, ABatchLandsWholeOnCommit) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("kept", 1)).ok());
    ASSERT_TRUE(store->Put(Record("removed", 1)).ok());
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());  // New: a temporary file until the commit.
    ASSERT_TRUE(store->Put(Record("b", 2)).ok());
    ASSERT_TRUE(store->Put(Record("a", 3)).ok());          // The last write of a wins.
    ASSERT_TRUE(store->Put(Record("kept", 4)).ok());       // Replaces a record.
    ASSERT_TRUE(store->Put(Record("kept", 5)).ok());       // In the same slot again.
    ASSERT_TRUE(store->Delete("removed").ok());            // Removes one.
    ASSERT_TRUE(store->Put(Record("transient", 5)).ok());  // Put, then deleted.
    ASSERT_TRUE(store->Delete("transient").ok());
    // New upstreams' files are renamed into place, and removals made, by
    // the commit.
    EXPECT_EQ(Files(),
              (std::set<std::string>{"u-a.slot0.tmp", "u-b.slot0.tmp", "u-kept.slot0",
                                     "u-kept.slot1", "u-removed.slot0", "u-transient.slot0.tmp"}));
    ASSERT_TRUE(store->CommitBatch().ok());
    EXPECT_EQ(Files(),
              (std::set<std::string>{"u-a.slot0", "u-b.slot0", "u-kept.slot0", "u-kept.slot1"}));
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 3}, {"b", 2}, {"kept", 5}}));
}

// A batch's writes share one slot per record, so that the other slot keeps
// the last durable record until the commit: a crash before it that tears
// the staged slot loads the state from before the batch.
TEST_F(FileStoreTest, ABatchCutShortKeepsTheRecordsBeforeIt) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("kept", 1)).ok());
    ASSERT_TRUE(store->Put(Record("kept", 2)).ok());  // Slot 1; slot 0 holds 1.
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("kept", 3)).ok());  // Slot 0.
    ASSERT_TRUE(store->Put(Record("kept", 4)).ok());  // Slot 0 again, not over 2.
    ASSERT_TRUE(store->Delete("kept").ok());          // Not yet.
  }
  // The writes reached the page cache; a power cut could have torn them.
  fs::resize_file(Slot("kept", 0), fs::file_size(Slot("kept", 0)) - 1);
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"kept", 2}}));
}

TEST_F(FileStoreTest, ANewUpstreamOfABatchCutShortIsNotLoaded) {
  {
    std::unique_ptr<FileStore> store = Open();
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("new", 1)).ok());
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{}));
  EXPECT_EQ(Files(), (std::set<std::string>{}));  // Its temporary file is gone.
}

// Writes fail here for real: RLIMIT_FSIZE makes a write past the limit fail
// with EFBIG after writing what fits, leaving the slot torn.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_;
};

core::UpstreamRecord Large(const std::string& name, uint32_t weight) {
  core::UpstreamRecord r;
  r.config.name = name;
  for (int i = 0; i < 2000; ++i) {
    core::StoredTarget t;
    t.config.address = "10.2." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":80";
    t.config.weight = weight;
    r.targets.push_back(t);
  }
  return r;
}

TEST_F(FileStoreTest, AFailedWriteLeavesTheRecordBeforeIt) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());
    ASSERT_TRUE(store->Put(Record("a", 2)).ok());
    FileSizeLimit limit(4096);
    absl::Status failed = store->Put(Large("a", 3)).status();
    EXPECT_FALSE(failed.ok());
    EXPECT_NE(failed.message().find("u-a.slot0"), std::string::npos) << failed;
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 2}}));
}

TEST_F(FileStoreTest, AStagedWriteThatFailsLeavesTheOneBeforeIt) {
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());
    store->BeginBatch();
    ASSERT_TRUE(store->Put(Record("a", 2)).ok());  // Staged in slot 1.
    {
      // The next write of a goes to slot 1 as well, and fails half way: the
      // staged record is put back, since the commit will acknowledge it.
      FileSizeLimit limit(4096);
      EXPECT_FALSE(store->Put(Large("a", 3)).ok());
    }
    ASSERT_TRUE(store->CommitBatch().ok());
  }
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"a", 2}}));
}

TEST_F(FileStoreTest, WritesFromOtherThreadsStayDurableDuringABatch) {
  std::unique_ptr<FileStore> store = Open();
  ASSERT_TRUE(store->Put(Record("shared", 1)).ok());
  store->BeginBatch();
  ASSERT_TRUE(store->Put(Record("staged", 1)).ok());
  ASSERT_TRUE(store->Put(Record("shared", 2)).ok());
  ASSERT_TRUE(store->Put(Record("created", 3)).ok());
  std::thread other([&] {
    // Durable at once, and each supersedes the staged write of its record.
    ASSERT_TRUE(store->Put(Record("shared", 7)).ok());
    ASSERT_TRUE(store->Put(Record("other", 8)).ok());
    ASSERT_TRUE(store->Put(Record("created", 9)).ok());
  });
  other.join();
  EXPECT_TRUE(Files().contains("u-other.slot0"));
  EXPECT_TRUE(Files().contains("u-created.slot0"));
  ASSERT_TRUE(store->CommitBatch().ok());
  store.reset();
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{
                          {"created", 9}, {"other", 8}, {"shared", 7}, {"staged", 1}}));
}

TEST_F(FileStoreTest, AnEmptyBatchCommits) {
  std::unique_ptr<FileStore> store = Open();
  store->BeginBatch();
  EXPECT_TRUE(store->CommitBatch().ok());
  EXPECT_TRUE(store->Put(Record("after", 1)).ok());
  store.reset();
  EXPECT_EQ(Loaded(), (std::map<std::string, uint32_t>{{"after", 1}}));
}

// What a watcher heard: "name@revision" ("-name@revision" for a delete).
class Recorder : public core::StoreWatcher {
 public:
  void OnChanges(const std::vector<core::StoreEvent>& events) override {
    for (const core::StoreEvent& e : events) {
      heard.push_back((e.record ? "" : "-") + e.name + "@" + std::to_string(e.revision));
    }
  }
  std::vector<std::string> heard;
};

TEST_F(FileStoreTest, RevisionsGrowAcrossRestartsAndLoadsTellThem) {
  uint64_t before = 0;
  {
    std::unique_ptr<FileStore> store = Open();
    ASSERT_TRUE(store->Load(nullptr).ok());
    before = *store->Put(Record("a", 1));
    EXPECT_EQ(before, (store->boot() << core::kRevisionBootShift) + 1);
    EXPECT_EQ(*store->Delete("a"), before + 1);
    before = *store->Put(Record("b", 1));
  }
  std::unique_ptr<FileStore> store = Open();
  absl::StatusOr<core::StoreState> state = store->Load(nullptr);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_GT(state->revision, before);
  ASSERT_EQ(state->records.size(), 1u);
  EXPECT_EQ(state->records[0].mod_revision, state->revision);
  EXPECT_GT(*store->Put(Record("b", 2)), state->revision);
}

TEST_F(FileStoreTest, TheBootCounterIsWrittenInPlace) {
  uint64_t first_boot = 0;
  { first_boot = Open()->boot(); }
  struct stat before {};
  ASSERT_EQ(::stat((dir_ / "meta").c_str(), &before), 0);
  uint64_t boot = first_boot;
  for (int i = 0; i < 3; ++i) {
    const uint64_t next = Open()->boot();
    EXPECT_EQ(next, boot + 1);
    boot = next;
  }
  struct stat after {};
  ASSERT_EQ(::stat((dir_ / "meta").c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);  // No file created or renamed.
  EXPECT_EQ(after.st_size, before.st_size);
}

TEST_F(FileStoreTest, WatchersHearABatchOnceItIsCommitted) {
  std::unique_ptr<FileStore> store = Open();
  Recorder watcher;
  const uint64_t base = store->Load(&watcher)->revision;
  ASSERT_TRUE(store->Put(Record("kept", 1)).ok());
  store->BeginBatch();
  EXPECT_EQ(*store->Put(Record("b", 1)), 0u);  // Numbered at the commit.
  EXPECT_EQ(*store->Put(Record("a", 1)), 0u);
  EXPECT_EQ(*store->Delete("kept"), 0u);
  EXPECT_EQ(watcher.heard.size(), 1u);
  EXPECT_EQ(*store->CommitBatch(), base + 4);
  const std::string b = std::to_string(base);
  auto at = [&](int n) { return std::to_string(base + n); };
  EXPECT_EQ(watcher.heard, (std::vector<std::string>{"kept@" + at(1), "a@" + at(2), "b@" + at(3),
                                                     "-kept@" + at(4)}));
}

TEST_F(FileStoreTest, AWatcherResumesWithinAStartAndIsToldCompactedAfterARestart) {
  uint64_t seen = 0;
  {
    std::unique_ptr<FileStore> store = Open();
    Recorder watcher;
    seen = store->Load(&watcher)->revision;
    ASSERT_TRUE(store->Put(Record("a", 1)).ok());
    store->Unwatch(&watcher);
    ASSERT_TRUE(store->Put(Record("a", 2)).ok());
    ASSERT_TRUE(store->Watch(seen + 1, &watcher).ok());
    EXPECT_EQ(watcher.heard.size(), 2u);  // The one it saw, then the one it missed.
    seen = store->Load(nullptr)->revision;
    store->Unwatch(&watcher);
  }
  std::unique_ptr<FileStore> store = Open();
  Recorder watcher;
  EXPECT_TRUE(core::IsCompacted(store->Watch(seen, &watcher)));
  ASSERT_TRUE(store->Load(&watcher).ok());
}

// A data directory written by picker-server 0.1.0 (tests/fixtures) loads
// with every record, and moves its boot counter into the new file.
TEST_F(FileStoreTest, ADirectoryOfRelease010Loads) {
  fs::copy(fs::path(PICKER_SOURCE_DIR) / "tests/fixtures/datadir-0.1.0", dir_,
           fs::copy_options::recursive);
  {
    std::unique_ptr<FileStore> store = Open();
    EXPECT_EQ(store->boot(), 2u);  // meta.rec counted one boot.
    absl::StatusOr<std::vector<core::UpstreamRecord>> records = Records(*store);
    ASSERT_TRUE(records.ok()) << records.status();
    std::vector<std::string> names;
    for (const core::UpstreamRecord& r : *records) names.push_back(r.config.name);
    EXPECT_EQ(names, (std::vector<std::string>{"lr", "maglev", "rand", "ring", "rr"}));
    const core::UpstreamRecord& ring = (*records)[3];
    EXPECT_EQ(ring.config.load_balancer.hash_function, core::HashFunction::kMurmurHash2);
    EXPECT_EQ(ring.config.load_balancer.hash_balance_factor, 150u);
    EXPECT_EQ(ring.config.load_balancer.hash_policies.size(), 5u);
    EXPECT_EQ(ring.config.lease_ttl, core::Millis(1500));
    EXPECT_EQ(ring.targets[0].config.hash_key, "u1");
    const core::UpstreamRecord& maglev = (*records)[1];
    EXPECT_EQ(maglev.targets[1].health_override, core::HealthOverride::kUnhealthy);
    EXPECT_EQ(maglev.targets[2].health_override, core::HealthOverride::kHealthy);
    EXPECT_EQ(maglev.config.active.type, core::ActiveHealthConfig::Type::kGrpc);
  }
  EXPECT_FALSE(fs::exists(dir_ / "meta.rec"));
  EXPECT_EQ(Open()->boot(), 3u);
}

}  // namespace
}  // namespace picker::store
