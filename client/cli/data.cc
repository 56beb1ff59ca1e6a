// picker-cli's data-plane commands: pick, release (picker::Client) and
// healthcheck (grpc.health.v1 on --addr, for container health checks).
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/cli/cli.h"
#include "client/cli/flags.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "picker/client.h"

namespace picker::cli {

int PickRequestFromFlags(const CommandLine& cl, const std::string& upstream, v1::PickRequest& r);

namespace {

std::string UpstreamArg(const CommandLine& cl) {
  if (!cl.args.empty()) return cl.args[0];
  return absl::GetFlag(FLAGS_upstream);
}

int ParseOutcome(Outcome* out) {
  const std::string text = absl::GetFlag(FLAGS_outcome);
  if (text == "success") {
    *out = Outcome::kSuccess;
  } else if (text == "failure") {
    *out = Outcome::kFailure;
  } else if (text == "timeout") {
    *out = Outcome::kTimeout;
  } else {
    return UsageError("--outcome wants success, failure or timeout, got '" + text + "'");
  }
  return kExitOk;
}

absl::StatusOr<std::unique_ptr<Client>> NewClient(const Connection& c, bool stream) {
  ClientOptions options;
  options.deadline = c.deadline();
  options.use_stream = stream;
  return Client::Create(c.DataChannel(), options);
}

int ReportRelease(uint64_t lease_id, const absl::StatusOr<ReleaseState>& state) {
  if (!state.ok()) {
    std::cerr << "picker-cli: release failed: " << state.status().ToString() << "\n";
    return static_cast<int>(state.status().code()) * 8;
  }
  std::cout << "released lease_id=" << lease_id << " state=" << ReleaseStateName(*state)
            << std::endl;
  return kExitOk;
}

void PrintLease(const Lease& lease) {
  std::cout << "target=" << lease.target() << " zone=" << lease.zone()
            << " lease_id=" << lease.lease_id() << " ttl_ms=" << lease.lease_ttl().count();
  if (lease.hash()) std::cout << " hash=" << *lease.hash();
  for (const SetCookie& cookie : lease.set_cookies()) {
    std::cout << " set_cookie=" << cookie.name << "=" << cookie.value;
  }
  std::cout << std::endl;
}

PickOptions OptionsOf(const v1::PickRequest& r) {
  PickOptions o;
  o.upstream = r.upstream();
  o.headers.insert(r.attributes().headers().begin(), r.attributes().headers().end());
  o.cookies.insert(r.attributes().cookies().begin(), r.attributes().cookies().end());
  o.query_params.insert(r.attributes().query_params().begin(), r.attributes().query_params().end());
  o.filter_state.insert(r.attributes().filter_state().begin(), r.attributes().filter_state().end());
  o.source_ip = r.attributes().source_ip();
  o.client_zone = r.client_zone();
  o.client_service = r.client_service();
  o.client_tags.insert(r.client_tags().begin(), r.client_tags().end());
  if (r.has_hash()) o.hash = r.hash();
  o.exclude.assign(r.exclude().begin(), r.exclude().end());
  return o;
}

int PickOnce(Client& client, const PickOptions& options, Outcome outcome) {
  absl::StatusOr<Lease> lease = client.Pick(options);
  if (!lease.ok()) {
    std::cerr << "picker-cli: pick failed: " << lease.status().ToString() << "\n";
    return static_cast<int>(lease.status().code()) * 8;
  }
  PrintLease(*lease);
  if (const uint64_t hold = absl::GetFlag(FLAGS_hold_ms); hold > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(hold));
  }
  if (!absl::GetFlag(FLAGS_release)) {
    // Left open for a later `picker-cli release` by id, or for its TTL.
    lease->Detach();
    return kExitOk;
  }
  lease->set_outcome(outcome);
  if (const int64_t ms = absl::GetFlag(FLAGS_latency_ms); ms >= 0) {
    lease->set_latency(std::chrono::milliseconds(ms));
  }
  const uint64_t id = lease->lease_id();
  return ReportRelease(id, lease->Release());
}

}  // namespace

int RunPick(const Connection& c, const CommandLine& cl) {
  const std::string upstream = UpstreamArg(cl);
  if (upstream.empty() || cl.args.size() > 1) return UsageError("pick takes UPSTREAM");
  const bool stream = absl::GetFlag(FLAGS_stream);
  // The server releases a stream's open leases when the stream ends: a
  // lease picked on one cannot outlive this command.
  if (stream && !absl::GetFlag(FLAGS_release)) {
    return UsageError(
        "--stream needs --release: the server releases a stream's leases when it closes, so a "
        "lease left open must be picked without --stream");
  }
  if (absl::GetFlag(FLAGS_count) == 0) return UsageError("--count wants a positive number");
  v1::PickRequest request;
  if (int e = PickRequestFromFlags(cl, upstream, request)) return e;
  Outcome outcome;
  if (int e = ParseOutcome(&outcome)) return e;
  auto client = NewClient(c, stream);
  if (!client.ok()) return UsageError(client.status().ToString());
  const PickOptions options = OptionsOf(request);
  int status = kExitOk;
  for (uint64_t i = 0; i < absl::GetFlag(FLAGS_count) && status == kExitOk; ++i) {
    status = PickOnce(**client, options, outcome);
  }
  if (status == kExitOk && stream) {
    if (absl::Status s = (*client)->Flush(); !s.ok()) {
      std::cerr << "picker-cli: flushing releases failed: " << s.ToString() << "\n";
      status = static_cast<int>(s.code()) * 8;
    }
  }
  return status;
}

int RunRelease(const Connection& c, const CommandLine& cl) {
  const std::string upstream = UpstreamArg(cl);
  if (upstream.empty() || cl.args.size() > 1) return UsageError("release takes UPSTREAM");
  const uint64_t lease_id = absl::GetFlag(FLAGS_lease_id);
  if (lease_id == 0) return UsageError("release needs --lease-id (a positive number)");
  Outcome outcome;
  if (int e = ParseOutcome(&outcome)) return e;
  std::optional<std::chrono::nanoseconds> latency;
  if (const int64_t ms = absl::GetFlag(FLAGS_latency_ms); ms >= 0) {
    latency = std::chrono::milliseconds(ms);
  }
  auto client = NewClient(c, false);
  if (!client.ok()) return UsageError(client.status().ToString());
  return ReportRelease(lease_id, (*client)->Release(upstream, lease_id, outcome, latency));
}

int RunHealthcheck(const Connection& c, const CommandLine& cl) {
  if (!cl.args.empty()) return UsageError("healthcheck takes no arguments");
  auto stub = grpc::health::v1::Health::NewStub(c.DataChannel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse response;
  auto context = c.Context(/*admin=*/false);
  grpc::Status status = stub->Check(context.get(), request, &response);
  if (!status.ok()) return RpcError("healthcheck", status);
  const std::string state =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::cout << state << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitChanges;
}

}  // namespace picker::cli
