#include "common/daemon.h"

#include <chrono>
#include <csignal>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "common/tls_flags.h"

namespace stagefarm {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};

void OnSignal(int sig) {
  g_signal = sig;
  g_stop = true;
}

}  // namespace

void AddDaemonFlags(CLI::App* app, DaemonFlags* flags,
                    const std::string& tenants_help) {
  AddTlsFlags(app, &flags->tls);
  app->add_option("--log-format", flags->log_format,
                  "text or json (one object a line)")
      ->check(CLI::IsMember({"text", "json"}));
  app->add_option("--metrics-listen", flags->metrics_listen,
                  "HOST:PORT to serve Prometheus metrics on (/metrics)");
  if (!tenants_help.empty()) {
    app->add_option("--tenants", flags->tenants_file, tenants_help);
  }
}

absl::StatusOr<Daemon> StartDaemon(const std::string& program,
                                   const DaemonFlags& flags, bool server) {
  InitLog(program, flags.log_format);
  // Debian's absl is built with its Mutex deadlock detection on, which
  // records every lock's order in a global graph: a cost on each lock of a
  // busy server. Tests keep it; daemons do not (clang's thread-safety
  // analysis checks the locking rules at build time, scripts/thread-safety).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Daemon d;
  if (absl::Status t = ConfigureTls(flags.tls, server); !t.ok()) return t;
  if (!flags.tenants_file.empty()) {
    absl::StatusOr<std::shared_ptr<const Tenants>> tenants =
        Tenants::Load(flags.tenants_file);
    if (!tenants.ok()) return tenants.status();
    d.tenants = *tenants;
  }
  if (!flags.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<Metrics>> m =
        Metrics::Serve(flags.metrics_listen);
    if (!m.ok()) return m.status();
    d.metrics = std::move(*m);
  }
  return d;
}

std::atomic<bool>* StopFlag() { return &g_stop; }

void StopOnSignals() {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
}

int StopSignal() { return g_signal.load(); }

void WaitForStop() {
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

}  // namespace stagefarm
