// Worker processes that die while they hold a stage (scheduler/
// worker_presence.cc), over the scheduler's real API: the death is seen
// when the process's Attend stream ends (not at the lease timeout), a
// stage that killed two processes fails its build with the reason and is
// offered to no third worker, a broken stream that comes back is no death,
// a lease timeout (a cut network) still retries, and a restarted worker
// tells of the stages its previous process held.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/sim.h"
#include "scheduler/test_farm.h"

namespace stagefarm::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kOneStage[] = "FROM scratch\nCOPY a /a\nCOPY b /b\n";

// The lease timeout is long, so a retry within it can only come from the
// death being seen.
SchedulerOptions DeathOptions() {
  SchedulerOptions o;
  o.lease_timeout = std::chrono::milliseconds(8000);
  o.heartbeat = std::chrono::milliseconds(100);
  o.worker_death_grace = std::chrono::milliseconds(100);
  return o;
}

// One worker process as the scheduler sees it: its Attend stream.
class Process {
 public:
  Process(Farm* farm, std::string name, std::string incarnation,
          std::vector<v1::HeldStage> lost = {})
      : farm_(farm),
        name_(std::move(name)),
        incarnation_(std::move(incarnation)) {
    stream_ = farm_->stub->Attend(&ctx_);
    v1::WorkerPresence hello;
    hello.set_worker(name_);
    hello.set_incarnation(incarnation_);
    for (auto& h : lost) *hello.add_lost() = std::move(h);
    EXPECT_TRUE(stream_->Write(hello));
    v1::AttendResponse ack;
    EXPECT_TRUE(stream_->Read(&ack));  // the scheduler took it
  }
  ~Process() { Die(); }
  // Leases as this process.
  v1::LeaseResponse Lease(int wait_ms = 3000) {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    req.set_worker(name_);
    req.set_incarnation(incarnation_);
    req.set_wait_ms(wait_ms);
    v1::LeaseResponse resp;
    EXPECT_TRUE(farm_->stub->Lease(&ctx, req, &resp).ok());
    return resp;
  }
  void StepStarted(const v1::StageTask& task, int step,
                   const std::string& instruction) {
    v1::WorkerPresence m;
    m.mutable_step()->set_lease_id(task.lease_id());
    m.mutable_step()->set_step(step);
    m.mutable_step()->set_instruction(instruction);
    EXPECT_TRUE(stream_->Write(m));
  }
  // The connection ends, as the kernel ends a dead process's.
  void Die() {
    if (stream_ == nullptr) return;
    ctx_.TryCancel();
    (void)stream_->Finish();
    stream_.reset();
  }

 private:
  Farm* farm_;
  std::string name_, incarnation_;
  grpc::ClientContext ctx_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::WorkerPresence, v1::AttendResponse>>
      stream_;
};

std::future<sim::Outcome> Submit(Farm* farm, const std::string& dockerfile) {
  return std::async(std::launch::async, [farm, dockerfile] {
    return sim::SubmitAndWait(farm->stub.get(), sim::Spec(dockerfile));
  });
}

TEST(WorkerDeath, SecondDeathFailsTheBuildAndNoThirdWorkerIsOffered) {
  Farm farm(DeathOptions());
  auto build = Submit(&farm, kOneStage);
  Process a(&farm, "a", "a-1");
  v1::LeaseResponse first = a.Lease();
  ASSERT_TRUE(first.has_task());
  a.StepStarted(first.task(), 2, "COPY b /b");

  Process b(&farm, "b", "b-1");
  auto died = Clock::now();
  a.Die();
  v1::LeaseResponse second = b.Lease(5000);
  auto detected = Clock::now() - died;
  ASSERT_TRUE(second.has_task());
  EXPECT_EQ(second.task().build_id(), first.task().build_id());
  // Seen by the stream's end, far within the 8 s lease timeout.
  EXPECT_LT(detected, std::chrono::milliseconds(2000));

  Process c(&farm, "c", "c-1");
  b.StepStarted(second.task(), 1, "COPY a /a");
  b.Die();
  sim::Outcome o = build.get();
  ASSERT_TRUE(o.last.finished());
  EXPECT_EQ(o.last.code(), static_cast<int>(grpc::StatusCode::INTERNAL));
  const std::string& error = o.last.error();
  EXPECT_TRUE(absl::StrContains(error, "stage stage-0 killed 2 workers"))
      << error;
  EXPECT_TRUE(absl::StrContains(
      error, "worker a: process died while running step 2 (COPY b /b)"))
      << error;
  EXPECT_TRUE(absl::StrContains(
      error, "worker b: process died while running step 1 (COPY a /a)"))
      << error;
  EXPECT_TRUE(absl::StrContains(error, "not offered to a third")) << error;
  EXPECT_FALSE(c.Lease(300).has_task());
  EXPECT_EQ(CountKind(o, "stage-started"), 2);
  EXPECT_EQ(CountKind(o, "retry"), 1);
  EXPECT_EQ(farm.service->GetStats().worker_deaths, 2);
  EXPECT_EQ(farm.service->GetStats().lease_expiries, 0);

  // The summary (builds ls, the web view) carries the reason.
  grpc::ClientContext ctx;
  v1::ListBuildsResponse list;
  ASSERT_TRUE(farm.stub->ListBuilds(&ctx, v1::ListBuildsRequest(), &list).ok());
  ASSERT_EQ(list.builds_size(), 1);
  EXPECT_EQ(list.builds(0).state(), "failed");
  EXPECT_TRUE(absl::StrContains(list.builds(0).error(), "killed 2 workers"));
}

