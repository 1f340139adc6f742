// stagefarm-worker: runs build stages for a farm scheduler
// (worker/worker.h); this is its flags, signals and threads.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fs_util.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/tls_flags.h"
#include "worker/worker.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace stagefarm::worker;
  CLI::App app{"stagefarm-worker: runs build stages for a farm scheduler"};
  WorkerFlags f;
  stagefarm::TlsFiles tls;
  stagefarm::AddTlsFlags(&app, &tls);
  std::string metrics_listen, log_format = "text";
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on (/metrics)");
  app.add_option("--log-format", log_format, "text or json (one object a line)")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--scheduler", f.scheduler, "scheduler HOST:PORT")->required();
  app.add_option("--cas", f.cas, "CAS HOST:PORT")->required();
  app.add_option("--work", f.work, "work directory (snapshots, contexts)")
      ->required();
  app.add_option("--slots", f.slots, "stages run at the same time")
      ->check(CLI::Range(1, 64));
  app.add_option("--name", f.name, "worker name (default: HOST-PID)");
  app.add_option("--runtime", f.runtime, "OCI runtime: runc or crun");
  app.add_option("--cache-bytes", f.cache_bytes,
                 "unpacked layers kept on disk (least recently used removed "
                 "first; default 20 GiB)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--min-free-bytes", f.min_free_bytes,
                 "take no stages while the work directory's volume has less "
                 "free (default 512 MiB)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  CLI11_PARSE(app, argc, argv);
  stagefarm::InitLog("stagefarm-worker", log_format);
  if (absl::Status t = stagefarm::ConfigureTls(tls, /*server=*/false);
      !t.ok()) {
    std::cerr << "stagefarm-worker: " << t.message() << "\n";
    return 2;
  }
  if (f.name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    f.name = absl::StrCat(host, "-", getpid());
  }
  char* real = realpath(f.work.c_str(), nullptr);
  if (real == nullptr) {
    if (!stagefarm::MakeDirs(f.work, 0700).ok() ||
        (real = realpath(f.work.c_str(), nullptr)) == nullptr) {
      std::cerr << "stagefarm-worker: cannot use " << f.work << "\n";
      return 1;
    }
  }
  f.work = real;
  free(real);
  std::unique_ptr<WorkerDaemon> worker = WorkerDaemon::Create(f, &g_stop);
  absl::Status s = worker->Init();
  if (s.ok()) s = worker->OpenExistingInstances();
  if (!s.ok()) {
    std::cerr << "stagefarm-worker: " << s.message() << "\n";
    return 1;
  }
  std::unique_ptr<stagefarm::Metrics> metrics;
  if (!metrics_listen.empty()) {
    auto m = stagefarm::Metrics::Serve(metrics_listen);
    if (!m.ok()) {
      std::cerr << "stagefarm-worker: " << m.status().message() << "\n";
      return 2;
    }
    metrics = std::move(*m);
    worker->RegisterMetrics(metrics.get());
    std::cout << "stagefarm-worker " << f.name << " metrics on port "
              << metrics->port() << std::endl;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::cout << "stagefarm-worker " << f.name << " serving " << f.scheduler
            << " with " << f.slots << " slots" << std::endl;
  std::vector<std::thread> slots;
  for (int i = 0; i < f.slots; ++i) slots.emplace_back([&] { worker->Slot(); });
  worker->SayWhenConnected();
  for (auto& t : slots) t.join();
  return 0;
}
