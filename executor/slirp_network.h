// A private network for a step of an engine running without root
// (executor/rootless.h), where a bridge, veths and iptables would need the
// machine's root: the step gets a network namespace of its own whose only
// way out is slirp4netns, a user-mode TCP/IP stack running outside it (as
// rootless podman and BuildKit do). Inside: loopback, tap0 at 10.0.2.100
// with a default route through 10.0.2.2; connections leave as ordinary
// sockets of the engine's user. --disable-host-loopback keeps the host's
// loopback services (a CAS, a scheduler, metrics) out of reach; other
// addresses of the host are reachable as they are to the user (no deny
// list: that needs iptables).
//
// Needs slirp4netns (Debian's package) and a /dev/net/tun the user may
// open (mode 0666, as udev makes it on Debian).
#ifndef STAGEFARM_EXECUTOR_SLIRP_NETWORK_H_
#define STAGEFARM_EXECUTOR_SLIRP_NETWORK_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace stagefarm::executor {

class SlirpAttachment {
 public:
  // Makes the namespace (bound at DIR/netns, DIR an existing directory of
  // the step's) and starts slirp4netns for it, returning once it is up.
  // FAILED_PRECONDITION when slirp4netns is missing or cannot start (its
  // message, /dev/net/tun's permissions among the causes).
  static absl::StatusOr<std::unique_ptr<SlirpAttachment>> Create(
      const std::string& dir);
  // Stops slirp4netns and removes the namespace.
  ~SlirpAttachment();
  SlirpAttachment(const SlirpAttachment&) = delete;
  SlirpAttachment& operator=(const SlirpAttachment&) = delete;

  // For the runtime spec's network namespace.
  const std::string& netns_path() const { return path_; }

 private:
  explicit SlirpAttachment(std::string path) : path_(std::move(path)) {}

  std::string path_;
  bool mounted_ = false;
  pid_t pid_ = -1;
  int exit_fd_ = -1;    // closing it stops slirp4netns
  int output_fd_ = -1;  // its stdout and stderr
};

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_SLIRP_NETWORK_H_
