// stagefarm-scheduler: the farm's scheduler service (farm/scheduler_service.h).
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "common/tls_flags.h"
#include "farm/scheduler_service.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace stagefarm;
  CLI::App app{"stagefarm-scheduler: hands build stages to farm workers"};
  std::string listen;
  TlsFiles tls;
  AddTlsFlags(&app, &tls);
  int lease_ms = 10000, heartbeat_ms = 1000;
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0: any)")
      ->required();
  app.add_option("--lease-timeout-ms", lease_ms,
                 "a stage whose worker has not reported for this long runs "
                 "again elsewhere")
      ->check(CLI::Range(500, 3600000));
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "how often workers report while they run a stage")
      ->check(CLI::Range(50, 600000));
  std::string state_dir, cas;
  app.add_option("--cas", cas,
                 "the farm's CAS HOST:PORT, as clients reach it: clients given "
                 "only --server use it");
  app.add_option("--state", state_dir,
                 "directory of the scheduler's RocksDB: builds and the queue "
                 "survive a restart (default: in memory only)");
  CLI11_PARSE(app, argc, argv);
  if (heartbeat_ms * 2 > lease_ms) {
    std::cerr << "stagefarm-scheduler: --lease-timeout-ms must be at least "
                 "twice --heartbeat-ms\n";
    return 2;
  }
  if (absl::Status t = ConfigureTls(tls, /*server=*/true); !t.ok()) {
    std::cerr << "stagefarm-scheduler: " << t.message() << "\n";
    return 2;
  }
  farm::SchedulerOptions options;
  options.lease_timeout = std::chrono::milliseconds(lease_ms);
  options.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  options.state_dir = state_dir;
  options.cas_address = cas;
  auto service = farm::SchedulerService::Create(options);
  if (!service.ok()) {
    std::cerr << "stagefarm-scheduler: " << service.status().message() << "\n";
    return 1;
  }
  if (!state_dir.empty()) {
    std::cout << "stagefarm-scheduler: state in " << state_dir << ": "
              << (*service)->BuildCount() << " builds, "
              << (*service)->RunningCount() << " running" << std::endl;
  }
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, ServerCredentials(), &port);
  builder.RegisterService(service->get());
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
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*service)->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
