// The /metrics listener: prometheus-cpp's exposer (civetweb) serving a
// Metrics' collectables.
//
//   absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
//       MetricsEndpoint::Start("0.0.0.0:9464", metrics);
//   (*endpoint)->address();   // "0.0.0.0:<port>" when 0 was asked for
#ifndef PICKER_SERVER_METRICS_ENDPOINT_H_
#define PICKER_SERVER_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics/metrics.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace picker::metrics {

class MetricsEndpoint {
 public:
  // Binds `address`; a taken or bad address is an error naming it.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& address,
                                                                const Metrics& metrics);
  // Stops at once (see Stop).
  ~MetricsEndpoint();

  // The bound address (the real port when 0 was asked for).
  const std::string& address() const { return address_; }
  // Stops serving. civetweb looks at its stop flag only between polls of
  // its socket, two seconds each; local connections wake it meanwhile.
  void Stop();

 private:
  MetricsEndpoint() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
};

}  // namespace picker::metrics

#endif  // PICKER_SERVER_METRICS_ENDPOINT_H_
