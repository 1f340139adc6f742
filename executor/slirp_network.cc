#include "executor/slirp_network.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace stagefarm::executor {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// Reads what is there on a non-blocking descriptor (at most 4 KiB).
std::string ReadAvailable(int fd) {
  std::string out;
  char buf[4096];
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n > 0) out.assign(buf, static_cast<size_t>(n));
  return std::string(absl::StripAsciiWhitespace(out));
}

// A new network namespace bound at `path`: made by a thread of its own
// (a network namespace belongs to a thread), which binds it and ends.
absl::Status NewNamespaceAt(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("creating ", path, ": ", ErrnoText(errno)));
  }
  close(fd);
  absl::Status result;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      result = absl::InternalError(
          absl::StrCat("unshare(CLONE_NEWNET): ", ErrnoText(errno)));
      return;
    }
    std::string self =
        absl::StrCat("/proc/self/task/", syscall(SYS_gettid), "/ns/net");
    if (mount(self.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      result = absl::InternalError(absl::StrCat(
          "binding a network namespace at ", path, ": ", ErrnoText(errno)));
    }
  }).join();
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SlirpAttachment>> SlirpAttachment::Create(
    const std::string& dir) {
  ASSIGN_OR_RETURN(std::string slirp, FindProgram("slirp4netns"));
  std::unique_ptr<SlirpAttachment> a(new SlirpAttachment(dir + "/netns"));
  RETURN_IF_ERROR(NewNamespaceAt(a->path_));
  a->mounted_ = true;
  int ready[2], exit_pipe[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  if (pipe2(exit_pipe, O_CLOEXEC) != 0) {
    close(ready[0]);
    close(ready[1]);
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  // Descriptor 3 in slirp4netns: where it says it is ready; 4: the read end
  // of a pipe whose closing (by us, or at our death) stops it.
  absl::StatusOr<Child> child = Spawn(
      slirp,
      {"--configure", "--mtu=65520", "--disable-host-loopback",
       "--netns-type=path", "--ready-fd=3", "--exit-fd=4", a->path_, "tap0"},
      {ready[1], exit_pipe[0]});
  close(ready[1]);
  close(exit_pipe[0]);
  a->exit_fd_ = exit_pipe[1];
  if (!child.ok()) {
    close(ready[0]);
    return child.status();
  }
  a->pid_ = child->pid;
  a->output_fd_ = child->output_fd;
  // "1" once tap0 is configured; end of file when it failed.
  struct pollfd p = {ready[0], POLLIN, 0};
  int n = 0;
  do {
    n = poll(&p, 1, 10'000);
  } while (n < 0 && errno == EINTR);
  char c = 0;
  bool up = n > 0 && read(ready[0], &c, 1) == 1 && c == '1';
  close(ready[0]);
  if (!up) {
    return absl::FailedPreconditionError(absl::StrCat(
        "slirp4netns did not start the step's network",
        n == 0 ? " within 10 s" : "", ": ", ReadAvailable(a->output_fd_),
        " (it needs /dev/net/tun open to the user: mode 0666)"));
  }
  return a;
}

SlirpAttachment::~SlirpAttachment() {
  if (exit_fd_ >= 0) close(exit_fd_);
  if (pid_ > 0) {
    int status = 0;
    // It exits when the pipe closes; a stuck one is killed after a second.
    for (int i = 0; i < 100; ++i) {
      if (WaitPidRetry(pid_, &status, WNOHANG) != 0) {
        pid_ = -1;
        break;
      }
      usleep(10'000);
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      WaitPidRetry(pid_, &status, 0);
    }
  }
  if (output_fd_ >= 0) close(output_fd_);
  if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  unlink(path_.c_str());
}

}  // namespace stagefarm::executor
