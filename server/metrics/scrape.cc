#include "server/metrics/scrape.h"

#include <zlib.h>

#include <chrono>
#include <string>

#include "absl/strings/match.h"
#include "prometheus/text_serializer.h"

namespace picker::metrics {
namespace {

// `text` gzip-compressed, or "" if zlib fails.
std::string Gzip(const std::string& text) {
  z_stream stream{};
  // 16 + window bits: a gzip header and trailer, as Accept-Encoding: gzip wants.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 9,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return "";
  }
  std::string out(deflateBound(&stream, text.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return result == Z_STREAM_END ? out : "";
}

}  // namespace

ScrapeHandler::ScrapeHandler(const Metrics& metrics)
    : exposer_registry_(std::make_shared<prometheus::Registry>()) {
  transferred_bytes_ = &prometheus::BuildCounter()
                            .Name("exposer_transferred_bytes_total")
                            .Help("Transferred bytes to metrics services")
                            .Register(*exposer_registry_)
                            .Add({});
  scrapes_ = &prometheus::BuildCounter()
                  .Name("exposer_scrapes_total")
                  .Help("Number of times metrics were scraped")
                  .Register(*exposer_registry_)
                  .Add({});
  latencies_ =
      &prometheus::BuildSummary()
           .Name("exposer_request_latencies")
           .Help("Latencies of serving scrape requests, in microseconds")
           .Register(*exposer_registry_)
           .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}});
  collectables_.push_back(exposer_registry_);
  for (const auto& collectable : metrics.collectables()) collectables_.push_back(collectable);
}

http::Response ScrapeHandler::Serve(const http::Request& request) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : collectables_) {
    for (auto& family : collectable->Collect()) families.push_back(std::move(family));
  }
  http::Response response =
      http::Response::Text(200, prometheus::TextSerializer().Serialize(families));
  if (absl::StrContains(request.Header("accept-encoding"), "gzip")) {
    std::string compressed = Gzip(response.body);
    if (!compressed.empty()) {
      response.body = std::move(compressed);
      response.WithHeader("Content-Encoding", "gzip");
    }
  }
  latencies_->Observe(static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - start)
                                              .count()));
  transferred_bytes_->Increment(static_cast<double>(response.body.size()));
  scrapes_->Increment();
  return response;
}

}  // namespace picker::metrics
