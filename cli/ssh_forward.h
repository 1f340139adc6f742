// The client's side of SSH agent forwarding on a farm: while a build runs,
// serves the agents given with `--ssh` to the build's steps on workers
// through the scheduler (farm.proto ServeSsh; scheduler/ssh_relay.h). Each
// connection a step opens reaches the agent's socket here; the keys never
// leave this machine. Thread-safe; stops when destroyed.
#ifndef STAGEFARM_CLI_SSH_FORWARD_H_
#define STAGEFARM_CLI_SSH_FORWARD_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::cli {

class SshAgentServer {
 public:
  // Serves agent id -> socket path `agents` for build `build_id` through
  // `scheduler` (which outlives this), reconnecting while the scheduler
  // is away.
  SshAgentServer(v1::Scheduler::Stub* scheduler, std::string build_id,
                 std::map<std::string, std::string> agents);
  ~SshAgentServer();
  SshAgentServer(const SshAgentServer&) = delete;
  SshAgentServer& operator=(const SshAgentServer&) = delete;

 private:
  using Stream = grpc::ClientReaderWriter<v1::SshFrame, v1::SshFrame>;
  void Run();
  // One stream until it ends.
  void Serve(grpc::ClientContext* context);
  void Open(Stream* stream, uint64_t connection, const std::string& ssh_id);
  bool Write(Stream* stream, const v1::SshFrame& frame);

  v1::Scheduler::Stub* scheduler_;
  const std::string build_id_;
  const std::map<std::string, std::string> agents_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<uint64_t, int> connections_ ABSL_GUARDED_BY(mu_);  // to agents
  std::vector<std::thread> readers_ ABSL_GUARDED_BY(mu_);
  // Every socket opened on the current stream, closed when it ends (a
  // connection's socket is only shut down before that, so its number is
  // not reused while a frame for it may still come).
  std::vector<int> opened_ ABSL_GUARDED_BY(mu_);
  absl::Mutex write_mu_;  // one Write at a time on the stream
  std::thread thread_;
};

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_SSH_FORWARD_H_
