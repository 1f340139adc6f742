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
// deny list (seccomp_profile.h). With network the step shares the host's
// network namespace and gets read-only binds of a copy of the host's
// /etc/resolv.conf and a generated /etc/hosts; without network it gets a new
// network namespace holding only `lo`.
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
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "executor/executor.h"
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
  // Limits used when ExecSpec leaves them at 0; 0 here means none.
  int64_t default_memory_bytes = 0;
  int64_t default_pids_limit = 0;
  // Containers' cgroups are made at CGROUP_PARENT/ID in each controller.
  std::string cgroup_parent = "/stagefarm";
};

// The OCI runtime spec (config.json) for `spec` in `bundle_dir`, whose last
// path component is the container ID. `spec.rootfs` is used as given (Run
// passes its realpath). The generated resolv.conf and hosts files are
// referenced at BUNDLE_DIR/resolv.conf and BUNDLE_DIR/hosts. Reads the
// process's RLIMIT_NOFILE hard limit; otherwise pure. Errors: an invalid
// spec (empty args, relative rootfs, cwd or mount destination, unknown mount
// type, an env entry without '=').
absl::StatusOr<nlohmann::json> MakeRuntimeSpec(const ExecSpec& spec,
                                               const RuncOptions& options,
                                               const std::string& bundle_dir);

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

  const RuncOptions& options() const { return options_; }
  // The resolved runtime binary.
  const std::string& runtime_path() const { return runtime_path_; }

 private:
  RuncExecutor(RuncOptions options, std::string runtime_path)
      : options_(std::move(options)), runtime_path_(std::move(runtime_path)) {}

  const RuncOptions options_;
  const std::string runtime_path_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_RUNC_EXECUTOR_H_
