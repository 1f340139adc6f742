// Relays SSH agent connections between steps on workers and the clients
// whose agents they use (farm.proto: SshAgent, ServeSsh). A build's client
// holds one ServeSsh stream while its build runs; each connection a step
// makes to its agent socket on a worker is one SshAgent stream, carried
// on the client's stream under a connection number. Bytes pass as they
// come; nothing is kept. Who may use which stream is the service's to
// check before it calls these. Thread-safe.
#ifndef STAGEFARM_SCHEDULER_SSH_RELAY_H_
#define STAGEFARM_SCHEDULER_SSH_RELAY_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::scheduler {

class SshRelay {
 public:
  using Stream = grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>;

  // Serves the client's stream for `build_id`, offering agents `ssh_ids`,
  // until the client ends it (the build's connections end with it).
  // ALREADY_EXISTS when the build has a client stream already.
  grpc::Status ServeClient(grpc::ServerContext* context,
                           const std::string& build_id,
                           const std::vector<std::string>& ssh_ids,
                           Stream* stream);
  // Relays one worker connection to agent `ssh_id` of `build_id` until
  // either side closes it. FAILED_PRECONDITION when the build's client is
  // not serving that agent now.
  grpc::Status ServeWorker(grpc::ServerContext* context,
                           const std::string& build_id,
                           const std::string& ssh_id, Stream* stream);
  // Connections open now (for tests and metrics).
  int Connections();

 private:
  // Bytes from the client for one worker connection.
  struct Connection {
    absl::Mutex mu;
    std::vector<std::string> pending ABSL_GUARDED_BY(mu);
    bool closed ABSL_GUARDED_BY(mu) = false;
  };
  struct Client {
    Stream* stream;
    std::vector<std::string> ssh_ids;
    absl::Mutex write_mu;  // one Write at a time on the client's stream
    absl::Mutex mu;
    std::map<uint64_t, std::shared_ptr<Connection>> connections
        ABSL_GUARDED_BY(mu);
    bool gone ABSL_GUARDED_BY(mu) = false;
    bool Write(const v1::SshFrame& frame);
  };

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Client>> clients_ ABSL_GUARDED_BY(mu_);
  uint64_t next_connection_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_SSH_RELAY_H_
