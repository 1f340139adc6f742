// stagefarm-scheduler: the farm's scheduler service
// (scheduler/scheduler_service.h).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "attest/signing.h"
#include "common/channel.h"
#include "common/daemon.h"
#include "scheduler/execution_service.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/web_source.h"
#include "webui/web_view.h"

namespace {
// The scheduler's series; one GetStats() serves a whole scrape.
void RegisterSchedulerMetrics(stagefarm::Metrics* m,
                              stagefarm::scheduler::SchedulerService* service) {
  using Stats = stagefarm::scheduler::SchedulerService::Stats;
  struct Cache {
    absl::Mutex mu;
    std::chrono::steady_clock::time_point at;
    Stats stats;
  };
  auto cache = std::make_shared<Cache>();
  auto read = [cache, service](auto field) {
    return [cache, service, field]() -> double {
      absl::MutexLock lock(&cache->mu);
      auto now = std::chrono::steady_clock::now();
      if (now - cache->at > std::chrono::milliseconds(200)) {
        cache->stats = service->GetStats();
        cache->at = now;
      }
      return static_cast<double>(cache->stats.*field);
    };
  };
  m->Gauge("stagefarm_scheduler_queue_depth",
           "Stages ready to run, waiting for a worker", {},
           read(&Stats::queued));
  const char* stages = "Stages of running builds, by state";
  m->Gauge("stagefarm_scheduler_stages", stages, {{"state", "queued"}},
           read(&Stats::queued));
  m->Gauge("stagefarm_scheduler_stages", stages, {{"state", "waiting"}},
           read(&Stats::waiting));
  m->Gauge("stagefarm_scheduler_stages", stages, {{"state", "leased"}},
           read(&Stats::leased));
  const char* builds = "Builds the scheduler holds, by state";
  m->Gauge("stagefarm_scheduler_builds", builds, {{"state", "running"}},
           read(&Stats::running_builds));
  m->Gauge("stagefarm_scheduler_builds", builds, {{"state", "succeeded"}},
           read(&Stats::succeeded_builds));
  m->Gauge("stagefarm_scheduler_builds", builds, {{"state", "failed"}},
           read(&Stats::failed_builds));
  const char* event_bytes =
      "Bytes of build events (steps' output and progress) held in memory, "
      "by the builds' state";
  m->Gauge("stagefarm_scheduler_event_bytes", event_bytes,
           {{"builds", "running"}}, read(&Stats::running_event_bytes));
  m->Gauge("stagefarm_scheduler_event_bytes", event_bytes,
           {{"builds", "finished"}}, read(&Stats::finished_event_bytes));
  m->Gauge("stagefarm_scheduler_workers",
           "Workers that asked for work in the last minute", {},
           read(&Stats::workers));
  m->Gauge("stagefarm_scheduler_workers_busy",
           "Workers running at least one stage", {},
           read(&Stats::busy_workers));
  m->Counter("stagefarm_scheduler_builds_submitted_total",
             "Builds submitted since start", {},
             read(&Stats::builds_submitted));
  m->Counter("stagefarm_scheduler_dispatches_total",
             "Stages handed to workers since start", {},
             read(&Stats::dispatches));
  m->CounterFamily(
      "stagefarm_scheduler_platform_dispatches_total",
      "Stages handed to workers since start, by platform and by how the "
      "worker runs it (native or emulated)",
      [cache, service] {
        absl::MutexLock lock(&cache->mu);
        auto now = std::chrono::steady_clock::now();
        if (now - cache->at > std::chrono::milliseconds(200)) {
          cache->stats = service->GetStats();
          cache->at = now;
        }
        std::vector<std::pair<stagefarm::Metrics::Labels, double>> out;
        for (const auto& [key, n] : cache->stats.dispatches_by_platform) {
          out.push_back({{{"platform", key.first}, {"how", key.second}},
                         static_cast<double>(n)});
        }
        return out;
      });
  m->Counter("stagefarm_scheduler_lease_expiries_total",
             "Leases lost (worker gone or cut off) since start", {},
             read(&Stats::lease_expiries));
  m->Counter("stagefarm_scheduler_worker_deaths_total",
             "Stages lost with a worker process that died while it held "
             "them, since start",
             {}, read(&Stats::worker_deaths));
  const char* lookups = "Stage cache lookups since start, by result";
  m->Counter("stagefarm_scheduler_stage_cache_lookups_total", lookups,
             {{"result", "hit"}}, read(&Stats::stage_cache_hits));
  m->Counter("stagefarm_scheduler_stage_cache_lookups_total", lookups,
             {{"result", "miss"}}, read(&Stats::stage_cache_misses));
  const char* actions = "REAPI actions since start, by what became of them";
  m->Counter("stagefarm_scheduler_actions_total", actions,
             {{"result", "queued"}}, read(&Stats::actions_queued));
  m->Counter("stagefarm_scheduler_actions_total", actions,
             {{"result", "cache_hit"}}, read(&Stats::action_cache_hits));
  m->Counter("stagefarm_scheduler_actions_total", actions,
             {{"result", "joined"}}, read(&Stats::actions_joined));
  m->Counter("stagefarm_scheduler_disk_full_errors_total",
             "Writes to --state refused because its disk was full", {},
             read(&Stats::disk_full_errors));
}
}  // namespace

