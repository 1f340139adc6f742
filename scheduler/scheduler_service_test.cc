// The scheduler over its real gRPC API (an in-process server), with
// simulated workers (scheduler/sim.h): stage order, placement, lease expiry and
// retries, failures, cancellation, and a restart from the state directory.
#include "scheduler/scheduler_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "scheduler/sim.h"
#include "scheduler/test_farm.h"
#include "tests/status_code.h"

namespace stagefarm::scheduler {
namespace {

constexpr char kDag[] =
    "FROM scratch AS one\nCOPY a /a\n"
    "FROM scratch AS two\nCOPY b /b\n"
    "FROM scratch AS three\nCOPY c /c\n"
    "FROM scratch\nCOPY --from=one /a /a\nCOPY --from=two /b /b\n"
    "COPY --from=three /c /c\n";

TEST(SchedulerService, DagStagesWaitForTheirDependencies) {
  Farm farm(Fast());
  sim::Workers workers(farm.channel, "w", 3);
  sim::Outcome o = sim::SubmitAndWait(farm.stub.get(), sim::Spec(kDag));
  ASSERT_TRUE(o.status.ok()) << o.status.error_message();
  ASSERT_TRUE(o.last.finished());
  EXPECT_EQ(o.last.code(), 0) << o.last.error();
  EXPECT_EQ(o.last.manifest().hash(), std::string(64, 'b'));
  EXPECT_EQ(CountKind(o, "stage-started"), 4);
  // The final stage starts only after the three it copies from are done.
  int done_before_final = -1, done = 0;
  for (const auto& e : o.events) {
    if (e.kind() == "stage-done") ++done;
    if (e.kind() == "stage-started" && e.stage() == "stage-3") {
      done_before_final = done;
    }
  }
  EXPECT_EQ(done_before_final, 3);
  EXPECT_EQ(o.last.steps_run(), 4);
}

TEST(SchedulerService, ReadyStagesGoToDifferentWorkersAtOnce) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), sim::Spec(kDag));
  });
  // Three workers each get one of the independent stages before any is
  // done.
  std::vector<v1::StageTask> tasks;
  for (const char* w : {"a", "b", "c"}) {
    v1::LeaseResponse r = farm.Lease(w);
    ASSERT_TRUE(r.has_task());
    tasks.push_back(r.task());
  }
  std::set<int> stages;
  for (const auto& t : tasks) stages.insert(t.stage_index());
  EXPECT_EQ(stages, (std::set<int>{0, 1, 2}));
  EXPECT_FALSE(farm.Lease("d", 100).has_task());  // the final one waits
  const char* names[] = {"a", "b", "c"};
  for (size_t i = 0; i < tasks.size(); ++i) {
    EXPECT_FALSE(farm.Report(Done(tasks[i], names[i])).stop());
  }
  v1::LeaseResponse last = farm.Lease("d");
  ASSERT_TRUE(last.has_task());
  EXPECT_TRUE(last.task().assemble());
  EXPECT_EQ(last.task().dependencies_size(), 3);
  EXPECT_EQ(last.task().dependencies().at(1), "{\"stage\":1}");
  farm.Report(Done(last.task(), "d"));
  EXPECT_EQ(build.get().last.code(), 0);
}

