// SchedulerService's RPCs: each handler's body (in scheduler_service.cc,
// build_views.cc, cache_locks.cc, ssh_service.cc, worker_presence.cc) runs
// inside ContainRpc.
#include "scheduler/rpc_boundary.h"

#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

grpc::Status SchedulerService::Build(
    grpc::ServerContext* context, const v1::SubmitBuildRequest* request,
    grpc::ServerWriter<v1::BuildUpdate>* writer) {
  return ContainRpc("Build",
                    [&] { return BuildBody(context, request, writer); });
}

grpc::Status SchedulerService::Lease(grpc::ServerContext* context,
                                     const v1::LeaseRequest* request,
                                     v1::LeaseResponse* response) {
  return ContainRpc("Lease",
                    [&] { return LeaseBody(context, request, response); });
}

grpc::Status SchedulerService::Report(grpc::ServerContext* context,
                                      const v1::StageReport* request,
                                      v1::StageReportResponse* response) {
  return ContainRpc("Report",
                    [&] { return ReportBody(context, request, response); });
}

grpc::Status SchedulerService::Attend(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AttendResponse, v1::WorkerPresence>* stream) {
  return ContainRpc("Attend", [&] { return AttendBody(context, stream); });
}

grpc::Status SchedulerService::LockCache(grpc::ServerContext* context,
                                         const v1::LockCacheRequest* request,
                                         v1::LockCacheResponse* response) {
  return ContainRpc("LockCache",
                    [&] { return LockCacheBody(context, request, response); });
}

grpc::Status SchedulerService::SshAgent(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream) {
  return ContainRpc("SshAgent", [&] { return SshAgentBody(context, stream); });
}

grpc::Status SchedulerService::ServeSsh(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream) {
  return ContainRpc("ServeSsh", [&] { return ServeSshBody(context, stream); });
}

grpc::Status SchedulerService::ListBuilds(grpc::ServerContext* context,
                                          const v1::ListBuildsRequest* request,
                                          v1::ListBuildsResponse* response) {
  return ContainRpc("ListBuilds",
                    [&] { return ListBuildsBody(context, request, response); });
}

grpc::Status SchedulerService::WatchBuild(
    grpc::ServerContext* context, const v1::WatchBuildRequest* request,
    grpc::ServerWriter<v1::BuildUpdate>* writer) {
  return ContainRpc("WatchBuild",
                    [&] { return WatchBuildBody(context, request, writer); });
}

grpc::Status SchedulerService::CancelBuild(
    grpc::ServerContext* context, const v1::CancelBuildRequest* request,
    v1::CancelBuildResponse* response) {
  return ContainRpc("CancelBuild", [&] {
    return CancelBuildBody(context, request, response);
  });
}

grpc::Status SchedulerService::GetBuild(grpc::ServerContext* context,
                                        const v1::GetBuildRequest* request,
                                        v1::BuildRecord* response) {
  return ContainRpc("GetBuild",
                    [&] { return GetBuildBody(context, request, response); });
}

grpc::Status SchedulerService::GetFarm(grpc::ServerContext* context,
                                       const v1::GetFarmRequest* request,
                                       v1::FarmInfo* response) {
  return ContainRpc("GetFarm",
                    [&] { return GetFarmBody(context, request, response); });
}

grpc::Status SchedulerService::ListImages(grpc::ServerContext* context,
                                          const v1::ListImagesRequest* request,
                                          v1::ListImagesResponse* response) {
  return ContainRpc("ListImages",
                    [&] { return ListImagesBody(context, request, response); });
}

grpc::Status SchedulerService::SetImage(grpc::ServerContext* context,
                                        const v1::SetImageRequest* request,
                                        v1::SetImageResponse* response) {
  return ContainRpc("SetImage",
                    [&] { return SetImageBody(context, request, response); });
}

grpc::Status SchedulerService::RemoveImage(
    grpc::ServerContext* context, const v1::RemoveImageRequest* request,
    v1::RemoveImageResponse* response) {
  return ContainRpc("RemoveImage", [&] {
    return RemoveImageBody(context, request, response);
  });
}

}  // namespace stagefarm::scheduler
