// Starting helper programs (the OCI runtime, iproute2, iptables, git): a child
// with stdin from /dev/null or a given text, stdout and stderr on one pipe,
// default signal dispositions and an empty signal mask whatever the caller
// has. Thread-safe.
#ifndef STAGEFARM_COMMON_SUBPROCESS_H_
#define STAGEFARM_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm {

// A running child whose combined output is on `output_fd` (the caller
// reads and closes it, and waits for `pid`).
struct Child {
  pid_t pid = -1;
  int output_fd = -1;
};

// Starts `binary` (a path) with `args` (argv[1..]); its stdin is /dev/null,
// and `keep_fds` are open in it as descriptors 3, 4, ... (pipes it talks
// on); `env` ("KEY=VALUE") is added to the caller's environment (replacing
// the same keys). FAILED_PRECONDITION "NAME not found: install the NAME
// package" when the binary does not exist.
absl::StatusOr<Child> Spawn(const std::string& binary,
                            const std::vector<std::string>& args,
                            const std::vector<int>& keep_fds = {},
                            const std::vector<std::string>& env = {});

// Like Spawn, with the child's stdout on `stdout_fd` and its stderr on
// `stderr_fd` (open descriptors, e.g. files the caller reads afterwards);
// no pipe: Child::output_fd is -1.
absl::StatusOr<Child> SpawnToFds(const std::string& binary,
                                 const std::vector<std::string>& args,
                                 int stdout_fd, int stderr_fd,
                                 const std::vector<std::string>& env = {});

struct CommandResult {
  int exit_code = 0;  // 128 + signal when killed by one
  std::string output;
};

// Runs `binary` to completion, feeding it `input` on stdin (at most 64 KiB;
// /dev/null when empty), with `env` ("KEY=VALUE") added to the caller's
// environment (replacing the same keys). A non-zero exit is a result, not
// an error.
absl::StatusOr<CommandResult> RunCommand(
    const std::string& binary, const std::vector<std::string>& args,
    absl::string_view input = "", const std::vector<std::string>& env = {});

// Starts `binary` with `args`, its stdin, stdout and stderr on /dev/null,
// and does not wait for it: it may outlive the caller (a thread reaps it
// meanwhile). `keep_fd`, unless -1, is open in it as descriptor 3 (a lock
// it goes on holding).
absl::Status StartDetached(const std::string& binary,
                           const std::vector<std::string>& args,
                           int keep_fd = -1);

// The exit code a wait status stands for (128 + signal when signalled).
int ExitCodeFromWaitStatus(int status);

// waitpid, retried on EINTR.
pid_t WaitPidRetry(pid_t pid, int* status, int flags);

// A program by name: looked up in PATH and then in /usr/local/sbin,
// /usr/sbin and /sbin (often missing from a service's PATH), or a path
// taken as it is. FAILED_PRECONDITION "NAME not found: install the
// PACKAGE package" (PACKAGE defaults to NAME).
absl::StatusOr<std::string> FindProgram(const std::string& name,
                                        const std::string& package = "");

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_SUBPROCESS_H_
