#include "tests/fault/fault_util.h"

#include <stdlib.h>

#include <filesystem>
#include <sstream>
#include <thread>

namespace picker::testing {

double MetricSum(const std::string& text, const std::string& metric,
                 const std::vector<std::string>& labels, int* matches) {
  std::istringstream in(text);
  std::string line;
  double sum = 0;
  *matches = 0;
  while (std::getline(in, line)) {
    // "name{labels} value" or "name value"; a longer family name that starts
    // with `metric` (picker_picks_total vs picker_picks_totalx) must not match.
    if (line.rfind(metric, 0) != 0) continue;
    const char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;
    std::string label_text;
    size_t value_at = metric.size() + 1;
    if (next == '{') {
      const auto close = line.rfind('}');
      if (close == std::string::npos) continue;
      label_text = line.substr(metric.size(), close - metric.size() + 1);
      value_at = close + 1;
    }
    bool all = true;
    for (const auto& l : labels) all = all && label_text.find(l) != std::string::npos;
    if (!all) continue;
    ++*matches;
    sum += std::stod(line.substr(value_at));
  }
  return sum;
}

std::optional<double> ScrapeMetric(ServerProcess& server, const std::string& metric,
                                   const std::vector<std::string>& labels, std::string* error) {
  auto text = server.GetMetrics(error);
  if (!text) return std::nullopt;
  int matches = 0;
  const double sum = MetricSum(*text, metric, labels, &matches);
  if (matches == 0) {
    std::string wanted;
    for (const auto& l : labels) wanted += l + " ";
    *error = "no sample of " + metric + " with " + wanted + "in:\n" + *text;
    return std::nullopt;
  }
  return sum;
}

std::vector<std::string> LinesWith(const std::string& log, const std::vector<std::string>& parts) {
  std::vector<std::string> lines;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    bool all = true;
    for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
    if (all) lines.push_back(line);
  }
  return lines;
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Reconnect quickly after a restart instead of backing off for seconds.
  // The minimum backoff is also the minimum time a connection attempt gets:
  // kept at 1 s, so that a slow handshake on a loaded machine is not cut
  // ("tcp handshaker shutdown") over and over.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/picker-fault-XXXXXX";
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace picker::testing
