#include "server/etcd/client.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace picker::etcd {
namespace {

// A call etcd did not answer in time is etcd being unavailable to this
// replica; DEADLINE_EXCEEDED would read as the caller's own deadline.
absl::Status FromGrpc(const grpc::Status& status, const char* what, const std::string& endpoint) {
  const grpc::StatusCode code = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                                    ? grpc::StatusCode::UNAVAILABLE
                                    : status.error_code();
  return absl::Status(static_cast<absl::StatusCode>(code),
                      absl::StrCat("etcd at ", endpoint, ": ", what, ": ", status.error_message()));
}

// etcd answers a call that needs a leader and has none, and an unreachable
// member, with these: another endpoint may do better.
bool TryElsewhere(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

bool TokenExpired(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         absl::StrContains(status.error_message(), "invalid auth token");
}

}  // namespace

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      ++end.back();
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // Every key.
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(ClientOptions options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("--etcd-endpoints: is empty");
  std::unique_ptr<EtcdClient> client(new EtcdClient(std::move(options)));
  for (const std::string& url : client->options_.endpoints) {
    absl::string_view target = url;
    const bool tls = absl::ConsumePrefix(&target, "https://");
    if (!tls && !absl::ConsumePrefix(&target, "http://")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--etcd-endpoints: \"", url, "\" must start with http:// or https://"));
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = client->options_.cacert;
      ssl.pem_cert_chain = client->options_.cert;
      ssl.pem_private_key = client->options_.key;
      credentials = grpc::SslCredentials(ssl);
    }
    Endpoint& e = client->endpoints_.emplace_back();
    e.url = url;
    grpc::ChannelArguments args;
    // etcd's own default limit on a request is 1.5 MiB; answers (a whole
    // prefix's range) can be larger.
    args.SetMaxReceiveMessageSize(-1);
    e.channel = grpc::CreateCustomChannel(std::string(target), credentials, args);
    e.kv = etcdserverpb::KV::NewStub(e.channel);
    e.lease = etcdserverpb::Lease::NewStub(e.channel);
    e.watch = etcdserverpb::Watch::NewStub(e.channel);
    e.auth = etcdserverpb::Auth::NewStub(e.channel);
  }
  return client;
}

EtcdClient::Endpoint& EtcdClient::Current() {
  return endpoints_[current_.load(std::memory_order_relaxed) % endpoints_.size()];
}

std::string EtcdClient::endpoint() const {
  return endpoints_[current_.load(std::memory_order_relaxed) % endpoints_.size()].url;
}

std::unique_ptr<grpc::ClientContext> EtcdClient::UnaryContext(
    std::chrono::milliseconds within) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + within);
  std::lock_guard lock(token_mu_);
  if (!token_.empty()) context->AddMetadata("token", token_);
  return context;
}

std::unique_ptr<grpc::ClientContext> EtcdClient::StreamContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("hasleader", "true");
  std::lock_guard lock(token_mu_);
  if (!token_.empty()) context->AddMetadata("token", token_);
  return context;
}

etcdserverpb::Watch::Stub& EtcdClient::watch() { return *Current().watch; }
etcdserverpb::Lease::Stub& EtcdClient::lease() { return *Current().lease; }

absl::Status EtcdClient::Authenticate(Endpoint& endpoint) {
  if (options_.user.empty()) return absl::OkStatus();
  etcdserverpb::AuthenticateRequest request;
  request.set_name(options_.user);
  request.set_password(options_.password);
  etcdserverpb::AuthenticateResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  grpc::Status status = endpoint.auth->Authenticate(&context, request, &response);
  if (!status.ok()) return FromGrpc(status, "authenticate (--etcd-user)", endpoint.url);
  std::lock_guard lock(token_mu_);
  token_ = response.token();
  return absl::OkStatus();
}

template <typename Call>
absl::Status EtcdClient::Run(const char* what, Call call) {
  absl::Status status = RunOnce(what, call);
  if (stats_ != nullptr) stats_->CountRequest(what, absl::StatusCodeToString(status.code()));
  return status;
}

template <typename Call>
absl::Status EtcdClient::RunOnce(const char* what, Call call) {
  grpc::Status last;
  bool authenticated = false;
  const auto share = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(1000),
                                                         options_.timeout / endpoints_.size());
  for (size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
    Endpoint& e = Current();
    if (!options_.user.empty() && !authenticated) {
      bool have_token;
      {
        std::lock_guard lock(token_mu_);
        have_token = !token_.empty();
      }
      if (!have_token) {
        if (absl::Status s = Authenticate(e); !s.ok()) return s;
      }
    }
    last = call(e, *UnaryContext(share));
    if (last.ok()) return absl::OkStatus();
    if (TokenExpired(last) && !options_.user.empty() && !authenticated) {
      authenticated = true;
      if (absl::Status s = Authenticate(e); !s.ok()) return s;
      --attempt;  // the same endpoint again, with a fresh token
      continue;
    }
    if (!TryElsewhere(last)) break;
    current_.fetch_add(1, std::memory_order_relaxed);
  }
  return FromGrpc(last, what, endpoint());
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& request) {
  etcdserverpb::RangeResponse response;
  absl::Status s = Run("range", [&](Endpoint& e, grpc::ClientContext& context) {
    return e.kv->Range(&context, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request) {
  etcdserverpb::TxnResponse response;
  absl::Status s = Run("txn", [&](Endpoint& e, grpc::ClientContext& context) {
    return e.kv->Txn(&context, request, &response);
  });
  // A txn etcd did not answer may still be applied when it catches up, so
  // the caller must not read the error as "nothing was written".
  if (absl::IsUnavailable(s)) {
    return absl::UnavailableError(absl::StrCat(s.message(), " (outcome unknown: read back)"));
  }
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(int64_t ttl_seconds) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(ttl_seconds);
  etcdserverpb::LeaseGrantResponse response;
  absl::Status s = Run("lease grant", [&](Endpoint& e, grpc::ClientContext& context) {
    return e.lease->LeaseGrant(&context, request, &response);
  });
  if (!s.ok()) return s;
  if (!response.error().empty()) {
    return absl::UnavailableError(absl::StrCat("etcd: lease grant: ", response.error()));
  }
  return response;
}

absl::Status EtcdClient::LeaseRevoke(int64_t lease_id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease_id);
  etcdserverpb::LeaseRevokeResponse response;
  return Run("lease revoke", [&](Endpoint& e, grpc::ClientContext& context) {
    return e.lease->LeaseRevoke(&context, request, &response);
  });
}

}  // namespace picker::etcd