TEST(SchedulerService, LockedCachesAreHeldByOneLeaseAtATime) {
  SchedulerOptions o = Fast();
  o.lease_timeout = std::chrono::seconds(30);  // no report keeps them alive
  Farm farm(o);
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), sim::Spec(kDag));
  });
  v1::StageTask a = farm.Lease("a").task();
  v1::StageTask b = farm.Lease("b").task();
  ASSERT_FALSE(a.lease_id().empty());
  ASSERT_FALSE(b.lease_id().empty());
  auto lock = [&](const v1::StageTask& t, const std::string& id, int wait_ms,
                  bool release = false) {
    grpc::ClientContext ctx;
    v1::LockCacheRequest req;
    req.set_lease_id(t.lease_id());
    req.set_cache_id(id);
    req.set_wait_ms(wait_ms);
    req.set_release(release);
    v1::LockCacheResponse resp;
    grpc::Status s = farm.stub->LockCache(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.held();
  };
  EXPECT_TRUE(lock(a, "apt", 0));
  EXPECT_TRUE(lock(a, "apt", 0));     // held already
  EXPECT_FALSE(lock(b, "apt", 200));  // waits, then gives up
  EXPECT_TRUE(lock(b, "npm", 0));     // another cache
  // A waiter gets it when the holder releases.
  auto waiting =
      std::async(std::launch::async, [&] { return lock(b, "apt", 5000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(lock(a, "apt", 0, /*release=*/true));
  EXPECT_TRUE(waiting.get());
  // A lease that ends releases what it held.
  EXPECT_FALSE(farm.Report(Done(b, "b")).stop());
  EXPECT_TRUE(lock(a, "apt", 1000));
  grpc::ClientContext ctx;
  v1::LockCacheRequest req;
  req.set_lease_id("nonsense");
  req.set_cache_id("apt");
  v1::LockCacheResponse resp;
  EXPECT_EQ(farm.stub->LockCache(&ctx, req, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  farm.Shutdown();  // the build is left unfinished
  build.get();
}

TEST(SchedulerService, SshAgentConnectionsAreRelayedToTheClient) {
  SchedulerOptions o = Fast();
  o.lease_timeout = std::chrono::seconds(30);
  Farm farm(o);
  v1::BuildSpec spec = sim::Spec(kDag);
  spec.add_ssh_ids("default");
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), spec);
  });
  v1::StageTask a = farm.Lease("a").task();
  ASSERT_FALSE(a.lease_id().empty());
  ASSERT_EQ(a.spec().ssh_ids_size(), 1);

  using Stream = grpc::ClientReaderWriter<v1::SshFrame, v1::SshFrame>;
  auto agent_stream = [&](grpc::ClientContext* ctx, const std::string& lease,
                          const std::string& id) {
    std::unique_ptr<Stream> s = farm.stub->SshAgent(ctx);
    v1::SshFrame first;
    first.set_build_id(a.build_id());
    first.set_ssh_id(id);
    first.set_lease_id(lease);
    s->Write(first);
    return s;
  };
  // Without the client serving its agents, a worker's connection fails.
  {
    grpc::ClientContext ctx;
    auto s = agent_stream(&ctx, a.lease_id(), "default");
    s->WritesDone();
    v1::SshFrame f;
    while (s->Read(&f)) {
    }
    EXPECT_EQ(s->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  // A lease on no stage of the build reaches nothing.
  {
    grpc::ClientContext ctx;
    auto s = agent_stream(&ctx, "nonsense", "default");
    s->WritesDone();
    v1::SshFrame f;
    while (s->Read(&f)) {
    }
    EXPECT_EQ(s->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  // The client serves; a worker's bytes reach it under a connection number
  // and its answer comes back.
  grpc::ClientContext client_ctx;
  std::unique_ptr<Stream> client = farm.stub->ServeSsh(&client_ctx);
  v1::SshFrame hello;
  hello.set_build_id(a.build_id());
  ASSERT_TRUE(client->Write(hello));
  // The scheduler answers once it relays the client's agents.
  v1::SshFrame ack;
  ASSERT_TRUE(client->Read(&ack));
  EXPECT_EQ(ack.build_id(), a.build_id());
  // Each side reads on a thread of its own, as the real ones do (a
  // stream's writes need not wait for the other side to read, but gRPC
  // may make them).
  auto client_reads = std::async(std::launch::async, [&] {
    std::vector<v1::SshFrame> got(2);
    EXPECT_TRUE(client->Read(&got[0]));
    EXPECT_TRUE(client->Read(&got[1]));
    return got;
  });
  grpc::ClientContext worker_ctx;
  std::unique_ptr<Stream> worker =
      agent_stream(&worker_ctx, a.lease_id(), "default");
  v1::SshFrame req;
  req.set_data("request");
  ASSERT_TRUE(worker->Write(req));
  std::vector<v1::SshFrame> got_by_client = client_reads.get();
  const v1::SshFrame& open = got_by_client[0];
  const v1::SshFrame& data = got_by_client[1];
  EXPECT_EQ(open.ssh_id(), "default");
  EXPECT_EQ(data.connection(), open.connection());
  EXPECT_EQ(data.data(), "request");
  v1::SshFrame answer;
  answer.set_connection(open.connection());
  answer.set_data("answer");
  ASSERT_TRUE(client->Write(answer));
  v1::SshFrame got;
  ASSERT_TRUE(worker->Read(&got));
  EXPECT_EQ(got.data(), "answer");
  // The worker hangs up: the client is told.
  auto client_close = std::async(std::launch::async, [&] {
    v1::SshFrame f;
    EXPECT_TRUE(client->Read(&f));
    return f;
  });
  v1::SshFrame bye;
  bye.set_close(true);
  worker->Write(bye);
  v1::SshFrame closed = client_close.get();
  EXPECT_EQ(closed.connection(), open.connection());
  EXPECT_TRUE(closed.close());
  worker->WritesDone();
  while (worker->Read(&got)) {
  }
  EXPECT_TRUE(worker->Finish().ok());
  client->WritesDone();
  EXPECT_TRUE(client->Finish().ok());
  farm.Shutdown();
  build.get();
}

TEST(SchedulerService, StageBuiltOnAnotherGoesToItsWorker) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(
        farm.stub.get(),
        sim::Spec("FROM scratch AS base\nCOPY a /a\nFROM base\nCOPY b /b\n"));
  });
  v1::LeaseResponse first = farm.Lease("home");
  ASSERT_TRUE(first.has_task());
  farm.Report(Done(first.task(), "home"));
  // Another worker asking first is kept waiting for the grace period while
  // the base's worker takes the stage.
  auto other = std::async(std::launch::async,
                          [&] { return farm.Lease("stranger", 150); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  v1::LeaseResponse second = farm.Lease("home");
  ASSERT_TRUE(second.has_task());
  EXPECT_EQ(second.task().stage_index(), 1);
  EXPECT_FALSE(other.get().has_task());
  farm.Report(Done(second.task(), "home"));
  EXPECT_EQ(build.get().last.code(), 0);
}

// A stage FROM an image goes to the worker that last ran a stage from it
// (it has the image unpacked) when that worker is waiting for work, not to
// another that asked too; when that worker is busy, to whoever asks, at
// once.
TEST(SchedulerService, StageFromAnImageGoesWhereThatImageRanLast) {
  Farm farm(Fast());
  const v1::BuildSpec spec = sim::Spec("FROM debian\nRUN make\n");
  auto submit = [&] {
    return std::async(std::launch::async, [&] {
      return sim::SubmitAndWait(farm.stub.get(), spec);
    });
  };
  auto take = [&](v1::LeaseResponse r, const std::string& name) {
    if (!r.has_task()) return std::string();
    farm.Report(Done(r.task(), name));
    return name;
  };
  auto first = submit();
  EXPECT_EQ(take(farm.Lease("home"), "home"), "home");
  EXPECT_EQ(first.get().last.code(), 0);
  // Both wait for work when the next build comes: home gets it.
  auto home =
      std::async(std::launch::async, [&] { return farm.Lease("home", 1000); });
  auto stranger = std::async(std::launch::async,
                             [&] { return farm.Lease("stranger", 150); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto second = submit();
  EXPECT_EQ(take(stranger.get(), "stranger"), "");
  EXPECT_EQ(take(home.get(), "home"), "home");
  EXPECT_EQ(second.get().last.code(), 0);
  // home is busy (not asking): the stranger gets it without waiting.
  auto third = submit();
  EXPECT_EQ(take(farm.Lease("stranger", 100), "stranger"), "stranger");
  EXPECT_EQ(third.get().last.code(), 0);
}

TEST(SchedulerService, LostLeaseRunsAgainThenFailsAfterThreeAttempts) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(),
                              sim::Spec("FROM scratch\nCOPY a /a\n"));
  });
  // Three workers take the stage and vanish.
  for (const char* w : {"x", "y", "z"}) {
    v1::LeaseResponse r = farm.Lease(w, 3000);
    ASSERT_TRUE(r.has_task()) << w;
  }
  sim::Outcome o = build.get();
  ASSERT_TRUE(o.last.finished());
  EXPECT_EQ(o.last.code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_NE(o.last.error().find("was lost by 3 workers"), std::string::npos)
      << o.last.error();
  EXPECT_NE(o.last.error().find("the last was z"), std::string::npos);
  EXPECT_EQ(CountKind(o, "retry"), 2);
}

TEST(SchedulerService, LostLeaseMovesToAnotherWorker) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(),
                              sim::Spec("FROM scratch\nCOPY a /a\n"));
  });
  v1::LeaseResponse lost = farm.Lease("gone");
  ASSERT_TRUE(lost.has_task());
  v1::LeaseResponse again = farm.Lease("alive", 3000);
  ASSERT_TRUE(again.has_task());
  // The first worker, back too late, is told to stop.
  v1::StageReport late;
  late.set_lease_id(lost.task().lease_id());
  EXPECT_TRUE(farm.Report(late).stop());
  EXPECT_FALSE(farm.Report(Done(again.task(), "alive")).stop());
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), 0);
  EXPECT_EQ(CountKind(o, "retry"), 1);
}

