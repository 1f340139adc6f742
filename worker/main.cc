// stagefarm-worker: runs build stages for a farm scheduler
// (worker/worker.h); this is its flags, signals and threads.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_size_flag.h"
#include "common/daemon.h"
#include "common/fs_util.h"
#include "executor/rootless.h"
#include "platform/emulation.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  using namespace stagefarm::worker;
  namespace executor = stagefarm::executor;
  CLI::App app{"stagefarm-worker: runs build stages for a farm scheduler"};
  WorkerFlags f;
  stagefarm::DaemonFlags daemon_flags;
  stagefarm::AddDaemonFlags(&app, &daemon_flags, /*tenants_help=*/"");
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
                 "first; default 20 GiB; bytes or a size such as 500m, 20g)")
      ->transform(stagefarm::ByteSize())
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--action-cache-bytes", f.action_cache_bytes,
                 "input files of REAPI actions kept per CAS instance, "
                 "hard-linked into actions (least recently used removed "
                 "first; default 10 GiB)")
      ->transform(stagefarm::ByteSize())
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--cache-mount-bytes", f.cache_mount_bytes,
                 "what a CAS instance's shared cache mounts may hold "
                 "together (least recently published pruned first; 0: no "
                 "bound; default 10 GiB)")
      ->transform(stagefarm::ByteSize())
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--min-free-bytes", f.min_free_bytes,
                 "take no stages while the work directory's volume has less "
                 "free (default 512 MiB)")
      ->transform(stagefarm::ByteSize())
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  std::string platforms;
  app.add_option("--platforms", platforms,
                 "OS/ARCH[/VARIANT],... this worker builds for (default: "
                 "its own and every platform an emulator serves; see "
                 "`stagefarm emulation status`)");
  app.add_option("--step-network", f.step_network,
                 "RUN steps' network: private (a namespace each with NAT, "
                 "default) or host (the worker's own: nothing keeps steps "
                 "from the worker's services)")
      ->check(CLI::IsMember({"private", "host"}));
  app.add_option("--sandbox-pool", f.sandbox_pool,
                 "IPv4 pool for RUN steps' networks, a /24 a process "
                 "(default 10.213.0.0/16)");
  app.add_option("--sandbox-deny", f.sandbox_deny,
                 "an address or CIDR no RUN step may reach (repeatable; the "
                 "scheduler's and the CAS's always)")
      ->allow_extra_args(false);
  std::vector<std::string> entitlements;
  app.add_option("--allow-insecure-entitlement", entitlements,
                 "let builds given it use an entitlement: network.host "
                 "(repeatable)")
      ->check(CLI::IsMember({"network.host"}))
      ->allow_extra_args(false);
  bool rootless = false;
  app.add_flag("--rootless", rootless,
               "run as an ordinary user: in a user namespace mapped to the "
               "user's subordinate ids, steps in rootless runc, their "
               "network through slirp4netns (no cgroups: no memory or pids "
               "limits; no --sandbox-deny)");
  // Test only, hidden from --help: tests/e2e/farm_poison_test.sh makes a
  // worker die on a marked step to check that the farm contains it.
  app.add_option("--test-crash-on-step-containing", f.test_crash_marker,
                 "test only: abort the process when a step whose "
                 "instruction contains this starts")
      ->group("");
  CLI11_PARSE(app, argc, argv);
  if (rootless && geteuid() == 0 && !stagefarm::InUserNamespace()) {
    std::cerr << "stagefarm-worker: --rootless is for an ordinary user; "
                 "start it as one (root runs without it)\n";
    return 2;
  }
  if (!rootless && geteuid() != 0) {
    std::cerr << "stagefarm-worker: runs as root, or as an ordinary user "
                 "with --rootless\n";
    return 2;
  }
  if (rootless && !f.sandbox_deny.empty()) {
    std::cerr << "stagefarm-worker: --sandbox-deny needs iptables, which a "
                 "rootless worker cannot set\n";
    return 2;
  }
  if (absl::Status s = executor::EnterUserNamespace(argv); !s.ok()) {
    std::cerr << "stagefarm-worker: " << s.message() << "\n";
    return 2;
  }
  f.rootless = stagefarm::InUserNamespace();
  f.permit_host_network = !entitlements.empty();
  absl::StatusOr<stagefarm::platform::Offered> offered =
      stagefarm::platform::Offer(platforms);
  if (!offered.ok()) {
    std::cerr << "stagefarm-worker: --platforms: " << offered.status().message()
              << "\n";
    return 2;
  }
  for (const auto& p : offered->native)
    f.native_platforms.push_back(p.String());
  for (const auto& p : offered->emulated) {
    f.emulated_platforms.push_back(p.String());
  }
  absl::StatusOr<stagefarm::Daemon> daemon =
      stagefarm::StartDaemon("stagefarm-worker", daemon_flags,
                             /*server=*/false);
  if (!daemon.ok()) {
    std::cerr << "stagefarm-worker: " << daemon.status().message() << "\n";
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
  std::unique_ptr<WorkerDaemon> worker =
      WorkerDaemon::Create(f, stagefarm::StopFlag());
  absl::Status s = worker->Init();
  if (s.ok()) s = worker->OpenExistingInstances();
  if (!s.ok()) {
    std::cerr << "stagefarm-worker: " << s.message() << "\n";
    return 1;
  }
  if (stagefarm::Metrics* metrics = daemon->metrics.get()) {
    worker->RegisterMetrics(metrics);
    std::cout << "stagefarm-worker " << f.name << " metrics on port "
              << metrics->port() << std::endl;
  }
  stagefarm::StopOnSignals();
  std::cout << "stagefarm-worker " << f.name << " serving " << f.scheduler
            << " with " << f.slots << " slots; platforms "
            << absl::StrJoin(f.native_platforms, ",")
            << (f.emulated_platforms.empty()
                    ? ""
                    : absl::StrCat(" (emulated: ",
                                   absl::StrJoin(f.emulated_platforms, ","),
                                   ")"))
            << std::endl;
  // The scheduler watches this process through its Attend stream, held
  // until every slot has reported its last stage.
  std::thread attend([&] { worker->Attend(); });
  std::vector<std::thread> slots;
  for (int i = 0; i < f.slots; ++i) slots.emplace_back([&] { worker->Slot(); });
  worker->SayWhenConnected();
  for (auto& t : slots) t.join();
  worker->StopAttending();
  attend.join();
  return 0;
}
