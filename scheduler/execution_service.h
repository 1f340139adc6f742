// The Remote Execution API at the scheduler's address: Execution (Execute,
// WaitExecution) over the scheduler's queue (SchedulerService::StartAction),
// google.longrunning.Operations (GetOperation, CancelOperation),
// and, so that one endpoint is all a client needs (`bazel build
// --remote_executor=grpc://SCHEDULER`), Capabilities with execution
// enabled and the farm's CAS, ByteStream and ActionCache forwarded to the
// scheduler's --cas (the CAS's own services over a store that sends each
// call on to the instance it names). Callers are checked as by the CAS:
// with tenants, a known tenant on its own instances; the action cache is
// written only by workers (with tenants) or by nobody through here.
// Thread-safe.
#ifndef STAGEFARM_SCHEDULER_EXECUTION_SERVICE_H_
#define STAGEFARM_SCHEDULER_EXECUTION_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "blobstore/action_cache.h"
#include "blobstore/remote_store.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "cas/grpc_services.h"
#include "cas/instance_policy.h"
#include "google/longrunning/operations.grpc.pb.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

class ExecutionService final : public reapi::Execution::Service {
 public:
  explicit ExecutionService(SchedulerService* scheduler)
      : scheduler_(scheduler) {}
  grpc::Status Execute(
      grpc::ServerContext* context, const reapi::ExecuteRequest* request,
      grpc::ServerWriter<google::longrunning::Operation>* writer) override;
  grpc::Status WaitExecution(
      grpc::ServerContext* context, const reapi::WaitExecutionRequest* request,
      grpc::ServerWriter<google::longrunning::Operation>* writer) override;

 private:
  SchedulerService* scheduler_;
};

// google.longrunning.Operations over the scheduler's actions: Get and
// Cancel; List and Delete are UNIMPLEMENTED (finished operations are
// forgotten on their own, with the scheduler's finished builds).
class OperationsService final
    : public google::longrunning::Operations::Service {
 public:
  explicit OperationsService(SchedulerService* scheduler)
      : scheduler_(scheduler) {}
  grpc::Status GetOperation(
      grpc::ServerContext* context,
      const google::longrunning::GetOperationRequest* request,
      google::longrunning::Operation* response) override;
  grpc::Status CancelOperation(
      grpc::ServerContext* context,
      const google::longrunning::CancelOperationRequest* request,
      google::protobuf::Empty* response) override;
  grpc::Status ListOperations(
      grpc::ServerContext* context,
      const google::longrunning::ListOperationsRequest* request,
      google::longrunning::ListOperationsResponse* response) override;
  grpc::Status DeleteOperation(
      grpc::ServerContext* context,
      const google::longrunning::DeleteOperationRequest* request,
      google::protobuf::Empty* response) override;

 private:
  SchedulerService* scheduler_;
};

// Every REAPI service a client needs, for one scheduler: register them all
// with the server.
class RemoteExecutionEndpoint {
 public:
  // `cas`: the farm's CAS (null: Execution only, which then refuses
  // actions, and Capabilities).
  static absl::StatusOr<std::unique_ptr<RemoteExecutionEndpoint>> Create(
      SchedulerService* scheduler, const CasTarget* cas,
      std::shared_ptr<const Tenants> tenants);
  void Register(grpc::ServerBuilder* builder);

 private:
  RemoteExecutionEndpoint() = default;
  std::unique_ptr<InstancePolicy> policy_;
  std::unique_ptr<RemoteBlobStore> store_;
  std::unique_ptr<ActionCache> action_cache_;
  std::unique_ptr<ExecutionService> execution_;
  std::unique_ptr<OperationsService> operations_;
  std::unique_ptr<CapabilitiesService> capabilities_;
  std::unique_ptr<CasService> cas_;
  std::unique_ptr<ByteStreamService> bytestream_;
  std::unique_ptr<ActionCacheService> ac_;
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_EXECUTION_SERVICE_H_
