// Runs build steps with an OCI runtime (runc; crun takes the same commands).
//
// For each Run() the executor makes a fresh bundle directory under
// RuncOptions::bundles_dir holding config.json (OCI runtime spec 1.0.2, see
// MakeRuntimeSpec), the generated /etc/resolv.conf and /etc/hosts, and
// runc's log, then runs `runc --root STATE run --bundle BUNDLE ID` with stdin
// from /dev/null and stdout and stderr on one pipe. The container ID is the
// bundle directory's name. Afterwards the container is deleted if it still
// exists and the bundle directory is removed, whatever happened.
//
// The sandbox is Docker's default for an unprivileged container: Docker's
// default capability set (bounding, effective and permitted; inheritable and
// ambient empty), no_new_privs, new pid, ipc, uts and mount namespaces, the
// masked and read-only /proc and /sys paths of `runc spec`, and a seccomp
// deny list (seccomp_profile.h). Network::kSandbox runs the step in a
// namespace of its own behind a bridge with NAT (sandbox_network.h, made on
// the first such step and removed with the executor), with a read-only
// resolv.conf made from the host's without loopback resolvers;
// Network::kHost shares the host's network namespace and a copy of its
// resolv.conf; both get a generated /etc/hosts. Network::kNone gets a new
// namespace holding only `lo`.
//
// runc creates missing mount points in the root filesystem (for example an
// empty /etc/resolv.conf and /etc/hosts when the image has none); whoever
// turns the root filesystem into a layer should expect them.
//
// On this kind of machine (cgroup v1 controllers plus a cgroup2 mount at
// /sys/fs/cgroup/unified) runc 1.1.5 applies memory and pids limits; crun
// 1.8.1 refuses to start containers ("cgroups in hybrid mode not
// supported").
//
// Thread-safe: several steps may run at the same time.
#ifndef STAGEFARM_EXECUTOR_RUNC_EXECUTOR_H_
#define STAGEFARM_EXECUTOR_RUNC_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "executor/executor.h"
#include "executor/sandbox_network.h"
#include "nlohmann/json.hpp"

namespace stagefarm::executor {

struct RuncOptions {
  // The runtime binary: a name looked up in PATH and then in /usr/local/sbin,
  // /usr/sbin and /sbin, or a path. "runc" or "crun".
  std::string runtime = "runc";
  // runc's --root: where the runtime keeps container state. Absolute;
  // created if missing.
  std::string state_dir = "/run/stagefarm/runc";
  // Where bundle directories are made. Absolute; created if missing.
  std::string bundles_dir = "/var/lib/stagefarm/bundles";
  // Every step runs without network, whatever ExecSpec::network says.
  bool force_no_network = false;
  // Network::kSandbox gives a step a namespace of its own (true), or the
  // host's network as Network::kHost does (false: for machines without
  // iptables; nothing then keeps a step from the host's services).
  bool private_network = true;
  SandboxNetworkOptions sandbox_network;
  // Limits used when ExecSpec leaves them at 0; 0 here means none.
  int64_t default_memory_bytes = 0;
  int64_t default_pids_limit = 0;
  // The size of each container's /dev/shm (Docker's --shm-size).
  int64_t shm_bytes = int64_t{64} << 20;
  // Containers' cgroups are made at CGROUP_PARENT/ID in each controller.
  std::string cgroup_parent = "/stagefarm";
  // The process is root of a user namespace, not of the machine
  // (executor/rootless.h): containers get no cgroups (memory and pids
  // limits are refused), a step on the host's network sees the host's
  // /sys bound read-only, and a private network comes from slirp4netns.
  bool rootless = false;
};

// The OCI runtime spec (config.json) for `spec` in `bundle_dir`, whose last
// path component is the container ID. `spec.rootfs` is used as given (Run
// passes its realpath). The generated resolv.conf and hosts files are
// referenced at BUNDLE_DIR/resolv.conf and BUNDLE_DIR/hosts; a sandboxed
// step joins the namespace at `netns_path`. Reads the
// process's RLIMIT_NOFILE hard limit; otherwise pure. Errors: an invalid
// spec (empty args, relative rootfs, cwd or mount destination, unknown mount
// type, an env entry without '=').
absl::StatusOr<nlohmann::json> MakeRuntimeSpec(
    const ExecSpec& spec, const RuncOptions& options,
    const std::string& bundle_dir, const std::string& netns_path = "");

// The network a step gets under `options` (force_no_network,
// private_network) when it asks for `spec.network`.
Network EffectiveNetwork(const ExecSpec& spec, const RuncOptions& options);

class RuncExecutor : public Executor {
 public:
  // Finds the runtime binary and creates the state and bundles directories.
  // FAILED_PRECONDITION "runc not found: install the runc package" when the
  // binary is missing; INVALID_ARGUMENT for relative directories.
  static absl::StatusOr<std::unique_ptr<RuncExecutor>> Create(
      RuncOptions options);

  // Errors: INVALID_ARGUMENT for a bad spec, or when the runtime could not
  // start the process (for example "executable file not found in $PATH");
  // INTERNAL for other runtime failures, with the runtime's own message;
  // CANCELLED when spec.cancel became true (the container is killed and
  // deleted first).
  absl::StatusOr<ExecResult> Run(const ExecSpec& spec) override;

  // Makes the sandbox network now rather than at the first sandboxed step
  // (a worker: leftovers of a killed predecessor go at start, a missing
  // iptables is an error at start). A no-op without private_network.
  absl::Status PrepareNetwork();
  // Makes the sandbox network in the background (PrepareNetwork's work,
  // with the first sandboxed step waiting for it).
  void WillRunSandboxed() override;

  const RuncOptions& options() const { return options_; }
  // The resolved runtime binary.
  const std::string& runtime_path() const { return runtime_path_; }

 private:
  RuncExecutor(RuncOptions options, std::string runtime_path)
      : options_(std::move(options)), runtime_path_(std::move(runtime_path)) {}

  // The sandbox network, made on first use.
  absl::StatusOr<SandboxNetwork*> SandboxNet();

  const RuncOptions options_;
  const std::string runtime_path_;
  std::atomic<uint64_t> counter_{0};
  absl::Mutex network_mu_;
  std::unique_ptr<SandboxNetwork> network_ ABSL_GUARDED_BY(network_mu_);
  std::future<absl::StatusOr<std::unique_ptr<SandboxNetwork>>> preparing_
      ABSL_GUARDED_BY(network_mu_);
};

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_RUNC_EXECUTOR_H_
