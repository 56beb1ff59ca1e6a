// Crash safety of the embedded store: a writer streams admin changes while
// the server is killed with SIGKILL at random moments; after each restart,
// every acknowledged change must be there, and the one in flight is either
// wholly there or wholly absent, never torn.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"
#include "tests/integration/server_process.h"

namespace picker::testing {
namespace {

using TargetSet = std::vector<std::pair<std::string, uint32_t>>;  // address, weight

std::string Address(int i) {
  return "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
         std::to_string(i & 255) + ":80";
}

// Every target, page after page.
TargetSet Listed(v1::Admin::Stub& admin, const std::string& upstream) {
  v1::ListTargetsRequest request;
  request.set_upstream(upstream);
  request.set_page_size(1000);
  TargetSet out;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListTargetsResponse response;
    grpc::Status status = admin.ListTargets(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    for (const v1::Target& t : response.targets()) out.emplace_back(t.address(), t.weight());
    if (!status.ok() || response.next_page_token().empty()) return out;
    request.set_page_token(response.next_page_token());
  }
}

// The model's target set after applying write number `n` (deterministic, so
// the writer and the checker agree on it): mostly single PutTargets, every
// 16th write a ReplaceTargets of thousands of targets.
struct Write {
  bool replace = false;
  TargetSet targets;  // For replace: the whole set; else one target.
};

Write WriteNumber(int n) {
  Write w;
  if (n % 16 == 0) {
    w.replace = true;
    const int count = 1000 + (n * 37) % 2000;
    for (int i = 0; i < count; ++i) w.targets.emplace_back(Address(n * 4096 + i), 1 + i % 100);
  } else {
    w.targets.emplace_back(Address(n), static_cast<uint32_t>(n % 65536));
  }
  return w;
}

void Apply(const Write& w, TargetSet& model) {
  if (w.replace) {
    model = w.targets;
    return;
  }
  for (auto& [address, weight] : model) {
    if (address == w.targets[0].first) {
      weight = w.targets[0].second;
      return;
    }
  }
  model.push_back(w.targets[0]);
}

grpc::Status Send(v1::Admin::Stub& admin, const Write& w) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (w.replace) {
    v1::ReplaceTargetsRequest request;
    request.set_upstream("crash");
    for (const auto& [address, weight] : w.targets) {
      v1::Target* t = request.add_targets();
      t->set_address(address);
      t->set_weight(weight);
    }
    v1::ReplaceTargetsResponse response;
    return admin.ReplaceTargets(&context, request, &response);
  }
  v1::PutTargetRequest request;
  request.set_upstream("crash");
  request.mutable_target()->set_address(w.targets[0].first);
  request.mutable_target()->set_weight(w.targets[0].second);
  v1::Target response;
  return admin.PutTarget(&context, request, &response);
}

// A fresh data directory for one test, removed first if a run left it.
std::string FreshDir(const std::string& prefix) {
  const std::string dir =
      std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

std::unique_ptr<ServerProcess> StartOn(const std::string& dir, std::string* error) {
  ServerOptions options;
  options.data_dir = dir;
  return ServerProcess::Start(options, error);
}

bool CreateUpstream(v1::Admin::Stub& admin, const std::string& name) {
  grpc::ClientContext context;
  v1::CreateUpstreamRequest request;
  request.mutable_upstream()->set_name(name);
  v1::Upstream response;
  return admin.CreateUpstream(&context, request, &response).ok();
}

TEST(CrashTest, AcknowledgedWritesSurviveSigkill) {
  const std::string dir = FreshDir("picker-crash-");
  std::mt19937 rng(std::random_device{}());
  constexpr int kRounds = 50;

  TargetSet model;  // After the last acknowledged write.
  int next = 1;     // Number of the next write to send.
  for (int round = 0; round < kRounds; ++round) {
    std::string error;
    std::unique_ptr<ServerProcess> server = StartOn(dir, &error);
    ASSERT_NE(server, nullptr) << "round " << round << ": " << error;
    auto admin = v1::Admin::NewStub(server->admin_channel());

    if (round == 0) {
      ASSERT_TRUE(CreateUpstream(*admin, "crash"));
    } else {
      // The write in flight at the kill may or may not have landed, but
      // whole: the stored set is the model, or the model plus that write.
      const TargetSet listed = Listed(*admin, "crash");
      TargetSet with_in_flight = model;
      Apply(WriteNumber(next), with_in_flight);
      if (listed == with_in_flight && listed != model) {
        model = with_in_flight;
        ++next;
      }
      ASSERT_EQ(listed, model) << "round " << round << ": state after restart is neither the "
                               << "acknowledged state nor it plus the write in flight ("
                               << listed.size() << " targets listed, " << model.size()
                               << " expected)";
    }

    // Stream writes and kill the server at a random moment among them.
    std::atomic<bool> stop{false};
    std::atomic<int> acked_through{next - 1};
    std::thread writer([&] {
      for (int n = next; !stop; ++n) {
        if (!Send(*admin, WriteNumber(n)).ok()) return;
        acked_through = n;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 60));
    ::kill(server->pid(), SIGKILL);
    stop = true;
    writer.join();
    server->Stop();
    for (int n = next; n <= acked_through; ++n) Apply(WriteNumber(n), model);
    next = acked_through + 1;
  }
  std::filesystem::remove_all(dir);
  EXPECT_GT(next, kRounds) << "the writer should have made progress";
}

TEST(CrashTest, ConcurrentWritersAcknowledgedWritesSurviveSigkill) {
  // Writes from several clients at once queue up and are made durable
  // together (group commit). Each client owns an upstream and adds one
  // target per write; after a kill, each upstream must hold exactly the
  // targets acknowledged to its client, or those plus the one in flight.
  const std::string dir = FreshDir("picker-crash-group-");
  std::mt19937 rng(std::random_device{}());
  constexpr int kWriters = 6;
  constexpr int kRounds = 12;
  std::vector<int> acked(kWriters, 0);  // Targets acknowledged per writer.
  auto address = [](int writer, int n) { return Address(writer * 100000 + n); };
  auto name = [](int writer) { return "group-" + std::to_string(writer); };

  for (int round = 0; round < kRounds; ++round) {
    std::string error;
    std::unique_ptr<ServerProcess> server = StartOn(dir, &error);
    ASSERT_NE(server, nullptr) << "round " << round << ": " << error;
    auto admin = v1::Admin::NewStub(server->admin_channel());
    for (int w = 0; w < kWriters; ++w) {
      if (round == 0) {
        ASSERT_TRUE(CreateUpstream(*admin, name(w)));
        continue;
      }
      const TargetSet listed = Listed(*admin, name(w));
      ASSERT_TRUE(listed.size() == static_cast<size_t>(acked[w]) ||
                  listed.size() == static_cast<size_t>(acked[w]) + 1)
          << "round " << round << ", writer " << w << ": " << listed.size() << " targets listed, "
          << acked[w] << " acknowledged";
      for (size_t i = 0; i < listed.size(); ++i) {
        ASSERT_EQ(listed[i].first, address(w, static_cast<int>(i) + 1))
            << "round " << round << ", writer " << w;
      }
      acked[w] = static_cast<int>(listed.size());
    }

    std::atomic<bool> stop{false};
    std::vector<int> acked_now = acked;
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        for (int n = acked[w] + 1; !stop; ++n) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          v1::PutTargetRequest request;
          request.set_upstream(name(w));
          request.mutable_target()->set_address(address(w, n));
          v1::Target response;
          if (!admin->PutTarget(&context, request, &response).ok()) return;
          acked_now[w] = n;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 80));
    ::kill(server->pid(), SIGKILL);
    stop = true;
    for (std::thread& t : writers) t.join();
    server->Stop();
    acked = acked_now;
  }
  std::filesystem::remove_all(dir);
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_GT(acked[w], 0) << "writer " << w << " should have made progress";
  }
}