TEST(SchedulerService, FailedStageFailsTheBuildWithItsReason) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), sim::Spec(kDag));
  });
  v1::LeaseResponse r = farm.Lease("w");
  ASSERT_TRUE(r.has_task());
  v1::StageReport fail;
  fail.set_lease_id(r.task().lease_id());
  fail.set_finished(true);
  fail.set_code(static_cast<int>(grpc::StatusCode::ABORTED));
  fail.set_error("Dockerfile:2: COPY a /a: no such file");
  farm.Report(fail);
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), static_cast<int>(grpc::StatusCode::ABORTED));
  EXPECT_EQ(o.last.error(), "Dockerfile:2: COPY a /a: no such file");
  // The other stages are not handed out any more.
  EXPECT_FALSE(farm.Lease("w", 100).has_task());
}

TEST(SchedulerService, CancelStopsTheBuildAndItsWorkers) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(),
                              sim::Spec("FROM scratch\nCOPY a /a\n"));
  });
  v1::LeaseResponse r = farm.Lease("w");
  ASSERT_TRUE(r.has_task());
  grpc::ClientContext ctx;
  v1::CancelBuildRequest req;
  req.set_build_id(r.task().build_id());
  v1::CancelBuildResponse resp;
  ASSERT_TRUE(farm.stub->CancelBuild(&ctx, req, &resp).ok());
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), static_cast<int>(grpc::StatusCode::CANCELLED));
  v1::StageReport beat;
  beat.set_lease_id(r.task().lease_id());
  EXPECT_TRUE(farm.Report(beat).stop());
}