TEST(WorkerDeath, OneDeathRunsTheStageAgainAndTheBuildSucceeds) {
  Farm farm(DeathOptions());
  auto build = Submit(&farm, kOneStage);
  Process a(&farm, "a", "a-1");
  v1::LeaseResponse first = a.Lease();
  ASSERT_TRUE(first.has_task());
  a.Die();  // before any step: "before its first step"
  Process b(&farm, "b", "b-1");
  v1::LeaseResponse second = b.Lease(5000);
  ASSERT_TRUE(second.has_task());
  farm.Report(Done(second.task(), "b"));
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), 0) << o.last.error();
  bool said = false;
  for (const auto& e : o.events) {
    said |= e.kind() == "retry" &&
            absl::StrContains(e.text(),
                              "worker a: process died before its first step");
  }
  EXPECT_TRUE(said);
  // The old lease is gone: a late report from it is told to stop.
  v1::StageReport late = Done(first.task(), "a");
  EXPECT_TRUE(farm.Report(late).stop());
}

TEST(WorkerDeath, AStreamThatComesBackIsNoDeath) {
  SchedulerOptions options = DeathOptions();
  options.worker_death_grace = std::chrono::milliseconds(1500);
  Farm farm(options);
  auto build = Submit(&farm, kOneStage);
  auto a = std::make_unique<Process>(&farm, "a", "a-1");
  v1::LeaseResponse lease = a->Lease();
  ASSERT_TRUE(lease.has_task());
  a->Die();
  // The same process attends again (its connection broke and came back).
  a = std::make_unique<Process>(&farm, "a", "a-1");
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_FALSE(farm.Report(Done(lease.task(), "a")).stop());
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), 0) << o.last.error();
  EXPECT_EQ(CountKind(o, "retry"), 0);
  EXPECT_EQ(farm.service->GetStats().worker_deaths, 0);
}

TEST(WorkerDeath, ALeaseTimeoutStillRetriesAndCountsNoDeath) {
  SchedulerOptions options = DeathOptions();
  options.lease_timeout = std::chrono::milliseconds(600);
  Farm farm(options);
  auto build = Submit(&farm, kOneStage);
  // A cut network: the stream stays open, no report comes.
  Process a(&farm, "a", "a-1");
  ASSERT_TRUE(a.Lease().has_task());
  Process b(&farm, "b", "b-1");
  v1::LeaseResponse again = b.Lease(5000);
  ASSERT_TRUE(again.has_task());
  farm.Report(Done(again.task(), "b"));
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), 0) << o.last.error();
  bool timed_out = false;
  for (const auto& e : o.events) {
    timed_out |= e.kind() == "retry" &&
                 absl::StrContains(e.text(), "a stopped reporting");
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(farm.service->GetStats().worker_deaths, 0);
  EXPECT_EQ(farm.service->GetStats().lease_expiries, 1);
}

TEST(WorkerDeath, ARestartedWorkerTellsWhatItsPredecessorHeld) {
  SchedulerOptions options = DeathOptions();
  options.worker_death_grace = std::chrono::milliseconds(60000);
  Farm farm(options);
  auto build = Submit(&farm, kOneStage);
  Process old(&farm, "a", "a-1");
  v1::LeaseResponse lease = old.Lease();
  ASSERT_TRUE(lease.has_task());
  // Its stream's end is not taken as a death within the (long) grace; the
  // restarted process says so at once.
  old.Die();
  v1::HeldStage held;
  held.set_lease_id(lease.task().lease_id());
  held.set_step(1);
  held.set_instruction("COPY a /a");
  auto started = Clock::now();
  Process restarted(&farm, "a", "a-2", {held});
  Process b(&farm, "b", "b-1");
  v1::LeaseResponse again = b.Lease(5000);
  ASSERT_TRUE(again.has_task());
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(2000));
  farm.Report(Done(again.task(), "b"));
  sim::Outcome o = build.get();
  EXPECT_EQ(o.last.code(), 0) << o.last.error();
  bool told = false;
  for (const auto& e : o.events) {
    told |= e.kind() == "retry" &&
            absl::StrContains(e.text(),
                              "worker a: process ended while running step 1 "
                              "(COPY a /a) (told by the worker restarted)");
  }
  EXPECT_TRUE(told);
  EXPECT_EQ(farm.service->GetStats().worker_deaths, 1);
}

TEST(WorkerDeath, DeathsAreKeptInTheStoredRecord) {
  SchedulerOptions options = DeathOptions();
  options.state_dir = TempDir("worker_death_state");
  std::string build_id;
  {
    Farm farm(options);
    auto build = Submit(&farm, kOneStage);
    Process a(&farm, "a", "a-1");
    v1::LeaseResponse lease = a.Lease();
    ASSERT_TRUE(lease.has_task());
    build_id = lease.task().build_id();
    a.StepStarted(lease.task(), 1, "COPY a /a");
    a.Die();
    // Requeued after the death.
    for (int i = 0; i < 50; ++i) {
      if (farm.service->GetStats().queued == 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(farm.service->GetStats().queued, 1u);
    farm.Shutdown();
    (void)build.get();
  }
  Farm farm(options);
  grpc::ClientContext ctx;
  v1::GetBuildRequest req;
  req.set_build_id(build_id);
  v1::BuildRecord record;
  ASSERT_TRUE(farm.stub->GetBuild(&ctx, req, &record).ok());
  ASSERT_EQ(record.build().stages_size(), 1);
  ASSERT_EQ(record.build().stages(0).worker_deaths_size(), 1);
  EXPECT_EQ(record.build().stages(0).worker_deaths(0),
            "worker a: process died while running step 1 (COPY a /a)");
}

}  // namespace
}  // namespace stagefarm::scheduler