TEST(CrashTest, DamagedRecordStopsStartup) {
  const std::string dir = FreshDir("picker-damaged-");
  {
    std::string error;
    auto server = StartOn(dir, &error);
    ASSERT_NE(server, nullptr) << error;
    auto admin = v1::Admin::NewStub(server->admin_channel());
    ASSERT_TRUE(CreateUpstream(*admin, "precious"));
    ASSERT_EQ(server->Stop().code, 0);
  }
  // Its only record (one write: slot 0, renamed into place whole).
  const std::string record = dir + "/upstreams/u-precious.slot0";
  ASSERT_TRUE(std::filesystem::exists(record));
  // Truncate the record by a few bytes, as damage on disk would.
  std::filesystem::resize_file(record, std::filesystem::file_size(record) - 3);
  ServerOptions options;
  options.data_dir = dir;
  std::string log;
  ExitInfo exit = ServerProcess::RunToExit(options, std::chrono::seconds(20), &log);
  EXPECT_TRUE(exit.exited && exit.code != 0) << exit.ToString();
  EXPECT_NE(log.find("u-precious.slot0"), std::string::npos) << log;
  EXPECT_NE(log.find("truncated"), std::string::npos) << log;
  std::filesystem::remove_all(dir);
}

// A write cut short leaves its slot damaged beside the previous record's
// slot, which is whole: the server starts, serves that previous record, and
// names the damaged file in its log.
TEST(CrashTest, DamagedSlotBesideAWholeOneServesThePreviousRecord) {
  const std::string dir = FreshDir("picker-damaged-slot-");
  {
    std::string error;
    auto server = StartOn(dir, &error);
    ASSERT_NE(server, nullptr) << error;
    auto admin = v1::Admin::NewStub(server->admin_channel());
    ASSERT_TRUE(CreateUpstream(*admin, "flipped"));  // Slot 0: no targets.
    grpc::ClientContext context;
    v1::PutTargetRequest request;
    request.set_upstream("flipped");
    request.mutable_target()->set_address("10.0.0.1:80");
    v1::Target response;
    ASSERT_TRUE(admin->PutTarget(&context, request, &response).ok());  // Slot 1.
    ASSERT_EQ(Listed(*admin, "flipped").size(), 1u);
    ASSERT_EQ(server->Stop().code, 0);
  }
  const std::string slot1 = dir + "/upstreams/u-flipped.slot1";
  ASSERT_TRUE(std::filesystem::exists(slot1));
  std::filesystem::resize_file(slot1, std::filesystem::file_size(slot1) - 3);
  std::string error;
  auto server = StartOn(dir, &error);
  ASSERT_NE(server, nullptr) << error;
  auto admin = v1::Admin::NewStub(server->admin_channel());
  EXPECT_EQ(Listed(*admin, "flipped"), TargetSet{});
  EXPECT_NE(server->Log().find("u-flipped.slot1: truncated record"), std::string::npos)
      << server->Log();
  server->Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace picker::testing
