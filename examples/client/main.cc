// A client of picker: pick a target of an upstream, "send" the request there
// (simulated), and release the lease with the outcome and the latency.
//
//   picker-client-example [ADDRESS [UPSTREAM [REQUESTS]]]
//   (defaults: 127.0.0.1:50051 demo 5)
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>

#include "picker/client.h"

namespace {

// Stands in for a real HTTP or gRPC call to `target`: takes a few
// milliseconds and fails now and then.
picker::Outcome SendRequest(const std::string& target, std::mt19937& rng) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng() % 5));
  return rng() % 10 == 0 ? picker::Outcome::kFailure : picker::Outcome::kSuccess;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string address = argc > 1 ? argv[1] : "127.0.0.1:50051";
  const std::string upstream = argc > 2 ? argv[2] : "demo";
  const int requests = argc > 3 ? std::atoi(argv[3]) : 5;

  picker::ClientOptions options;
  options.deadline = std::chrono::milliseconds(500);
  options.max_attempts = 2;
  absl::StatusOr<std::unique_ptr<picker::Client>> client = picker::Client::Create(address, options);
  if (!client.ok()) {
    std::cerr << "cannot create the client: " << client.status() << "\n";
    return 1;
  }
  std::mt19937 rng(42);

  for (int i = 0; i < requests; ++i) {
    picker::PickOptions pick;
    pick.upstream = upstream;
    pick.headers["x-request-id"] = std::to_string(i);
    absl::StatusOr<picker::Lease> lease = (*client)->Pick(pick);
    if (!lease.ok()) {
      std::cerr << "pick failed: " << lease.status() << "\n";
      return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    const picker::Outcome outcome = SendRequest(lease->target(), rng);
    lease->set_outcome(outcome);
    lease->set_latency(std::chrono::steady_clock::now() - start);
    absl::StatusOr<picker::ReleaseState> state = lease->Release();
    if (!state.ok()) {
      std::cerr << "release failed: " << state.status() << "\n";
      return 1;
    }
    std::cout << "request " << i << " -> " << lease->target() << " " << picker::OutcomeName(outcome)
              << " in "
              << std::chrono::duration_cast<std::chrono::microseconds>(lease->latency()).count()
              << " us, lease " << lease->lease_id() << " " << picker::ReleaseStateName(*state)
              << "\n";
  }

  // With retries: a failed attempt is reported, and the next pick avoids the
  // targets already tried.
  absl::StatusOr<picker::RetryResult> retried = (*client)->PickWithRetry(
      {.upstream = upstream},
      [&](const picker::Lease& lease) { return SendRequest(lease.target(), rng); });
  if (!retried.ok()) {
    std::cerr << "retried request failed: " << retried.status() << "\n";
    return 1;
  }
  std::cout << "retried request: " << picker::OutcomeName(retried->outcome) << " after "
            << retried->attempts << " attempt(s)\n";
  return 0;
}
