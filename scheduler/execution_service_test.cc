// The Remote Execution API at the scheduler, over its real gRPC services (an
// in-process server) and the real stagefarm-cas: Capabilities, refusals,
// an action queued, leased by a worker (played by the test over the
// Scheduler API) and answered; the action cache; identical actions sharing
// one run; WaitExecution, also after a restart from --state; the CAS
// forwarded.
#include "scheduler/execution_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <future>

#include "common/grpc_status.h"
#include "google/bytestream/bytestream.grpc.pb.h"
#include "tests/cas_process.h"
#include "tests/status_code.h"

namespace stagefarm::scheduler {
namespace {

using google::longrunning::Operation;

class ExecutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("execution");
    auto cas = CasProcess::Start(CasBinaryPath(), dir_ + "/cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_.emplace(std::move(*cas));
    direct_ =
        std::make_unique<CasClient>(CasClient::Connect(cas_->address()), "");
    Start();
  }
  void TearDown() override {
    Stop();
    direct_.reset();
    cas_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Start(std::shared_ptr<const Tenants> tenants = nullptr) {
    SchedulerOptions o;
    o.tenants = tenants;
    o.lease_timeout = std::chrono::milliseconds(2000);
    o.heartbeat = std::chrono::milliseconds(100);
    o.cas_address = cas_->address();
    o.state_dir = dir_ + "/state";
    auto s = SchedulerService::Create(o);
    ASSERT_TRUE(s.ok()) << s.status();
    service_ = std::move(*s);
    target_ = CasClient::Connect(cas_->address());
    auto e = RemoteExecutionEndpoint::Create(service_.get(), &target_, tenants);
    ASSERT_TRUE(e.ok()) << e.status();
    endpoint_ = std::move(*e);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    endpoint_->Register(&builder);
    server_ = builder.BuildAndStart();
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    scheduler_ = v1::Scheduler::NewStub(channel_);
    execution_ = reapi::Execution::NewStub(channel_);
  }
  void Stop() {
    if (server_ == nullptr) return;
    service_->Stop();
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
    server_.reset();
    endpoint_.reset();
    service_.reset();
  }
  // An action in the CAS: its digest.
  Digest PutAction(
      const std::string& program,
      const std::vector<std::pair<std::string, std::string>>& properties = {},
      bool do_not_cache = false, CasClient* cas = nullptr) {
    if (cas == nullptr) cas = direct_.get();
    reapi::Command command;
    command.add_arguments(program);
    command.add_arguments("-c");
    command.add_arguments("true");
    for (const auto& [name, value] : properties) {
      auto* p = command.mutable_platform()->add_properties();
      p->set_name(name);
      p->set_value(value);
    }
    std::string cbytes = command.SerializeAsString();
    EXPECT_TRUE(cas->WriteString(cbytes).ok());
    reapi::Directory empty;
    std::string ebytes = empty.SerializeAsString();
    EXPECT_TRUE(cas->WriteString(ebytes).ok());
    reapi::Action action;
    Digest::Of(cbytes).ToProto(action.mutable_command_digest());
    Digest::Of(ebytes).ToProto(action.mutable_input_root_digest());
    action.set_do_not_cache(do_not_cache);
    std::string abytes = action.SerializeAsString();
    EXPECT_TRUE(cas->WriteString(abytes).ok());
    return Digest::Of(abytes);
  }
  void TagImage(const std::string& name) {
    grpc::ClientContext ctx;
    v1::SetImageRequest req;
    req.mutable_image()->set_name(name);
    Digest::Of("a manifest").ToProto(req.mutable_image()->mutable_manifest());
    v1::SetImageResponse resp;
    ASSERT_TRUE(scheduler_->SetImage(&ctx, req, &resp).ok());
  }
  // Execute to the end: every Operation written, and the status.
  struct Run {
    grpc::Status status;
    std::vector<Operation> ops;
    reapi::ExecuteResponse response;
  };
  Run Execute(const Digest& action, bool skip_cache = false) {
    reapi::ExecuteRequest req;
    action.ToProto(req.mutable_action_digest());
    req.set_skip_cache_lookup(skip_cache);
    grpc::ClientContext ctx;
    auto reader = execution_->Execute(&ctx, req);
    return Read(reader.get());
  }
  Run Wait(const std::string& name) {
    reapi::WaitExecutionRequest req;
    req.set_name(name);
    grpc::ClientContext ctx;
    auto reader = execution_->WaitExecution(&ctx, req);
    return Read(reader.get());
  }
  static Run Read(grpc::ClientReader<Operation>* reader) {
    Run r;
    Operation op;
    while (reader->Read(&op)) r.ops.push_back(op);
    r.status = reader->Finish();
    if (!r.ops.empty() && r.ops.back().done()) {
      r.ops.back().response().UnpackTo(&r.response);
    }
    return r;
  }
  static reapi::ExecutionStage::Value Stage(const Operation& op) {
    reapi::ExecuteOperationMetadata m;
    op.metadata().UnpackTo(&m);
    return m.stage();
  }
  // One lease as a worker; the task (empty when none came).
  // With `token`: as the tenant it names ("authorization: Bearer").
  v1::StageTask Lease(int wait_ms = 3000, const std::string& token = "") {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::LeaseRequest req;
    req.set_worker("w1");
    req.set_wait_ms(wait_ms);
    v1::LeaseResponse resp;
    EXPECT_TRUE(scheduler_->Lease(&ctx, req, &resp).ok());
    return resp.task();
  }
  void Finish(const v1::StageTask& task, int exit_code,
              const std::string& token = "") {
    reapi::ExecuteResponse response;
    response.mutable_result()->set_exit_code(exit_code);
    v1::StageReport report;
    report.set_lease_id(task.lease_id());
    report.set_worker("w1");
    report.set_finished(true);
    report.set_execute_response(response.SerializeAsString());
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::StageReportResponse resp;
    ASSERT_TRUE(scheduler_->Report(&ctx, report, &resp).ok());
  }

  std::string dir_;
  std::optional<CasProcess> cas_;
  std::unique_ptr<CasClient> direct_;
  CasTarget target_;
  std::unique_ptr<SchedulerService> service_;
  std::unique_ptr<RemoteExecutionEndpoint> endpoint_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Scheduler::Stub> scheduler_;
  std::unique_ptr<reapi::Execution::Stub> execution_;
};

TEST_F(ExecutionTest, CapabilitiesSayExecutionIsEnabled) {
  auto caps = reapi::Capabilities::NewStub(channel_);
  grpc::ClientContext ctx;
  reapi::ServerCapabilities resp;
  ASSERT_TRUE(
      caps->GetCapabilities(&ctx, reapi::GetCapabilitiesRequest(), &resp).ok());
  EXPECT_TRUE(resp.execution_capabilities().exec_enabled());
  EXPECT_EQ(resp.execution_capabilities().digest_function(),
            reapi::DigestFunction::SHA256);
  EXPECT_EQ(resp.cache_capabilities().digest_function(0),
            reapi::DigestFunction::SHA256);
  // Only workers write the action cache; through here, nobody.
  EXPECT_FALSE(resp.cache_capabilities()
                   .action_cache_update_capabilities()
                   .update_enabled());
}

TEST_F(ExecutionTest, RefusalsNameTheProblem) {
  Run missing = Execute(Digest::Of("no such action"));
  EXPECT_EQ(missing.status.error_code(), grpc::FAILED_PRECONDITION);
  // With REAPI's PreconditionFailure detail naming the blob.
  EXPECT_EQ(MissingBlobsOf(FromGrpcStatus(missing.status)),
            std::vector<Digest>{Digest::Of("no such action")});
  EXPECT_NE(missing.status.error_message().find("is not in the CAS"),
            std::string::npos);
  Run property = Execute(PutAction("/bin/sh", {{"gpu", "1"}}));
  EXPECT_EQ(property.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(property.status.error_message().find("\"gpu\""), std::string::npos);
  Run no_image = Execute(PutAction("/bin/sh"));
  EXPECT_EQ(no_image.status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(no_image.status.error_message().find("--action-image"),
            std::string::npos);
  Run unknown =
      Execute(PutAction("/bin/sh", {{"container-image", "docker://nosuch:1"}}));
  EXPECT_EQ(unknown.status.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(unknown.status.error_message().find("nosuch:1 is not in the farm"),
            std::string::npos);
  Run wait = Wait("operations/never");
  EXPECT_EQ(wait.status.error_code(), grpc::NOT_FOUND);
}

TEST_F(ExecutionTest, AnActionIsQueuedLeasedAndAnswered) {
  TagImage("exec:1");
  Digest action = PutAction("/bin/sh", {{"container-image", "docker://exec:1"},
                                        {"OSFamily", "Linux"},
                                        {"network", "standard"}});
  auto run = std::async(std::launch::async, [&] { return Execute(action); });
  v1::StageTask task = Lease();
  ASSERT_TRUE(task.spec().has_action());
  const v1::RemoteAction& a = task.spec().action();
  EXPECT_EQ(a.action_digest().hash(), action.hash());
  EXPECT_EQ(a.container_image(), "exec:1");
  EXPECT_EQ(a.image_manifest().hash(), Digest::Of("a manifest").hash());
  EXPECT_TRUE(a.network());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Finish(task, 7);
  Run r = run.get();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_GE(r.ops.size(), 2u);
  // QUEUED first unless the worker took it before the first write;
  // EXECUTING while it ran.
  EXPECT_TRUE(Stage(r.ops.front()) == reapi::ExecutionStage::QUEUED ||
              Stage(r.ops.front()) == reapi::ExecutionStage::EXECUTING);
  EXPECT_EQ(Stage(r.ops[r.ops.size() - 2]), reapi::ExecutionStage::EXECUTING);
  EXPECT_EQ(Stage(r.ops.back()), reapi::ExecutionStage::COMPLETED);
  EXPECT_TRUE(r.ops.back().done());
  EXPECT_EQ(r.ops.back().name().rfind("operations/", 0), 0u);
  EXPECT_EQ(r.response.result().exit_code(), 7);
  EXPECT_FALSE(r.response.cached_result());
  // The finished operation can still be waited for.
  Run again = Wait(r.ops.back().name());
  ASSERT_TRUE(again.status.ok());
  EXPECT_EQ(again.response.result().exit_code(), 7);
}

TEST_F(ExecutionTest, ActionCacheHitsRunNothing) {
  TagImage("exec:1");
  Digest action = PutAction("/bin/sh", {{"container-image", "exec:1"}});
  reapi::ActionResult result;
  result.set_exit_code(0);
  result.set_stdout_raw("cached");
  ASSERT_TRUE(direct_->UpdateActionResult(action, result).ok());
  Run r = Execute(action);
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.response.cached_result());
  EXPECT_EQ(r.response.result().exit_code(), 0);
  EXPECT_TRUE(Lease(200).lease_id().empty());
  // skip_cache_lookup runs it anyway.
  auto run =
      std::async(std::launch::async, [&] { return Execute(action, true); });
  v1::StageTask task = Lease();
  ASSERT_FALSE(task.lease_id().empty());
  Finish(task, 0);
  EXPECT_FALSE(run.get().response.cached_result());
}

TEST_F(ExecutionTest, IdenticalActionsInFlightShareOneRun) {
  TagImage("exec:1");
  Digest action = PutAction("/bin/sh", {{"container-image", "exec:1"}});
  auto one = std::async(std::launch::async, [&] { return Execute(action); });
  v1::StageTask task = Lease();
  ASSERT_FALSE(task.lease_id().empty());
  auto two = std::async(std::launch::async, [&] { return Execute(action); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(Lease(200).lease_id().empty());  // no second run
  Finish(task, 0);
  Run a = one.get(), b = two.get();
  ASSERT_TRUE(a.status.ok());
  ASSERT_TRUE(b.status.ok());
  EXPECT_EQ(a.ops.back().name(), b.ops.back().name());
  // Once it has finished nothing joins it: with no result in the action
  // cache the same action runs again.
  auto three = std::async(std::launch::async, [&] { return Execute(action); });
  v1::StageTask again = Lease();
  ASSERT_FALSE(again.lease_id().empty());
  Finish(again, 0);
  Run c = three.get();
  ASSERT_TRUE(c.status.ok());
  EXPECT_NE(c.ops.back().name(), a.ops.back().name());
  // do_not_cache actions are never merged.
  Digest private_action =
      PutAction("/bin/sh", {{"container-image", "exec:1"}}, true);
  auto p1 =
      std::async(std::launch::async, [&] { return Execute(private_action); });
  auto p2 =
      std::async(std::launch::async, [&] { return Execute(private_action); });
  v1::StageTask t1 = Lease(), t2 = Lease();
  ASSERT_FALSE(t1.lease_id().empty());
  ASSERT_FALSE(t2.lease_id().empty());
  EXPECT_TRUE(t1.spec().action().do_not_cache());
  Finish(t1, 0);
  Finish(t2, 0);
  EXPECT_NE(p1.get().ops.back().name(), p2.get().ops.back().name());
}

TEST_F(ExecutionTest, AnActionOutlivesARestartAndIsWaitedFor) {
  TagImage("exec:1");
  Digest action = PutAction("/bin/sh", {{"container-image", "exec:1"}});
  Run first = [&] {
    auto run = std::async(std::launch::async, [&] { return Execute(action); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Stop();
    return run.get();
  }();
  ASSERT_FALSE(first.ops.empty());
  EXPECT_EQ(first.status.error_code(), grpc::UNAVAILABLE);
  const std::string name = first.ops.front().name();
  Start();
  auto waited = std::async(std::launch::async, [&] { return Wait(name); });
  v1::StageTask task = Lease();
  ASSERT_TRUE(task.spec().has_action());
  Finish(task, 3);
  Run r = waited.get();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.result().exit_code(), 3);
}

TEST_F(ExecutionTest, OperationsGetAndCancel) {
  TagImage("exec:1");
  Digest action = PutAction("/bin/sh", {{"container-image", "exec:1"}});
  auto run = std::async(std::launch::async, [&] { return Execute(action); });
  v1::StageTask task = Lease();
  ASSERT_FALSE(task.lease_id().empty());
  auto ops = google::longrunning::Operations::NewStub(channel_);
  const std::string name = "operations/" + task.build_id();
  {
    grpc::ClientContext ctx;
    google::longrunning::GetOperationRequest req;
    req.set_name(name);
    Operation op;
    ASSERT_TRUE(ops->GetOperation(&ctx, req, &op).ok());
    EXPECT_FALSE(op.done());
    EXPECT_EQ(Stage(op), reapi::ExecutionStage::EXECUTING);
  }
  {
    grpc::ClientContext ctx;
    google::longrunning::CancelOperationRequest req;
    req.set_name(name);
    google::protobuf::Empty empty;
    ASSERT_TRUE(ops->CancelOperation(&ctx, req, &empty).ok());
  }
  Run r = run.get();
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.response.status().code(), grpc::CANCELLED);
  // The worker hears it at its next report.
  v1::StageReport report;
  report.set_lease_id(task.lease_id());
  report.set_worker("w1");
  grpc::ClientContext ctx;
  v1::StageReportResponse resp;
  ASSERT_TRUE(scheduler_->Report(&ctx, report, &resp).ok());
  EXPECT_TRUE(resp.stop());
  grpc::ClientContext get_ctx;
  google::longrunning::GetOperationRequest get;
  get.set_name("operations/nope");
  Operation op;
  EXPECT_EQ(ops->GetOperation(&get_ctx, get, &op).error_code(),
            grpc::NOT_FOUND);
}

TEST_F(ExecutionTest, TenantsSeeOnlyTheirOwn) {
  Stop();
  auto tenants = Tenants::Parse(
      absl::StrCat(R"({"tenants": [
        {"name": "team-a", "tokens_sha256": [")",
                   Digest::Of("tok-a").hash(), R"("], "instances": ["a"]},
        {"name": "team-b", "tokens_sha256": [")",
                   Digest::Of("tok-b").hash(), R"("], "instances": ["b"]},
        {"name": "workers", "tokens_sha256": [")",
                   Digest::Of("tok-w").hash(),
                   R"("], "instances": ["*"], "worker": true}]})"),
      "tenants.json");
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  Start(*tenants);
  auto as = [](grpc::ClientContext* ctx, const std::string& token) {
    ctx->AddMetadata("authorization", "Bearer " + token);
  };
  CasClient cas_a(CasClient::Connect(cas_->address()), "a");
  Digest action =
      PutAction("/bin/sh", {{"container-image", "exec:1"}}, false, &cas_a);
  {
    grpc::ClientContext ctx;
    as(&ctx, "tok-a");
    v1::SetImageRequest req;
    req.set_instance_name("a");
    req.mutable_image()->set_name("exec:1");
    Digest::Of("a manifest").ToProto(req.mutable_image()->mutable_manifest());
    v1::SetImageResponse resp;
    ASSERT_TRUE(scheduler_->SetImage(&ctx, req, &resp).ok());
  }
  auto execute = [&](const std::string& token, const std::string& instance) {
    reapi::ExecuteRequest req;
    req.set_instance_name(instance);
    action.ToProto(req.mutable_action_digest());
    grpc::ClientContext ctx;
    if (!token.empty()) as(&ctx, token);
    auto reader = execution_->Execute(&ctx, req);
    return Read(reader.get());
  };
  EXPECT_EQ(execute("", "a").status.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(execute("tok-b", "a").status.error_code(), grpc::PERMISSION_DENIED);
  auto run =
      std::async(std::launch::async, [&] { return execute("tok-a", "a"); });
  v1::StageTask task = Lease(3000, "tok-w");
  ASSERT_TRUE(task.spec().has_action());
  EXPECT_EQ(task.spec().instance_name(), "a");
  const std::string name = "operations/" + task.build_id();
  {
    reapi::WaitExecutionRequest req;
    req.set_name(name);
    grpc::ClientContext ctx;
    as(&ctx, "tok-b");
    auto reader = execution_->WaitExecution(&ctx, req);
    EXPECT_EQ(Read(reader.get()).status.error_code(), grpc::NOT_FOUND);
  }
  {
    auto cas = reapi::ContentAddressableStorage::NewStub(channel_);
    grpc::ClientContext ctx;
    as(&ctx, "tok-b");
    reapi::FindMissingBlobsRequest req;
    req.set_instance_name("a");
    action.ToProto(req.add_blob_digests());
    reapi::FindMissingBlobsResponse resp;
    EXPECT_EQ(cas->FindMissingBlobs(&ctx, req, &resp).error_code(),
              grpc::PERMISSION_DENIED);
  }
  Finish(task, 0, "tok-w");
  Run r = run.get();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_TRUE(r.ops.back().done());
}

TEST_F(ExecutionTest, TheCasIsForwarded) {
  auto cas = reapi::ContentAddressableStorage::NewStub(channel_);
  std::string blob = "through the scheduler";
  Digest d = Digest::Of(blob);
  {
    grpc::ClientContext ctx;
    reapi::BatchUpdateBlobsRequest req;
    auto* r = req.add_requests();
    d.ToProto(r->mutable_digest());
    r->set_data(blob);
    reapi::BatchUpdateBlobsResponse resp;
    ASSERT_TRUE(cas->BatchUpdateBlobs(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.responses(0).status().code(), 0);
  }
  EXPECT_EQ(*direct_->ReadString(d), blob);  // it is in the farm's CAS
  {
    auto bs = google::bytestream::ByteStream::NewStub(channel_);
    grpc::ClientContext ctx;
    google::bytestream::ReadRequest req;
    req.set_resource_name("blobs/" + d.hash() + "/" + std::to_string(d.size()));
    auto reader = bs->Read(&ctx, req);
    std::string got;
    google::bytestream::ReadResponse chunk;
    while (reader->Read(&chunk)) got += chunk.data();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, blob);
  }
  {
    auto ac = reapi::ActionCache::NewStub(channel_);
    grpc::ClientContext ctx;
    reapi::UpdateActionResultRequest req;
    d.ToProto(req.mutable_action_digest());
    reapi::ActionResult resp;
    EXPECT_EQ(ac->UpdateActionResult(&ctx, req, &resp).error_code(),
              grpc::PERMISSION_DENIED);
  }
}

}  // namespace
}  // namespace stagefarm::scheduler
