// TLS, mutual TLS, the admin token and the limits, against the real server.
// Certificates are made at test time with the openssl command.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "picker/v1/admin.grpc.pb.h"
#include "picker/v1/picker.grpc.pb.h"
#include "tests/integration/server_process.h"

namespace picker::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Deadlined(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return "";
}

// A CA, a server certificate for 127.0.0.1 and a client certificate.
class Certificates {
 public:
  Certificates() : dir_(fs::temp_directory_path() / ("picker-tls-" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string script =
        "set -e; cd " + d +
        "; openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=picker-test-ca"
        " -keyout ca.key -out ca.pem 2>/dev/null"
        "; for who in server client; do"
        "   openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who.key -out $who.csr"
        "     2>/dev/null;"
        "   printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $who.ext;"
        "   openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
        "     -extfile $who.ext -out $who.pem 2>/dev/null;"
        " done";
    std::ofstream(dir_ / "make.sh") << script;
    ok_ = std::system(("bash " + (dir_ / "make.sh").string()).c_str()) == 0 &&
          fs::exists(dir_ / "client.pem");
  }
  ~Certificates() { fs::remove_all(dir_); }
  bool ok() const { return ok_; }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string pem(const std::string& name) const { return Read(dir_ / name); }

 private:
  fs::path dir_;
  bool ok_ = false;
};

std::unique_ptr<ServerProcess> Start(std::vector<std::string> args) {
  ServerOptions options;
  options.extra_args = std::move(args);
  std::string error;
  auto server = ServerProcess::Start(options, &error);
  EXPECT_NE(server, nullptr) << error;
  return server;
}

// A server whose listeners speak TLS: the shared harness checks readiness over
// plaintext, so this one only waits for the log line that names the ports.
class TlsServer {
 public:
  explicit TlsServer(const std::vector<std::string>& flags)
      : dir_(fs::temp_directory_path() /
             ("picker-tls-server-" + std::to_string(::getpid()) + "-" + std::to_string(++count_))) {
    fs::create_directories(dir_);
    std::vector<std::string> args = {ServerPath(), "--listen=127.0.0.1:0",
                                     "--admin-listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
                                     "--data-dir=" + (dir_ / "data").string()};
    args.insert(args.end(), flags.begin(), flags.end());
    const std::string log = (dir_ / "log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen(log.c_str(), "w", stderr);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 200 && data_.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::string text = Read(log);
      const size_t at = text.find("listening data=");
      if (at == std::string::npos) continue;
      std::istringstream words(text.substr(at));
      std::string word;
      while (words >> word) {
        if (word.rfind("data=", 0) == 0) data_ = word.substr(5);
        if (word.rfind("admin=", 0) == 0) admin_ = word.substr(6);
      }
    }
  }
  ~TlsServer() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    fs::remove_all(dir_);
  }
  bool ok() const { return !data_.empty() && !admin_.empty(); }
  const std::string& data_address() const { return data_; }
  const std::string& admin_address() const { return admin_; }

 private:
  static inline int count_ = 0;
  fs::path dir_;
  pid_t pid_ = -1;
  std::string data_, admin_;
};

grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  Deadlined(context);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&context, request, &response);
}

