#include "scheduler/execution_service.h"

#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "scheduler/rpc_boundary.h"

namespace stagefarm::scheduler {

grpc::Status ExecutionService::Execute(
    grpc::ServerContext* context, const reapi::ExecuteRequest* request,
    grpc::ServerWriter<google::longrunning::Operation>* writer) {
  return ContainRpc("Execute", [&] {
    absl::StatusOr<SchedulerService::ActionStart> start =
        scheduler_->StartAction(context, *request);
    if (!start.ok()) return ToGrpcStatus(start.status());
    if (start->cached) {
      google::longrunning::Operation op;
      op.set_name(absl::StrCat(SchedulerService::kOperationPrefix, "cached-",
                               request->action_digest().hash()));
      reapi::ExecuteOperationMetadata metadata;
      metadata.set_stage(reapi::ExecutionStage::COMPLETED);
      *metadata.mutable_action_digest() = request->action_digest();
      op.mutable_metadata()->PackFrom(metadata);
      op.set_done(true);
      op.mutable_response()->PackFrom(*start->cached);
      writer->Write(op);
      return grpc::Status::OK;
    }
    return scheduler_->FollowAction(
        context, start->build,
        [writer](const google::longrunning::Operation& op) {
          return writer->Write(op);
        });
  });
}

grpc::Status ExecutionService::WaitExecution(
    grpc::ServerContext* context, const reapi::WaitExecutionRequest* request,
    grpc::ServerWriter<google::longrunning::Operation>* writer) {
  return ContainRpc("WaitExecution", [&] {
    absl::StatusOr<std::shared_ptr<BuildState>> b =
        scheduler_->FindAction(context, request->name());
    if (!b.ok()) return ToGrpcStatus(b.status());
    return scheduler_->FollowAction(
        context, *b, [writer](const google::longrunning::Operation& op) {
          return writer->Write(op);
        });
  });
}

grpc::Status OperationsService::GetOperation(
    grpc::ServerContext* context,
    const google::longrunning::GetOperationRequest* request,
    google::longrunning::Operation* response) {
  return ContainRpc("GetOperation", [&] {
    absl::StatusOr<google::longrunning::Operation> op =
        scheduler_->GetOperation(context, request->name());
    if (!op.ok()) return ToGrpcStatus(op.status());
    *response = *std::move(op);
    return grpc::Status::OK;
  });
}

grpc::Status OperationsService::CancelOperation(
    grpc::ServerContext* context,
    const google::longrunning::CancelOperationRequest* request,
    google::protobuf::Empty*) {
  return ContainRpc("CancelOperation", [&] {
    return ToGrpcStatus(scheduler_->CancelOperation(context, request->name()));
  });
}

grpc::Status OperationsService::ListOperations(
    grpc::ServerContext*, const google::longrunning::ListOperationsRequest*,
    google::longrunning::ListOperationsResponse*) {
  return grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED,
      "ListOperations: list actions with `stagefarm builds ls`");
}

grpc::Status OperationsService::DeleteOperation(
    grpc::ServerContext*, const google::longrunning::DeleteOperationRequest*,
    google::protobuf::Empty*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "DeleteOperation: finished operations are forgotten "
                      "with the scheduler's finished builds");
}

absl::StatusOr<std::unique_ptr<RemoteExecutionEndpoint>>
RemoteExecutionEndpoint::Create(SchedulerService* scheduler,
                                const CasTarget* cas,
                                std::shared_ptr<const Tenants> tenants) {
  std::unique_ptr<RemoteExecutionEndpoint> e(new RemoteExecutionEndpoint());
  InstancePolicyOptions po;
  po.tenants = std::move(tenants);
  // Only workers write the action cache: with tenants, worker tenants;
  // without, nobody through the scheduler (workers write to the CAS).
  po.ac_writers = ActionCacheWriters::kNone;
  ASSIGN_OR_RETURN(InstancePolicy policy, InstancePolicy::Create(po));
  e->policy_ = std::make_unique<InstancePolicy>(std::move(policy));
  CasLimits limits;
  e->execution_ = std::make_unique<ExecutionService>(scheduler);
  e->operations_ = std::make_unique<OperationsService>(scheduler);
  e->capabilities_ = std::make_unique<CapabilitiesService>(
      e->policy_.get(), limits, /*execution=*/true);
  if (cas != nullptr) {
    e->store_ = RemoteBlobStore::PerInstance(*cas, &InstancePolicy::InstanceOf);
    e->action_cache_ =
        std::make_unique<ActionCache>(e->store_.get(), e->store_.get());
    e->cas_ =
        std::make_unique<CasService>(e->store_.get(), e->policy_.get(), limits);
    e->bytestream_ = std::make_unique<ByteStreamService>(
        e->store_.get(), e->policy_.get(), limits);
    e->ac_ = std::make_unique<ActionCacheService>(e->action_cache_.get(),
                                                  e->policy_.get());
  }
  return e;
}

void RemoteExecutionEndpoint::Register(grpc::ServerBuilder* builder) {
  builder->RegisterService(execution_.get());
  builder->RegisterService(operations_.get());
  builder->RegisterService(capabilities_.get());
  if (cas_) {
    builder->RegisterService(cas_.get());
    builder->RegisterService(bytestream_.get());
    builder->RegisterService(ac_.get());
  }
}

}  // namespace stagefarm::scheduler
