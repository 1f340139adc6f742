// Identical stages of builds submitted together run once
// (scheduler/stage_joins.cc): over the scheduler's real gRPC API, a test
// worker leasing by hand and counting what it is given.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/sim.h"
#include "scheduler/test_farm.h"

namespace stagefarm::scheduler {
namespace {

constexpr char kTwoStages[] =
    "FROM scratch AS base\nCOPY a /a\nFROM base\nCOPY b /b\n";

// Submits `spec` on a thread and returns once the scheduler holds `builds`
// running builds (so that builds submitted one after the other are all
// queued before any worker asks).
std::future<sim::Outcome> Submit(Farm& farm, const v1::BuildSpec& spec,
                                 size_t builds) {
  auto f = std::async(std::launch::async, [&farm, spec] {
    return sim::SubmitAndWait(farm.stub.get(), spec);
  });
  for (int i = 0; i < 500 && farm.service->RunningCount() < builds; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(farm.service->RunningCount(), builds);
  return f;
}

v1::StoredBuild Stored(Farm& farm, const std::string& build_id) {
  grpc::ClientContext ctx;
  v1::GetBuildRequest req;
  req.set_build_id(build_id);
  v1::BuildRecord record;
  EXPECT_TRUE(farm.stub->GetBuild(&ctx, req, &record).ok());
  return record.build();
}

// What a worker was given: runs (no cached state) by (build, stage), and
// assemblies of a result made elsewhere.
struct Leased {
  std::map<std::pair<std::string, int>, int> runs;
  int runs_total = 0;
  int assemblies = 0;
  std::map<std::string, std::string> cached_state;  // build -> state given
};

// Leases and completes stages until none is offered for 300 ms; each
// run's image state names its lease, so results can be told apart.
Leased Drain(Farm& farm) {
  Leased out;
  while (true) {
    v1::LeaseResponse r = farm.Lease("w", 300);
    if (!r.has_task()) return out;
    const v1::StageTask& t = r.task();
    if (t.cached_state().empty()) {
      ++out.runs[{t.build_id(), t.stage_index()}];
      ++out.runs_total;
    } else {
      ++out.assemblies;
      out.cached_state[t.build_id()] = t.cached_state();
    }
    v1::StageReport done = Done(t, "w");
    // As a worker does: an assembly reports the state it was given.
    done.set_image_state(
        t.cached_state().empty()
            ? absl::StrCat("{\"lease\":\"", t.lease_id(), "\"}")
            : t.cached_state());
    farm.Report(done);
  }
}

int CountText(const sim::Outcome& o, const std::string& kind,
              const std::string& text) {
  int n = 0;
  for (const auto& e : o.events) {
    n += e.kind() == kind && e.text().find(text) != std::string::npos ? 1 : 0;
  }
  return n;
}

TEST(StageJoin, IdenticalBuildsSubmittedTogetherRunEachStageOnce) {
  Farm farm(Fast());
  auto first = Submit(farm, sim::Spec(kTwoStages), 1);
  auto second = Submit(farm, sim::Spec(kTwoStages), 2);
  // Before any worker asked: the second build's first stage waits for the
  // first build's, and its record says so.
  std::string first_id, second_id;
  {
    v1::ListBuildsRequest req;
    v1::ListBuildsResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(farm.stub->ListBuilds(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.builds_size(), 2);
    // Newest first.
    second_id = resp.builds(0).build_id();
    first_id = resp.builds(1).build_id();
  }
  v1::StoredBuild waiting = Stored(farm, second_id);
  ASSERT_EQ(waiting.stages_size(), 2);
  EXPECT_EQ(waiting.stages(0).waiting_for(), first_id);
  EXPECT_EQ(waiting.stages(0).status(), 0);  // waiting, not queued
  EXPECT_EQ(farm.service->GetStats().queued, 1u);

  Leased leased = Drain(farm);
  sim::Outcome a = first.get(), b = second.get();
  ASSERT_TRUE(a.last.finished());
  ASSERT_TRUE(b.last.finished());
  EXPECT_EQ(a.last.code(), 0) << a.last.error();
  EXPECT_EQ(b.last.code(), 0) << b.last.error();
  EXPECT_EQ(a.last.manifest().hash(), b.last.manifest().hash());
  // Two stages ran once each (four runs without the index); the build
  // whose target waited only made its image from the other's result.
  EXPECT_EQ(leased.runs_total, 2);
  EXPECT_EQ(leased.assemblies, 1);
  EXPECT_EQ(farm.service->GetStats().stages_joined, 2);
  // Both builds hold the same results, those of the runs.
  v1::StoredBuild ra = Stored(farm, a.build_id), rb = Stored(farm, b.build_id);
  ASSERT_EQ(ra.stages_size(), 2);
  ASSERT_EQ(rb.stages_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(ra.stages(i).result().find("\"lease\""), std::string::npos);
    EXPECT_EQ(ra.stages(i).result(), rb.stages(i).result()) << i;
    EXPECT_TRUE(ra.stages(i).waiting_for().empty());
    EXPECT_TRUE(rb.stages(i).waiting_for().empty());
  }
  ASSERT_EQ(leased.cached_state.size(), 1u);
  EXPECT_EQ(leased.cached_state.begin()->second, ra.stages(1).result());
  EXPECT_EQ(CountText(b, "waiting", "the same stage"), 1);
  EXPECT_EQ(CountText(b, "stage-done", "run by build " + a.build_id), 1);
  EXPECT_EQ(farm.service->GetStats().waiting, 0u);
}

TEST(StageJoin, WhenTheRunFailsTheWaitingBuildRunsItItself) {
  Farm farm(Fast());
  auto first = Submit(farm, sim::Spec(kTwoStages), 1);
  auto second = Submit(farm, sim::Spec(kTwoStages), 2);
  v1::LeaseResponse r = farm.Lease("w");
  ASSERT_TRUE(r.has_task());
  const std::string failed_build = r.task().build_id();
  EXPECT_EQ(r.task().stage_index(), 0);
  // Only the run is offered while it runs.
  EXPECT_FALSE(farm.Lease("w2", 200).has_task());
  v1::StageReport fail;
  fail.set_lease_id(r.task().lease_id());
  fail.set_finished(true);
  fail.set_code(static_cast<int>(grpc::StatusCode::ABORTED));
  fail.set_error("Dockerfile:2: COPY a /a: no such file");
  farm.Report(fail);
  Leased leased = Drain(farm);
  sim::Outcome a = first.get(), b = second.get();
  EXPECT_EQ(a.build_id, failed_build);
  EXPECT_EQ(a.last.code(), static_cast<int>(grpc::StatusCode::ABORTED));
  EXPECT_EQ(b.last.code(), 0) << b.last.error();
  // The second build ran both its stages itself.
  EXPECT_EQ(leased.runs_total, 2);
  EXPECT_EQ((leased.runs[{b.build_id, 0}]), 1);
  EXPECT_EQ((leased.runs[{b.build_id, 1}]), 1);
  EXPECT_EQ(leased.assemblies, 0);
  EXPECT_EQ(CountText(b, "retry", "ended without this stage's result"), 1);
}

TEST(StageJoin, ACancelledRunLetsTheWaitingBuildRunIt) {
  Farm farm(Fast());
  auto first = Submit(farm, sim::Spec(kTwoStages), 1);
  auto second = Submit(farm, sim::Spec(kTwoStages), 2);
  v1::LeaseResponse r = farm.Lease("w");
  ASSERT_TRUE(r.has_task());
  {
    grpc::ClientContext ctx;
    v1::CancelBuildRequest req;
    req.set_build_id(r.task().build_id());
    v1::CancelBuildResponse resp;
    ASSERT_TRUE(farm.stub->CancelBuild(&ctx, req, &resp).ok());
  }
  Leased leased = Drain(farm);
  sim::Outcome a = first.get(), b = second.get();
  EXPECT_EQ(a.last.code(), static_cast<int>(grpc::StatusCode::CANCELLED));
  EXPECT_EQ(b.last.code(), 0) << b.last.error();
  EXPECT_EQ((leased.runs[{b.build_id, 0}]), 1);
  EXPECT_EQ((leased.runs[{b.build_id, 1}]), 1);
}

TEST(StageJoin, DifferentStagesAreNotMerged) {
  Farm farm(Fast());
  auto first = Submit(farm, sim::Spec(kTwoStages), 1);
  // Another Dockerfile (the key covers it whole), the same one on another
  // instance, and the same one without cache: each runs its own stages.
  auto second = Submit(
      farm,
      sim::Spec("FROM scratch AS base\nCOPY a /a\nFROM base\nCOPY c /c\n"), 2);
  v1::BuildSpec other_instance = sim::Spec(kTwoStages);
  other_instance.set_instance_name("other");
  auto third = Submit(farm, other_instance, 3);
  v1::BuildSpec no_cache = sim::Spec(kTwoStages);
  no_cache.set_no_cache(true);
  auto fourth = Submit(farm, no_cache, 4);
  Leased leased = Drain(farm);
  std::vector<sim::Outcome> all = {first.get(), second.get(), third.get(),
                                   fourth.get()};
  for (const sim::Outcome& o : all) {
    EXPECT_EQ(o.last.code(), 0) << o.last.error();
    EXPECT_EQ((leased.runs[{o.build_id, 0}]), 1) << o.build_id;
    EXPECT_EQ((leased.runs[{o.build_id, 1}]), 1) << o.build_id;
    EXPECT_EQ(CountText(o, "waiting", "the same stage"), 0);
  }
  EXPECT_EQ(leased.runs_total, 8);
  EXPECT_EQ(leased.assemblies, 0);
  EXPECT_EQ(farm.service->GetStats().stages_joined, 0);
}

}  // namespace
}  // namespace stagefarm::scheduler
