// SSH agents of a build's client for a stage on this worker: for each
// agent id the build offers, a socket in a private directory that a step
// mounts (RUN --mount=type=ssh) like a local agent's. Each connection to
// it becomes one SshAgent stream to the scheduler, which relays it to the
// client's agent (scheduler/ssh_relay.h); the keys stay with the client.
// Thread-safe; stops every connection when destroyed.
#ifndef STAGEFARM_WORKER_SSH_PROXY_H_
#define STAGEFARM_WORKER_SSH_PROXY_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::worker {

class SshProxy {
 public:
  // Listens at DIR/ID.sock for each id (DIR is made, mode 0700, and
  // removed at the end). `scheduler` outlives this.
  static absl::StatusOr<std::unique_ptr<SshProxy>> Start(
      v1::Scheduler::Stub* scheduler, const std::string& dir,
      const std::string& build_id, const std::string& lease_id,
      const std::vector<std::string>& ssh_ids);
  ~SshProxy();

  // Agent id -> socket path, for the engine's request.
  const std::map<std::string, std::string>& sockets() const { return sockets_; }

 private:
  SshProxy(v1::Scheduler::Stub* scheduler, std::string dir,
           std::string build_id, std::string lease_id)
      : scheduler_(scheduler),
        dir_(std::move(dir)),
        build_id_(std::move(build_id)),
        lease_id_(std::move(lease_id)) {}
  void Accept(int listener, std::string ssh_id);
  void Relay(int fd, std::string ssh_id);

  v1::Scheduler::Stub* scheduler_;
  const std::string dir_, build_id_, lease_id_;
  std::map<std::string, std::string> sockets_;
  std::vector<int> listeners_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<grpc::ClientContext>> contexts_
      ABSL_GUARDED_BY(mu_);
  std::vector<int> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stagefarm::worker

#endif  // STAGEFARM_WORKER_SSH_PROXY_H_
