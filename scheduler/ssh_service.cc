// SSH agent forwarding on a farm (farm.proto: SshAgent, ServeSsh): who may
// open which side; the bytes are SshRelay's.
#include "common/grpc_status.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

grpc::Status SchedulerService::ServeSshBody(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream) {
  absl::StatusOr<const Tenant*> caller = Caller(context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  v1::SshFrame first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    auto it = builds_.find(first.build_id());
    if (it == builds_.end() || !Sees(*caller, *it->second)) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "no build " + first.build_id());
    }
    if (it->second->finished) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "build " + first.build_id() + " has finished");
    }
    ids.assign(it->second->spec.ssh_ids().begin(),
               it->second->spec.ssh_ids().end());
  }
  if (ids.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "build " + first.build_id() +
                            " was submitted without SSH agents (ssh_ids)");
  }
  return ssh_relay_.ServeClient(context, first.build_id(), ids, stream);
}

grpc::Status SchedulerService::SshAgentBody(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream) {
  if (absl::Status s = CheckWorkerCaller(context, "reach SSH agents");
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  v1::SshFrame first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  {
    absl::MutexLock lock(&mu_);
    auto it = leases_.find(first.lease_id());
    // Only a worker running a stage of the build reaches its client.
    if (it == leases_.end() || it->second.build != first.build_id()) {
      return grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          "lease_id: no lease on a stage of build " + first.build_id());
    }
  }
  return ssh_relay_.ServeWorker(context, first.build_id(), first.ssh_id(),
                                stream);
}

}  // namespace stagefarm::scheduler
