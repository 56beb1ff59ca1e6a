// GET /metrics on the HTTP layer: Prometheus' text format (0.0.4) of a
// Metrics' collectables, gzip-compressed when the scraper accepts it, as
// prometheus-cpp's Exposer served it before (same families, same order,
// its own exposer_* series included, so dashboards see no change).
//
//   ScrapeHandler scrape(metrics);
//   router.Add("GET", "/metrics", [&](const http::Request& r) { return scrape.Serve(r); });
#ifndef PICKER_SERVER_METRICS_SCRAPE_H_
#define PICKER_SERVER_METRICS_SCRAPE_H_

#include <memory>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "prometheus/summary.h"
#include "server/http/http.h"
#include "server/metrics/metrics.h"

namespace picker::metrics {

class ScrapeHandler {
 public:
  // `metrics` must outlive the handler.
  explicit ScrapeHandler(const Metrics& metrics);

  // Thread-safe.
  http::Response Serve(const http::Request& request);

 private:
  // exposer_scrapes_total, exposer_transferred_bytes_total and
  // exposer_request_latencies (microseconds), as the Exposer kept them.
  std::shared_ptr<prometheus::Registry> exposer_registry_;
  prometheus::Counter* transferred_bytes_;
  prometheus::Counter* scrapes_;
  prometheus::Summary* latencies_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
};

}  // namespace picker::metrics

#endif  // PICKER_SERVER_METRICS_SCRAPE_H_
