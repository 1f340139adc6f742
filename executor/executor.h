// Runs one build step's process in a sandbox.
//
// An Executor takes a prepared root filesystem (a directory, normally an
// overlayfs mount) and runs one process in it. RuncExecutor (runc_executor.h)
// writes an OCI runtime bundle and runs it with runc. Thread-safe: several
// steps may run at the same time.
#ifndef STAGEFARM_EXECUTOR_EXECUTOR_H_
#define STAGEFARM_EXECUTOR_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::executor {

// A bind or tmpfs mount inside the sandbox.
struct ExecMount {
  std::string type = "bind";  // bind or tmpfs
  std::string source;         // host path (bind)
  std::string destination;    // absolute path inside the sandbox
  bool read_only = false;
  std::string options;  // extra mount options, e.g. "size=64m" for tmpfs
};

// A sandbox's network: none (a namespace holding only `lo`), its own
// namespace behind a bridge with NAT (sandbox_network.h), or the host's.
enum class Network { kNone, kSandbox, kHost };

struct ExecSpec {
  std::string rootfs;             // absolute host path
  std::vector<std::string> args;  // argv; args[0] looked up in PATH by runc
  std::vector<std::string> env;   // "KEY=VALUE"
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  // The process gets no capabilities at all (a REAPI action: as an
  // ordinary user it must not write inputs it does not own).
  bool no_capabilities = false;
  Network network = Network::kSandbox;
  std::string hostname = "buildkitsandbox";
  std::vector<ExecMount> mounts;
  // Resource limits; 0 means none.
  int64_t memory_bytes = 0;
  int64_t pids_limit = 0;
  // Called with chunks of the process's combined stdout and stderr as they
  // arrive (may be empty).
  std::function<void(absl::string_view)> on_output;
  // Both set: the process's stdout and stderr are written to these host
  // files (created, or truncated), each on its own, and on_output is not
  // called (a REAPI action's outputs; remoteexec/).
  std::string stdout_file, stderr_file;
  // When set and it becomes true, the container is killed (SIGKILL) and Run
  // returns CANCELLED.
  const std::atomic<bool>* cancel = nullptr;
};

struct ExecResult {
  int exit_code = 0;        // 128 + signal when killed by a signal
  std::string output_tail;  // the last ~4 KiB of combined output
  // The kernel killed a process of the step because the step went over its
  // memory limit (memory_limit_bytes; see memory_kill.h).
  bool killed_for_memory = false;
  int64_t memory_limit_bytes = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs the process to completion. A non-zero exit is a result, not an
  // error; errors are failures to start or supervise the sandbox.
  virtual absl::StatusOr<ExecResult> Run(const ExecSpec& spec) = 0;
  // A hint: steps with Network::kSandbox are coming; an executor may set
  // up for them now, in the background.
  virtual void WillRunSandboxed() {}
};

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_EXECUTOR_H_