TEST(SchedulerService, ASubmitterThatGoesAwayCancelsItsBuild) {
  // Streams wait without a timer; the reaper notices a client gone.
  Farm farm(Fast());
  grpc::ClientContext ctx;
  v1::SubmitBuildRequest req;
  *req.mutable_spec() = sim::Spec("FROM scratch\nCOPY a /a\n");
  auto stream = farm.stub->Build(&ctx, req);
  v1::BuildUpdate first;
  ASSERT_TRUE(stream->Read(&first));
  const std::string id = first.build_id();
  ASSERT_FALSE(id.empty());
  v1::LeaseResponse r = farm.Lease("w");
  ASSERT_TRUE(r.has_task());
  ctx.TryCancel();
  int code = -1;
  for (int i = 0; i < 100 && code < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    grpc::ClientContext get_ctx;
    v1::GetBuildRequest get;
    get.set_build_id(id);
    v1::BuildRecord record;
    ASSERT_TRUE(farm.stub->GetBuild(&get_ctx, get, &record).ok());
    if (record.build().finished()) code = record.build().code();
  }
  EXPECT_EQ(code, static_cast<int>(grpc::StatusCode::CANCELLED))
      << "the build of a client gone should end within 5 s";
  v1::StageReport beat;
  beat.set_lease_id(r.task().lease_id());
  EXPECT_TRUE(farm.Report(beat).stop());
}

