// Each probe type against real servers on loopback, without the prober.
#include "server/health/probes.h"

#include <chrono>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/health/test_servers.h"

namespace picker::health {
namespace {

using ::picker::health::testing::GrpcHealthServer;
using ::picker::health::testing::HttpServer;
using ::picker::health::testing::TcpListener;
using ::testing::HasSubstr;
using Kind = ProbeResult::Kind;
using std::chrono::milliseconds;

constexpr uint32_t kDefaultStatuses[] = {200, 302};

TEST(SplitHostPortTest, HostsOfEveryKind) {
  std::string host, port;
  ASSERT_TRUE(SplitHostPort("10.0.0.1:80", &host, &port));
  EXPECT_EQ(host, "10.0.0.1");
  EXPECT_EQ(port, "80");
  ASSERT_TRUE(SplitHostPort("[2001:db8::1]:8080", &host, &port));
  EXPECT_EQ(host, "2001:db8::1");
  EXPECT_EQ(port, "8080");
  ASSERT_TRUE(SplitHostPort("backend.example:443", &host, &port));
  EXPECT_EQ(host, "backend.example");
  EXPECT_FALSE(SplitHostPort("no-port", &host, &port));
  EXPECT_FALSE(SplitHostPort("host:", &host, &port));
}

TEST(ProbeHttpTest, ListedStatusIsSuccessAndPathIsSent) {
  HttpServer server;
  ProbeResult r = ProbeHttp(server.address(), "/healthz", kDefaultStatuses, milliseconds(1000));
  EXPECT_EQ(r.kind, Kind::kSuccess) << r.detail;
  EXPECT_EQ(server.last_path(), "/healthz");
  server.set_status(302);  // A redirect is healthy by default and not followed.
  EXPECT_TRUE(ProbeHttp(server.address(), "/", kDefaultStatuses, milliseconds(1000)).ok());
}

TEST(ProbeHttpTest, UnlistedStatusIsFailure) {
  HttpServer server;
  server.set_status(503);
  ProbeResult r = ProbeHttp(server.address(), "/", kDefaultStatuses, milliseconds(1000));
  EXPECT_EQ(r.kind, Kind::kFailure);
  EXPECT_THAT(r.detail, HasSubstr("503"));
  // 200 is only healthy when listed.
  server.set_status(200);
  const uint32_t only_204[] = {204};
  EXPECT_EQ(ProbeHttp(server.address(), "/", only_204, milliseconds(1000)).kind, Kind::kFailure);
}

TEST(ProbeHttpTest, ServerThatNeverAnswersTimesOutOnTime) {
  HttpServer server;
  server.set_mode(HttpServer::Mode::kHang);
  const auto start = std::chrono::steady_clock::now();
  ProbeResult r = ProbeHttp(server.address(), "/", kDefaultStatuses, milliseconds(150));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.kind, Kind::kTimeout) << r.detail;
  EXPECT_GE(took, milliseconds(140));
  EXPECT_LT(took, milliseconds(1000));
}

TEST(ProbeHttpTest, ConnectionRefusedIsFailure) {
  int port;
  {
    TcpListener listener;
    port = listener.port();
  }
  ProbeResult r =
      ProbeHttp("127.0.0.1:" + std::to_string(port), "/", kDefaultStatuses, milliseconds(500));
  EXPECT_EQ(r.kind, Kind::kFailure);
}

TEST(ProbeHttpTest, Ipv6InBrackets) {
  HttpServer server(/*ipv6=*/true);
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here";
  ProbeResult r = ProbeHttp(server.address(), "/", kDefaultStatuses, milliseconds(1000));
  EXPECT_TRUE(r.ok()) << r.detail;
}

TEST(ProbeTcpTest, OpenThenClosed) {
  TcpListener listener;
  EXPECT_TRUE(ProbeTcp(listener.address(), milliseconds(500)).ok());
  listener.Close();
  ProbeResult r = ProbeTcp(listener.address(), milliseconds(500));
  EXPECT_EQ(r.kind, Kind::kFailure);
  EXPECT_THAT(r.detail, HasSubstr("refused"));
}

TEST(ProbeTcpTest, NameIsResolvedAtProbeTime) {
  TcpListener listener;
  ProbeResult r = ProbeTcp("localhost:" + std::to_string(listener.port()), milliseconds(1000));
  EXPECT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(ProbeTcp("no-such-host.invalid:80", milliseconds(1000)).kind, Kind::kFailure);
}

TEST(ProbeGrpcTest, ServingAndNotServing) {
  GrpcHealthServer server;
  GrpcHealthChannel channel(server.address());
  ProbeResult r = channel.Check(milliseconds(1000));
  EXPECT_TRUE(r.ok()) << r.detail;
  server.SetServing(false);
  r = channel.Check(milliseconds(1000));
  EXPECT_EQ(r.kind, Kind::kFailure);
  EXPECT_THAT(r.detail, HasSubstr("NOT_SERVING"));
  server.SetServing(true);
  EXPECT_TRUE(channel.Check(milliseconds(1000)).ok());
}

TEST(ProbeGrpcTest, ServerThatNeverAnswersTimesOutOnTime) {
  HttpServer silent;  // Accepts TCP, never speaks HTTP/2.
  silent.set_mode(HttpServer::Mode::kHang);
  GrpcHealthChannel channel(silent.address());
  const auto start = std::chrono::steady_clock::now();
  ProbeResult r = channel.Check(milliseconds(150));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.kind, Kind::kTimeout) << r.detail;
  EXPECT_LT(took, milliseconds(1000));
}

TEST(ProbeGrpcTest, RecoversQuicklyAfterTheServerWasDown) {
  auto server = std::make_unique<GrpcHealthServer>();
  const int port = server->port();
  GrpcHealthChannel channel(server->address());
  ASSERT_TRUE(channel.Check(milliseconds(1000)).ok());
  server.reset();
  EXPECT_FALSE(channel.Check(milliseconds(200)).ok());
  EXPECT_FALSE(channel.Check(milliseconds(200)).ok());
  // Back on the same port: the channel must not sit out gRPC's reconnect
  // backoff (a second or more, growing); the next check or two succeed.
  server = std::make_unique<GrpcHealthServer>(port);
  const auto start = std::chrono::steady_clock::now();
  bool ok = false;
  for (int i = 0; i < 5 && !ok; ++i) ok = channel.Check(milliseconds(200)).ok();
  EXPECT_TRUE(ok);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(900));
}

}  // namespace
}  // namespace picker::health