TEST(SecurityTest, AdminTokenRequiredForAdminOnly) {
  const fs::path token = fs::temp_directory_path() / ("picker-token-" + std::to_string(::getpid()));
  std::ofstream(token) << "s3cret-token\n";
  auto server = Start({"--admin-token-file", token.string()});
  ASSERT_NE(server, nullptr);
  auto admin = v1::Admin::NewStub(server->admin_channel());
  auto list = [&](const std::string& authorization) {
    grpc::ClientContext context;
    Deadlined(context);
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    v1::ListUpstreamsResponse response;
    return admin->ListUpstreams(&context, v1::ListUpstreamsRequest(), &response);
  };
  EXPECT_EQ(list("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("Bearer wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("Bearer s3cret-token-and-more").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("s3cret-token").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(list("").error_message(), HasSubstr("authorization"));
  EXPECT_TRUE(list("Bearer s3cret-token").ok());
  // Health needs no token, and an unauthenticated write changes nothing.
  EXPECT_TRUE(HealthCheck(server->admin_channel()).ok());
  {
    grpc::ClientContext context;
    Deadlined(context);
    v1::CreateUpstreamRequest request;
    request.mutable_upstream()->set_name("sneaky");
    v1::Upstream response;
    EXPECT_EQ(admin->CreateUpstream(&context, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    // A request that does not parse (a name that is not UTF-8) learns only
    // that it lacks the token.
    grpc::ClientContext context;
    Deadlined(context);
    v1::CreateUpstreamRequest request;
    request.mutable_upstream()->set_name("caf\xe9");
    v1::Upstream response;
    EXPECT_EQ(admin->CreateUpstream(&context, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::ClientContext context;
  Deadlined(context);
  context.AddMetadata("authorization", "Bearer s3cret-token");
  v1::ListUpstreamsResponse response;
  ASSERT_TRUE(admin->ListUpstreams(&context, v1::ListUpstreamsRequest(), &response).ok());
  EXPECT_EQ(response.upstreams_size(), 0);
  // The audit log names the refused call (polled: the log arrives through a pipe).
  const std::string audit = "method=CreateUpstream upstream=\"sneaky\" result=UNAUTHENTICATED";
  for (int i = 0; i < 100 && server->Log().find(audit) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(server->Log(), HasSubstr(audit));
  fs::remove(token);
}

TEST(SecurityTest, TlsAndMutualTls) {
  Certificates certs;
  ASSERT_TRUE(certs.ok()) << "openssl failed to make test certificates";
  grpc::SslCredentialsOptions trust_only;
  trust_only.pem_root_certs = certs.pem("ca.pem");
  grpc::SslCredentialsOptions with_client_cert = trust_only;
  with_client_cert.pem_private_key = certs.pem("client.key");
  with_client_cert.pem_cert_chain = certs.pem("client.pem");

  {
    auto server = std::make_unique<TlsServer>(std::vector<std::string>{
        "--tls-cert", certs.path("server.pem"), "--tls-key", certs.path("server.key")});
    ASSERT_TRUE(server->ok());
    EXPECT_FALSE(
        HealthCheck(grpc::CreateChannel(server->data_address(), grpc::InsecureChannelCredentials()))
            .ok());
    EXPECT_TRUE(
        HealthCheck(grpc::CreateChannel(server->data_address(), grpc::SslCredentials(trust_only)))
            .ok());
    EXPECT_TRUE(
        HealthCheck(grpc::CreateChannel(server->admin_address(), grpc::SslCredentials(trust_only)))
            .ok());
  }
  {
    auto server = std::make_unique<TlsServer>(std::vector<std::string>{
        "--tls-cert", certs.path("server.pem"), "--tls-key", certs.path("server.key"),
        "--tls-client-ca", certs.path("ca.pem")});
    ASSERT_TRUE(server->ok());
    EXPECT_FALSE(
        HealthCheck(grpc::CreateChannel(server->data_address(), grpc::SslCredentials(trust_only)))
            .ok());
    auto channel =
        grpc::CreateChannel(server->admin_address(), grpc::SslCredentials(with_client_cert));
    EXPECT_TRUE(HealthCheck(channel).ok());
    auto admin = v1::Admin::NewStub(channel);
    grpc::ClientContext context;
    Deadlined(context);
    v1::CreateUpstreamRequest request;
    request.mutable_upstream()->set_name("secure");
    v1::Upstream response;
    EXPECT_TRUE(admin->CreateUpstream(&context, request, &response).ok());
  }
  std::string log;
  ServerOptions lonely_key;
  lonely_key.extra_args = {"--tls-key", certs.path("server.key")};
  ExitInfo exit = ServerProcess::RunToExit(lonely_key, std::chrono::seconds(20), &log);
  EXPECT_TRUE(exit.exited && exit.code != 0) << exit.ToString();
  EXPECT_THAT(log, HasSubstr("--tls-cert"));
}

TEST(SecurityTest, LimitsAnswerResourceExhaustedAndChangeNothing) {
  auto server = Start({"--max-upstreams", "2", "--max-targets-per-upstream", "3",
                       "--max-hash-policies", "1", "--max-leases-per-upstream", "2"});
  ASSERT_NE(server, nullptr);
  auto admin = v1::Admin::NewStub(server->admin_channel());
  auto picker = v1::Picker::NewStub(server->data_channel());
  auto create = [&](const std::string& name, int hash_policies) {
    grpc::ClientContext context;
    Deadlined(context);
    v1::CreateUpstreamRequest request;
    request.mutable_upstream()->set_name(name);
    for (int i = 0; i < hash_policies; ++i) {
      request.mutable_upstream()
          ->mutable_load_balancer()
          ->mutable_maglev()
          ->add_hash_policies()
          ->mutable_header()
          ->set_name("h" + std::to_string(i));
    }
    v1::Upstream response;
    return admin->CreateUpstream(&context, request, &response);
  };
  grpc::Status too_many_policies = create("p", 2);
  EXPECT_EQ(too_many_policies.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(too_many_policies.error_message(), HasSubstr("hash_policies"));
  ASSERT_TRUE(create("a", 1).ok());
  ASSERT_TRUE(create("b", 0).ok());
  grpc::Status third = create("c", 0);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.error_message(), HasSubstr("--max-upstreams"));

  auto replace = [&](int count) {
    grpc::ClientContext context;
    Deadlined(context);
    v1::ReplaceTargetsRequest request;
    request.set_upstream("b");
    for (int i = 0; i < count; ++i) {
      request.add_targets()->set_address("10.0.0." + std::to_string(i + 1) + ":80");
    }
    v1::ReplaceTargetsResponse response;
    return admin->ReplaceTargets(&context, request, &response);
  };
  ASSERT_TRUE(replace(3).ok());
  EXPECT_EQ(replace(4).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  {
    grpc::ClientContext context;
    Deadlined(context);
    v1::PutTargetRequest request;
    request.set_upstream("b");
    request.mutable_target()->set_address("10.0.0.9:80");
    v1::Target response;
    EXPECT_EQ(admin->PutTarget(&context, request, &response).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    grpc::ClientContext context;
    Deadlined(context);
    v1::ListTargetsRequest request;
    request.set_upstream("b");
    v1::ListTargetsResponse response;
    ASSERT_TRUE(admin->ListTargets(&context, request, &response).ok());
    EXPECT_EQ(response.targets_size(), 3);
  }
  auto pick = [&] {
    grpc::ClientContext context;
    Deadlined(context);
    v1::PickRequest request;
    request.set_upstream("b");
    v1::PickResponse response;
    return picker->Pick(&context, request, &response);
  };
  EXPECT_TRUE(pick().ok());
  EXPECT_TRUE(pick().ok());
  grpc::Status over = pick();
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(over.error_message(), HasSubstr("leases"));
}

}  // namespace
}  // namespace picker::testing
