#include "common/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

extern char** environ;

namespace stagefarm {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

std::string NotFoundMessage(const std::string& binary,
                            const std::string& package) {
  std::string name = std::filesystem::path(binary).filename().string();
  return absl::StrCat(name, " not found: install the ",
                      package.empty() ? name : package, " package");
}

// Like Spawn, with stdin from `stdin_fd` when it is not -1, and `keep_fds`
// as descriptors 3, 4, ... `detached`: output to /dev/null, no
// pipe (Child::output_fd is -1). `out_fds`, unless -1: stdout and stderr
// go there, no pipe.
absl::StatusOr<Child> SpawnWithInput(const std::string& binary,
                                     const std::vector<std::string>& args,
                                     int stdin_fd,
                                     const std::vector<int>& keep_fds = {},
                                     bool detached = false,
                                     const std::vector<std::string>& env = {},
                                     std::pair<int, int> out_fds = {-1, -1}) {
  int fds[2] = {-1, -1};
  const bool to_fds = out_fds.first >= 0 && out_fds.second >= 0;
  // O_CLOEXEC: processes spawned by other threads must not hold the write
  // end, or the reader would not see EOF.
  if (!detached && !to_fds && pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (detached) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else if (to_fds) {
    posix_spawn_file_actions_adddup2(&actions, out_fds.first, 1);
    posix_spawn_file_actions_adddup2(&actions, out_fds.second, 2);
  } else {
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  }
  for (size_t i = 0; i < keep_fds.size(); ++i) {
    posix_spawn_file_actions_adddup2(&actions, keep_fds[i],
                                     3 + static_cast<int>(i));
  }

  // Ignored signals survive exec: the child must not inherit the caller's
  // dispositions (a server often ignores SIGPIPE) or its mask.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  // Detached: a session of its own, out of reach of signals sent to the
  // caller's process group (Ctrl-C, a test runner ending the group).
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF |
                                      (detached ? POSIX_SPAWN_SETSID : 0));

  std::vector<char*> argv;
  argv.reserve(args.size() + 2);
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);

  // The caller's environment with `env` over it.
  std::vector<std::string> merged;
  std::vector<char*> envp;
  if (!env.empty()) {
    for (char** e = environ; *e != nullptr; ++e) {
      absl::string_view entry(*e);
      absl::string_view key = entry.substr(0, entry.find('='));
      bool replaced = false;
      for (const std::string& n : env) {
        replaced |= absl::StartsWith(n, absl::StrCat(key, "="));
      }
      if (!replaced) merged.emplace_back(entry);
    }
    merged.insert(merged.end(), env.begin(), env.end());
    for (std::string& e : merged) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  pid_t pid = -1;
  int err = posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(),
                        env.empty() ? environ : envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (fds[1] >= 0) close(fds[1]);
  if (err != 0) {
    if (fds[0] >= 0) close(fds[0]);
    if (err == ENOENT) {
      return absl::FailedPreconditionError(NotFoundMessage(binary, ""));
    }
    return absl::InternalError(
        absl::StrCat("starting ", binary, ": ", ErrnoText(err)));
  }
  return Child{pid, fds[0]};
}

}  // namespace

absl::StatusOr<Child> Spawn(const std::string& binary,
                            const std::vector<std::string>& args,
                            const std::vector<int>& keep_fds,
                            const std::vector<std::string>& env) {
  return SpawnWithInput(binary, args, -1, keep_fds, false, env);
}

absl::StatusOr<Child> SpawnToFds(const std::string& binary,
                                 const std::vector<std::string>& args,
                                 int stdout_fd, int stderr_fd,
                                 const std::vector<std::string>& env) {
  if (stdout_fd < 0 || stderr_fd < 0) {
    return absl::InvalidArgumentError("SpawnToFds: no output descriptors");
  }
  return SpawnWithInput(binary, args, -1, {}, false, env,
                        {stdout_fd, stderr_fd});
}

absl::Status StartDetached(const std::string& binary,
                           const std::vector<std::string>& args, int keep_fd) {
  std::vector<int> keep;
  if (keep_fd >= 0) keep.push_back(keep_fd);
  ASSIGN_OR_RETURN(Child child, SpawnWithInput(binary, args, -1, keep,
                                               /*detached=*/true));
  std::thread([pid = child.pid] {
    int status = 0;
    WaitPidRetry(pid, &status, 0);
  }).detach();
  return absl::OkStatus();
}

int ExitCodeFromWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

pid_t WaitPidRetry(pid_t pid, int* status, int flags) {
  while (true) {
    pid_t r = waitpid(pid, status, flags);
    if (r >= 0 || errno != EINTR) return r;
  }
}

absl::StatusOr<CommandResult> RunCommand(const std::string& binary,
                                         const std::vector<std::string>& args,
                                         absl::string_view input,
                                         const std::vector<std::string>& env) {
  constexpr size_t kMaxInput = 64 * 1024;  // what a pipe holds unread
  if (input.size() > kMaxInput) {
    return absl::InvalidArgumentError(
        absl::StrCat("input for ", binary, " over 64 KiB"));
  }
  int in[2] = {-1, -1};
  if (!input.empty()) {
    if (pipe2(in, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
    }
    fcntl(in[1], F_SETPIPE_SZ, static_cast<int>(kMaxInput));
    absl::string_view rest = input;
    while (!rest.empty()) {
      ssize_t n = write(in[1], rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = errno;
        close(in[0]);
        close(in[1]);
        return absl::InternalError(
            absl::StrCat("writing input for ", binary, ": ", ErrnoText(err)));
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    close(in[1]);
  }
  absl::StatusOr<Child> spawned =
      SpawnWithInput(binary, args, in[0], {}, false, env);
  if (in[0] >= 0) close(in[0]);
  RETURN_IF_ERROR(spawned.status());
  Child child = *spawned;
  CommandResult result;
  char buf[4096];
  while (true) {
    ssize_t n = read(child.output_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
  }
  close(child.output_fd);
  int status = 0;
  if (WaitPidRetry(child.pid, &status, 0) != child.pid) {
    return absl::InternalError(absl::StrCat("waitpid: ", ErrnoText(errno)));
  }
  result.exit_code = ExitCodeFromWaitStatus(status);
  return result;
}

absl::StatusOr<std::string> FindProgram(const std::string& name,
                                        const std::string& package) {
  if (name.empty()) {
    return absl::InvalidArgumentError("empty program name");
  }
  if (name.find('/') != std::string::npos) {
    if (access(name.c_str(), X_OK) == 0) return name;
    return absl::FailedPreconditionError(NotFoundMessage(name, package));
  }
  std::vector<std::string> dirs;
  if (const char* path = getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      dirs.emplace_back(dir);
    }
  }
  for (const char* dir : {"/usr/local/sbin", "/usr/sbin", "/sbin"}) {
    dirs.emplace_back(dir);
  }
  for (const std::string& dir : dirs) {
    std::string candidate = absl::StrCat(dir, "/", name);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return absl::FailedPreconditionError(NotFoundMessage(name, package));
}

}  // namespace stagefarm
