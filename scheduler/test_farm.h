// The scheduler over its real gRPC API in one process, for tests: a Farm
// (an in-process server and a client stub), short lease timings, and what
// tests ask of a simulated worker's report or a build's events.
#ifndef STAGEFARM_SCHEDULER_TEST_FARM_H_
#define STAGEFARM_SCHEDULER_TEST_FARM_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "scheduler/scheduler_service.h"
#include "scheduler/sim.h"

namespace stagefarm::scheduler {

class Farm {
 public:
  explicit Farm(SchedulerOptions options) {
    auto s = SchedulerService::Create(options);
    EXPECT_TRUE(s.ok()) << s.status();
    service = std::move(*s);
    grpc::ServerBuilder builder;
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    channel = server->InProcessChannel(grpc::ChannelArguments());
    stub = v1::Scheduler::NewStub(channel);
  }
  ~Farm() { Shutdown(); }
  void Shutdown() {
    if (server == nullptr) return;
    service->Stop();
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    server.reset();
  }
  // One Lease call as worker `name`.
  v1::LeaseResponse Lease(const std::string& name, int wait_ms = 2000) {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker(name);
    req.set_wait_ms(wait_ms);
    v1::LeaseResponse resp;
    EXPECT_TRUE(stub->Lease(&ctx, req, &resp).ok());
    return resp;
  }
  v1::StageReportResponse Report(const v1::StageReport& report) {
    grpc::ClientContext ctx;
    v1::StageReportResponse resp;
    EXPECT_TRUE(stub->Report(&ctx, report, &resp).ok());
    return resp;
  }
  std::unique_ptr<SchedulerService> service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Scheduler::Stub> stub;
};

inline SchedulerOptions Fast() {
  SchedulerOptions o;
  o.lease_timeout = std::chrono::milliseconds(600);
  o.heartbeat = std::chrono::milliseconds(100);
  return o;
}

inline v1::StageReport Done(const v1::StageTask& task,
                            const std::string& worker) {
  v1::StageReport r;
  r.set_lease_id(task.lease_id());
  r.set_worker(worker);
  r.set_finished(true);
  r.set_image_state("{\"stage\":" + std::to_string(task.stage_index()) + "}");
  if (task.assemble()) {
    r.mutable_manifest()->set_hash(std::string(64, 'c'));
    r.mutable_manifest()->set_size_bytes(7);
  }
  return r;
}

inline int CountKind(const sim::Outcome& o, const std::string& kind) {
  int n = 0;
  for (const auto& e : o.events) n += e.kind() == kind ? 1 : 0;
  return n;
}

inline std::string TempDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(t != nullptr ? t : "/tmp") + "/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_TEST_FARM_H_