int main(int argc, char** argv) {
  using namespace stagefarm;
  CLI::App app{"stagefarm-scheduler: hands build stages to farm workers"};
  std::string listen;
  DaemonFlags daemon_flags;
  AddDaemonFlags(&app, &daemon_flags,
                 "JSON file of tenants (common/tenants.h): callers must be "
                 "known and see only their own builds and instances; only "
                 "workers lease stages");
  int lease_ms = 10000, heartbeat_ms = 1000, death_grace_ms = 1000;
  int max_worker_deaths = 2;
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0: any)")
      ->required();
  app.add_option("--lease-timeout-ms", lease_ms,
                 "a stage whose worker has not reported for this long runs "
                 "again elsewhere")
      ->check(CLI::Range(500, 3600000));
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "how often workers report while they run a stage")
      ->check(CLI::Range(50, 600000));
  app.add_option("--worker-death-grace-ms", death_grace_ms,
                 "a worker process whose connection ended while it held a "
                 "stage and that is not back within this long died: its "
                 "stages run again elsewhere at once")
      ->check(CLI::Range(0, 600000));
  app.add_option("--max-worker-deaths", max_worker_deaths,
                 "a stage that killed this many worker processes fails its "
                 "build instead of going to another worker (default 2)")
      ->check(CLI::Range(1, 100));
  std::string http_listen;
  app.add_option("--http-listen", http_listen,
                 "HOST:PORT for the web view and its JSON API (port 0: any; "
                 "HTTPS with the --tls-cert and --tls-key of the farm)");
  std::string state_dir, cas;
  app.add_option("--cas", cas,
                 "the farm's CAS HOST:PORT, as clients reach it: clients given "
                 "only --server use it");
  app.add_option("--state", state_dir,
                 "directory of the scheduler's RocksDB: builds and the queue "
                 "survive a restart (default: in memory only)");
  scheduler::SchedulerOptions options;
  app.add_option("--keep-builds", options.keep_finished,
                 "finished builds kept for builds ls, logs and the web view "
                 "(default 200)")
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  app.add_option("--build-event-bytes", options.build_event_bytes,
                 "bytes of one build's events kept in memory (and --state); "
                 "its output past them is dropped and the build says so "
                 "(default 64 MiB)")
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  app.add_option("--keep-event-bytes", options.keep_event_bytes,
                 "bytes of the finished builds' events kept: past them the "
                 "oldest are forgotten before --keep-builds says so "
                 "(default 1 GiB)")
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 44));
  app.add_option("--log-max-bytes", options.log_max_bytes,
                 "bytes of each step's output streamed live (builds may ask "
                 "for less); the whole output is kept as a blob (default 2 "
                 "MiB)")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30));
  app.add_option("--log-rate-bytes", options.log_rate_bytes,
                 "live output bytes per second per step (default 1 MiB)")
      ->check(CLI::Range(int64_t{1024}, int64_t{1} << 30));
  std::string signing_key_file;
  app.add_option("--signing-key", signing_key_file,
                 "PEM private key (ECDSA P-256 or Ed25519) that signs each "
                 "build's provenance (DSSE); `stagefarm attest verify --key` "
                 "checks it with the public half")
      ->check(CLI::ExistingFile);
  app.add_option("--builder-id", options.builder_id,
                 "the builder's id in provenance (default "
                 "stagefarm-scheduler://HOSTNAME)");
  app.add_option("--action-image", options.action_image,
                 "image (a name in the farm's index) that REAPI actions run "
                 "in when they set no container-image platform property");
  CLI11_PARSE(app, argc, argv);
  if (app.count("--builder-id") == 0) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options.builder_id = std::string("stagefarm-scheduler://") + host;
  }
  if (!signing_key_file.empty()) {
    auto key = attest::Key::PrivateFromFile(signing_key_file);
    if (!key.ok()) {
      std::cerr << "stagefarm-scheduler: --signing-key: "
                << key.status().message() << "\n";
      return 2;
    }
    options.signing_key = *std::move(key);
  }
  if (heartbeat_ms * 2 > lease_ms) {
    std::cerr << "stagefarm-scheduler: --lease-timeout-ms must be at least "
                 "twice --heartbeat-ms\n";
    return 2;
  }
  absl::StatusOr<Daemon> daemon =
      StartDaemon("stagefarm-scheduler", daemon_flags, /*server=*/true);
  if (!daemon.ok()) {
    std::cerr << "stagefarm-scheduler: " << daemon.status().message() << "\n";
    return 2;
  }
  options.lease_timeout = std::chrono::milliseconds(lease_ms);
  options.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  options.worker_death_grace = std::chrono::milliseconds(death_grace_ms);
  options.max_worker_deaths = max_worker_deaths;
  options.state_dir = state_dir;
  options.cas_address = cas;
  options.tenants = daemon->tenants;
  auto service = scheduler::SchedulerService::Create(options);
  if (!service.ok()) {
    std::cerr << "stagefarm-scheduler: " << service.status().message() << "\n";
    return 1;
  }
  if (!state_dir.empty()) {
    std::cout << "stagefarm-scheduler: state in " << state_dir << ": "
              << (*service)->BuildCount() << " builds, "
              << (*service)->RunningCount() << " running" << std::endl;
  }
  Metrics* metrics = daemon->metrics.get();
  if (metrics) RegisterSchedulerMetrics(metrics, service->get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  if (metrics) {
    builder.experimental().SetInterceptorCreators(metrics->RpcInterceptors());
  }
  int port = 0;
  builder.AddListeningPort(listen, ServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(service->get());
  // REAPI clients (Bazel) find everything at this address: Execution,
  // Capabilities, and the farm's CAS forwarded.
  std::optional<CasTarget> cas_target;
  if (!cas.empty()) cas_target = CasClient::Connect(cas);
  auto reapi_endpoint = scheduler::RemoteExecutionEndpoint::Create(
      service->get(), cas_target ? &*cas_target : nullptr, daemon->tenants);
  if (!reapi_endpoint.ok()) {
    std::cerr << "stagefarm-scheduler: " << reapi_endpoint.status().message()
              << "\n";
    return 1;
  }
  (*reapi_endpoint)->Register(&builder);
  // Keep idle request threads polling instead of ending them: every build
  // stream holds a thread, and gRPC's default (at most two idle pollers)
  // makes and ends threads at every turn under load.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 64);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "stagefarm-scheduler: cannot listen on " << listen << "\n";
    return 1;
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  std::cout << "stagefarm-scheduler listening on " << host << ":" << port
            << std::endl;
  if (metrics) {
    std::cout << "stagefarm-scheduler metrics on port " << metrics->port()
              << std::endl;
  }
  std::unique_ptr<scheduler::SchedulerWebSource> web_source;
  std::unique_ptr<webui::WebView> web;
  if (!http_listen.empty()) {
    web_source = std::make_unique<scheduler::SchedulerWebSource>(
        service->get(), cas_target ? &*cas_target : nullptr, daemon->tenants);
    webui::WebViewOptions wo;
    wo.listen = http_listen;
    if (TlsConfigured()) {
      auto file = [](const std::string& flag, const char* env) {
        const char* v = std::getenv(env);
        return !flag.empty() ? flag : v != nullptr ? std::string(v) : "";
      };
      wo.cert_file = file(daemon_flags.tls.cert, "STAGEFARM_TLS_CERT");
      wo.key_file = file(daemon_flags.tls.key, "STAGEFARM_TLS_KEY");
    }
    auto started = webui::WebView::Start(wo, web_source.get());
    if (!started.ok()) {
      std::cerr << "stagefarm-scheduler: " << started.status().message()
                << "\n";
      return 1;
    }
    web = *std::move(started);
    std::cout << "stagefarm-scheduler web view at " << web->url() << std::endl;
  }
  StopOnSignals();
  WaitForStop();
  if (web != nullptr) web->Stop();
  (*service)->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