TEST(SchedulerService, BadRequestsNameTheField) {
  Farm farm(Fast());
  v1::BuildSpec spec = sim::Spec("FROM scratch\n");
  spec.set_compression("lz4");
  sim::Outcome o = sim::SubmitAndWait(farm.stub.get(), spec);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(o.status.error_message().find("spec.compression"),
            std::string::npos);
  spec = sim::Spec("FROM scratch\nFROBNICATE x\n");
  o = sim::SubmitAndWait(farm.stub.get(), spec);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(o.status.error_message().find("Dockerfile:2"), std::string::npos)
      << o.status.error_message();
  spec = sim::Spec("FROM scratch\n");
  spec.mutable_context()->set_hash("nothex");
  o = sim::SubmitAndWait(farm.stub.get(), spec);
  EXPECT_NE(o.status.error_message().find("spec.context"), std::string::npos);
}

TEST(SchedulerService, HostNetworkNeedsTheEntitlementAtSubmission) {
  Farm farm(Fast());
  v1::BuildSpec spec =
      sim::Spec("FROM scratch\nRUN true\nRUN --network=host true\n");
  sim::Outcome o = sim::SubmitAndWait(farm.stub.get(), spec);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(o.status.error_message().find(
                "Dockerfile:3: RUN --network=host needs the network.host "
                "entitlement"),
            std::string::npos)
      << o.status.error_message();
  spec.add_entitlements("network.hots");
  o = sim::SubmitAndWait(farm.stub.get(), spec);
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(o.status.error_message().find("spec.entitlements"),
            std::string::npos);
}

