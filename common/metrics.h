// Operators' view of a daemon: Prometheus metrics served over HTTP
// (prometheus-cpp's exposer; GET /metrics), values read when scraped, and
// the latency of every gRPC call the daemon serves.
//
//   auto m = Metrics::Serve("0.0.0.0:9090");   // --metrics-listen
//   (*m)->Gauge("stagefarm_scheduler_queue_depth", "stages waiting", {},
//               [&] { return service->QueueDepth(); });
//   builder.experimental().SetInterceptorCreators(
//       (*m)->RpcInterceptors());   // stagefarm_rpc_duration_seconds
// Thread-safe; callbacks run on the exposer's threads and must be cheap.
#ifndef STAGEFARM_COMMON_METRICS_H_
#define STAGEFARM_COMMON_METRICS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace stagefarm {

class Metrics {
 public:
  using Labels = std::map<std::string, std::string>;

  // Serves /metrics on HOST:PORT (port 0: any free port).
  static absl::StatusOr<std::unique_ptr<Metrics>> Serve(
      const std::string& listen);
  ~Metrics();

  int port() const { return port_; }

  // A value read at each scrape (one series of the family `name`).
  void Gauge(const std::string& name, const std::string& help,
             const Labels& labels, std::function<double()> read);
  // A counter read at each scrape (the callback returns the running total).
  void Counter(const std::string& name, const std::string& help,
               const Labels& labels, std::function<double()> read);

  // Counters whose label sets appear as they happen (e.g. one series a
  // platform seen): `read` returns every series and its running total.
  void CounterFamily(
      const std::string& name, const std::string& help,
      std::function<std::vector<std::pair<Labels, double>>()> read);

  // Interceptors recording stagefarm_rpc_duration_seconds{method, code}
  // for every call a gRPC server built with them serves.
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
  RpcInterceptors();
  void ObserveRpc(const std::string& method, const std::string& code,
                  double seconds);

 private:
  class Callbacks;
  Metrics() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Callbacks> callbacks_;
  prometheus::Family<prometheus::Histogram>* rpc_ = nullptr;
  absl::Mutex mu_;
  int port_ = 0;
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_METRICS_H_
