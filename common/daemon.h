// What the three farm daemons (stagefarm-cas, stagefarm-scheduler,
// stagefarm-worker) take and do the same way: the --tls-* flags,
// --log-format, --metrics-listen and (on servers) --tenants; starting the
// log, TLS, tenants and the metrics exposer; and stopping on SIGINT or
// SIGTERM.
#ifndef STAGEFARM_COMMON_DAEMON_H_
#define STAGEFARM_COMMON_DAEMON_H_

#include <atomic>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "common/tenants.h"
#include "common/tls.h"

namespace stagefarm {

struct DaemonFlags {
  TlsFiles tls;
  std::string log_format = "text";
  std::string metrics_listen;
  std::string tenants_file;
};

// Adds the flags to `app`. `tenants_help` says what --tenants means for
// this daemon; empty: the daemon takes no --tenants (workers).
void AddDaemonFlags(CLI::App* app, DaemonFlags* flags,
                    const std::string& tenants_help);

struct Daemon {
  std::shared_ptr<const Tenants> tenants;  // null without --tenants
  std::unique_ptr<Metrics> metrics;        // null without --metrics-listen
};

// Starts the log as `program` in the chosen format, sets up TLS as a
// server's or a client's, loads the tenants file and serves metrics. An
// error says which flag was wrong; the daemon exits with status 2.
absl::StatusOr<Daemon> StartDaemon(const std::string& program,
                                   const DaemonFlags& flags, bool server);

// The daemon's stop flag, for its loops to watch.
std::atomic<bool>* StopFlag();

// From now on SIGINT and SIGTERM set the stop flag (and do nothing else),
// so the daemon ends cleanly.
void StopOnSignals();

// The signal that stopped the daemon (0 before one came).
int StopSignal();

// Blocks until the stop flag is set.
void WaitForStop();

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_DAEMON_H_
