#include "common/metrics.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace stagefarm {

// Families of series whose values come from callbacks at scrape time.
class Metrics::Callbacks : public prometheus::Collectable {
 public:
  void Add(const std::string& name, const std::string& help,
           prometheus::MetricType type, const Labels& labels,
           std::function<double()> read) {
    absl::MutexLock lock(&mu_);
    Family& f = families_[name];
    f.help = help;
    f.type = type;
    f.series.push_back({labels, std::move(read)});
  }
  void AddDynamic(
      const std::string& name, const std::string& help,
      prometheus::MetricType type,
      std::function<std::vector<std::pair<Labels, double>>()> read) {
    absl::MutexLock lock(&mu_);
    Family& f = families_[name];
    f.help = help;
    f.type = type;
    f.dynamic.push_back(std::move(read));
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    absl::MutexLock lock(&mu_);
    std::vector<prometheus::MetricFamily> out;
    for (const auto& [name, f] : families_) {
      prometheus::MetricFamily mf;
      mf.name = name;
      mf.help = f.help;
      mf.type = f.type;
      std::vector<std::pair<Labels, double>> values;
      for (const auto& [labels, read] : f.series) {
        values.emplace_back(labels, read());
      }
      for (const auto& read : f.dynamic) {
        for (auto& v : read()) values.push_back(std::move(v));
      }
      for (const auto& [labels, value] : values) {
        prometheus::ClientMetric m;
        for (const auto& [k, v] : labels) m.label.push_back({k, v});
        if (f.type == prometheus::MetricType::Counter) {
          m.counter.value = value;
        } else {
          m.gauge.value = value;
        }
        mf.metric.push_back(std::move(m));
      }
      out.push_back(std::move(mf));
    }
    return out;
  }

 private:
  struct Family {
    std::string help;
    prometheus::MetricType type;
    std::vector<std::pair<Labels, std::function<double()>>> series;
    // Series whose label sets are known only when read.
    std::vector<std::function<std::vector<std::pair<Labels, double>>()>>
        dynamic;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_;
};

namespace {

class RpcTimer : public grpc::experimental::Interceptor {
 public:
  RpcTimer(Metrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status s = methods->GetSendStatus();
      double secs = std::chrono::duration<double>(
                        std::chrono::steady_clock::now() - start_)
                        .count();
      metrics_->ObserveRpc(method_, absl::StrCat(s.error_code()), secs);
    }
    methods->Proceed();
  }

 private:
  Metrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
};

class RpcTimerFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcTimerFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcTimer(metrics_, info->method());
  }

 private:
  Metrics* metrics_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Serve(
    const std::string& listen) {
  std::unique_ptr<Metrics> m(new Metrics());
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-listen ", listen, ": cannot serve metrics: ", e.what()));
  }
  std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports[0];
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->callbacks_ = std::make_shared<Callbacks>();
  m->rpc_ = &prometheus::BuildHistogram()
                 .Name("stagefarm_rpc_duration_seconds")
                 .Help("Time to serve gRPC calls, by method and status code")
                 .Register(*m->registry_);
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->callbacks_);
  return m;
}

Metrics::~Metrics() = default;

void Metrics::Gauge(const std::string& name, const std::string& help,
                    const Labels& labels, std::function<double()> read) {
  callbacks_->Add(name, help, prometheus::MetricType::Gauge, labels,
                  std::move(read));
}

void Metrics::Counter(const std::string& name, const std::string& help,
                      const Labels& labels, std::function<double()> read) {
  callbacks_->Add(name, help, prometheus::MetricType::Counter, labels,
                  std::move(read));
}

void Metrics::CounterFamily(
    const std::string& name, const std::string& help,
    std::function<std::vector<std::pair<Labels, double>>()> read) {
  callbacks_->AddDynamic(name, help, prometheus::MetricType::Counter,
                         std::move(read));
}

std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
Metrics::RpcInterceptors() {
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      v;
  v.push_back(std::make_unique<RpcTimerFactory>(this));
  return v;
}

void Metrics::ObserveRpc(const std::string& method, const std::string& code,
                         double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,   1,      2.5,   5,    10,    30};
  absl::MutexLock lock(&mu_);
  rpc_->Add({{"method", method}, {"code", code}}, kBuckets).Observe(seconds);
}

}  // namespace stagefarm