TEST(SchedulerService, RestartKeepsBuildsAndRunningStages) {
  SchedulerOptions o = Fast();
  o.lease_timeout = std::chrono::milliseconds(5000);
  o.state_dir = TempDir("restart");
  std::string build_id, lease_id;
  v1::StageTask task;
  {
    Farm farm(o);
    // A finished build, and a running one with a stage leased.
    sim::Workers workers(farm.channel, "w", 1);
    sim::Outcome done = sim::SubmitAndWait(
        farm.stub.get(), sim::Spec("FROM scratch\nCOPY a /a\n"));
    ASSERT_EQ(done.last.code(), 0);
    workers.Stop();
    grpc::ClientContext ctx;
    v1::SubmitBuildRequest req;
    *req.mutable_spec() = sim::Spec(
        "FROM scratch AS a\nCOPY a /a\nFROM scratch AS b\nCOPY b /b\n"
        "FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n");
    auto stream = farm.stub->Build(&ctx, req);
    v1::BuildUpdate first;
    ASSERT_TRUE(stream->Read(&first));
    build_id = first.build_id();
    v1::LeaseResponse r = farm.Lease("keeper");
    ASSERT_TRUE(r.has_task());
    task = r.task();
    farm.Shutdown();  // the stream breaks: UNAVAILABLE, build not ended
    while (stream->Read(&first)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  Farm farm(o);
  EXPECT_EQ(farm.service->BuildCount(), 2u);
  EXPECT_EQ(farm.service->RunningCount(), 1u) << [&] {
    auto w = sim::Watch(farm.stub.get(), build_id);
    std::string s = w.status.error_message() + " code " +
                    std::to_string(w.last.code()) + " " + w.last.error();
    for (auto& e : w.events) s += "\n" + e.kind() + " " + e.text();
    return s;
  }();
  // The worker that held the lease reports as if nothing happened.
  EXPECT_FALSE(farm.Report(Done(task, "keeper")).stop());
  // The other independent stage was queued again; then the final one.
  for (int i = 0; i < 2; ++i) {
    v1::LeaseResponse r = farm.Lease("new");
    ASSERT_TRUE(r.has_task()) << i;
    EXPECT_NE(r.task().stage_index(), task.stage_index());
    farm.Report(Done(r.task(), "new"));
  }
  sim::Outcome o2 = sim::Watch(farm.stub.get(), build_id);
  ASSERT_TRUE(o2.last.finished());
  EXPECT_EQ(o2.last.code(), 0) << o2.last.error();
  EXPECT_EQ(CountKind(o2, "restored"), 1);
  EXPECT_EQ(CountKind(o2, "stage-done"), 3);
  // Events from before the restart are still there, in order.
  ASSERT_FALSE(o2.events.empty());
  EXPECT_EQ(o2.events[0].kind(), "queued");
}

TEST(SchedulerService, SecretsAreNeverStoredAndARestartEndsTheirBuild) {
  SchedulerOptions o = Fast();
  o.lease_timeout = std::chrono::milliseconds(5000);
  o.state_dir = TempDir("secrets");
  const std::string secret = "never-on-disk-7f3a9c";
  std::string build_id;
  {
    Farm farm(o);
    v1::BuildSpec spec = sim::Spec("FROM scratch AS a\nCOPY a /a\nFROM a\n");
    (*spec.mutable_secrets())["tok"] = secret;
    grpc::ClientContext ctx;
    v1::SubmitBuildRequest req;
    *req.mutable_spec() = spec;
    auto stream = farm.stub->Build(&ctx, req);
    v1::BuildUpdate first;
    ASSERT_TRUE(stream->Read(&first));
    build_id = first.build_id();
    // Workers get the secret with the task.
    v1::LeaseResponse r = farm.Lease("w");
    ASSERT_TRUE(r.has_task());
    EXPECT_EQ(r.task().spec().secrets().at("tok"), secret);
    farm.Shutdown();
    while (stream->Read(&first)) {
    }
  }
  for (const auto& f : std::filesystem::directory_iterator(o.state_dir)) {
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(secret), std::string::npos) << f.path();
  }
  Farm farm(o);
  sim::Outcome out = sim::Watch(farm.stub.get(), build_id);
  ASSERT_TRUE(out.last.finished());
  EXPECT_EQ(out.last.code(), static_cast<int>(grpc::StatusCode::UNAVAILABLE));
  EXPECT_NE(out.last.error().find("does not keep a build's secrets"),
            std::string::npos)
      << out.last.error();
}

TEST(SchedulerService, ImageIndexIsPerInstanceAndSurvivesARestart) {
  SchedulerOptions o = Fast();
  o.state_dir = TempDir("images");
  auto set = [](Farm& farm, const std::string& instance,
                const std::string& name, char fill) {
    v1::SetImageRequest req;
    req.set_instance_name(instance);
    req.mutable_image()->set_name(name);
    req.mutable_image()->mutable_manifest()->set_hash(std::string(64, fill));
    req.mutable_image()->mutable_manifest()->set_size_bytes(10);
    grpc::ClientContext ctx;
    v1::SetImageResponse resp;
    return farm.stub->SetImage(&ctx, req, &resp);
  };
  auto list = [](Farm& farm, const std::string& instance) {
    v1::ListImagesRequest req;
    req.set_instance_name(instance);
    grpc::ClientContext ctx;
    v1::ListImagesResponse resp;
    EXPECT_TRUE(farm.stub->ListImages(&ctx, req, &resp).ok());
    std::map<std::string, std::string> out;
    for (const auto& t : resp.images()) out[t.name()] = t.manifest().hash();
    return out;
  };
  {
    Farm farm(o);
    ASSERT_TRUE(set(farm, "team-a", "app:1", 'a').ok());
    ASSERT_TRUE(set(farm, "team-a", "app:2", 'b').ok());
    ASSERT_TRUE(set(farm, "team-b", "app:1", 'c').ok());
    ASSERT_TRUE(set(farm, "team-a", "app:1", 'd').ok());  // moved
    EXPECT_EQ(set(farm, "team-a", "", 'a').error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    v1::SetImageRequest bad;
    bad.mutable_image()->set_name("x");
    grpc::ClientContext ctx;
    v1::SetImageResponse resp;
    EXPECT_EQ(farm.stub->SetImage(&ctx, bad, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    v1::RemoveImageRequest rm;
    rm.set_instance_name("team-a");
    rm.set_name("app:2");
    grpc::ClientContext rctx;
    v1::RemoveImageResponse rresp;
    ASSERT_TRUE(farm.stub->RemoveImage(&rctx, rm, &rresp).ok());
    grpc::ClientContext again;
    EXPECT_EQ(farm.stub->RemoveImage(&again, rm, &rresp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  Farm farm(o);
  EXPECT_EQ(
      list(farm, "team-a"),
      (std::map<std::string, std::string>{{"app:1", std::string(64, 'd')}}));
  EXPECT_EQ(
      list(farm, "team-b"),
      (std::map<std::string, std::string>{{"app:1", std::string(64, 'c')}}));
  EXPECT_TRUE(list(farm, "").empty());
}

TEST(SchedulerService, WithoutStateARestartForgets) {
  Farm farm(Fast());
  sim::Outcome o = sim::Watch(farm.stub.get(), "0123456789abcdef01234567");
  EXPECT_EQ(o.status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(SchedulerService, KeepsTheLast200FinishedBuilds) {
  SchedulerOptions o = Fast();
  o.state_dir = TempDir("keep");
  std::string first_id;
  {
    Farm farm(o);
    sim::Workers workers(farm.channel, "w", 2);
    for (int i = 0; i < 205; ++i) {
      sim::Outcome b = sim::SubmitAndWait(
          farm.stub.get(), sim::Spec("FROM scratch\nCOPY a /a\n"));
      ASSERT_EQ(b.last.code(), 0);
      if (i == 0) first_id = b.build_id;
    }
    EXPECT_EQ(farm.service->BuildCount(), 200u);
  }
  Farm farm(o);
  EXPECT_EQ(farm.service->BuildCount(), 200u);  // the dropped ones stay gone
  EXPECT_EQ(sim::Watch(farm.stub.get(), first_id).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(SchedulerService, UnreadableStateIsAClearError) {
  SchedulerOptions o = Fast();
  o.state_dir = TempDir("bad");
  std::filesystem::create_directories(o.state_dir);
  {
    std::FILE* f = std::fopen((o.state_dir + "/CURRENT").c_str(), "w");
    std::fputs("garbage\n", f);
    std::fclose(f);
  }
  auto s = SchedulerService::Create(o);
  ASSERT_EQ(testing::CodeOf(s), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.status().message().find("--state"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::scheduler

namespace stagefarm::scheduler {
namespace {

constexpr char kTwoStages[] =
    "FROM scratch AS base\nCOPY a /a\nFROM base\nCOPY b /b\n";

v1::BuildSpec ReproducibleSpec() {
  v1::BuildSpec spec = sim::Spec(kTwoStages);
  spec.set_has_source_date_epoch(true);
  spec.set_source_date_epoch(1700000000);
  spec.set_verify_reproducible(true);
  spec.set_provenance("min");
  return spec;
}

// Runs both stages of the build on `worker`; returns the target's task.
v1::StageTask RunBoth(Farm& farm, const std::string& worker,
                      const std::string& manifest_hash) {
  v1::LeaseResponse first = farm.Lease(worker);
  EXPECT_TRUE(first.has_task());
  farm.Report(Done(first.task(), worker));
  v1::LeaseResponse second = farm.Lease(worker);
  EXPECT_TRUE(second.has_task());
  v1::StageReport r = Done(second.task(), worker);
  r.mutable_manifest()->set_hash(manifest_hash);
  farm.Report(r);
  return second.task();
}

TEST(SchedulerService, ReproducibilityRebuildRunsElsewhereWithoutCache) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), ReproducibleSpec());
  });
  v1::StageTask first = RunBoth(farm, "a", std::string(64, 'c'));
  EXPECT_FALSE(first.spec().no_cache());
  // The rebuild's stages never go to the worker that ran them.
  EXPECT_FALSE(farm.Lease("a", 300).has_task());
  v1::LeaseResponse r = farm.Lease("b");
  ASSERT_TRUE(r.has_task());
  EXPECT_TRUE(r.task().spec().no_cache());
  EXPECT_FALSE(r.task().spec().verify_reproducible());
  EXPECT_NE(r.task().build_id(), first.build_id());
  farm.Report(Done(r.task(), "b"));
  v1::LeaseResponse target = farm.Lease("b");
  ASSERT_TRUE(target.has_task());
  v1::StageReport same = Done(target.task(), "b");
  same.mutable_manifest()->set_hash(std::string(64, 'c'));
  farm.Report(same);
  sim::Outcome o = build.get();
  ASSERT_EQ(o.last.code(), 0) << o.last.error();
  // Only "a" had asked for work when the rebuild was queued: the client
  // is told the rebuild waits for another worker.
  bool told = false;
  for (const auto& e : o.events) {
    told = told || (e.kind() == "waiting" &&
                    e.text().find("other than a") != std::string::npos);
  }
  EXPECT_TRUE(told);
  EXPECT_EQ(o.last.rebuild_manifest().hash(), std::string(64, 'c'));
  EXPECT_NE(o.last.provenance().find("payload"), std::string::npos);
  EXPECT_GE(CountKind(o, "verify"), 2);
}

TEST(SchedulerService, ADifferentRebuildFailsTheBuild) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), ReproducibleSpec());
  });
  RunBoth(farm, "a", std::string(64, 'c'));
  RunBoth(farm, "b", std::string(64, 'd'));
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), static_cast<int>(grpc::FAILED_PRECONDITION));
  EXPECT_NE(o.last.error().find("not reproducible"), std::string::npos)
      << o.last.error();
  EXPECT_EQ(o.last.manifest().hash(), std::string(64, 'c'));
  EXPECT_EQ(o.last.rebuild_manifest().hash(), std::string(64, 'd'));
  EXPECT_TRUE(o.last.provenance().empty());
}

TEST(SchedulerService, ReproducibilityNeedsSourceDateEpoch) {
  Farm farm(Fast());
  v1::BuildSpec spec = ReproducibleSpec();
  spec.clear_has_source_date_epoch();
  spec.set_has_source_date_epoch(false);
  sim::Outcome o = sim::SubmitAndWait(farm.stub.get(), spec);
  EXPECT_EQ(o.status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(o.status.error_message().find("source_date_epoch"),
            std::string::npos);
  v1::BuildSpec bad = sim::Spec(kTwoStages);
  bad.set_provenance("full");
  o = sim::SubmitAndWait(farm.stub.get(), bad);
  EXPECT_EQ(o.status.error_code(), grpc::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace stagefarm::scheduler
