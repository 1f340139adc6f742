// The bounds on the events the scheduler holds: a step's line-by-line
// output is held as a few events, a build's events stop growing past
// build_event_bytes (its later output dropped and said so), and finished
// builds past keep_event_bytes are forgotten, oldest first, also across a
// restart.
#include <gtest/gtest.h>

#include <future>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/sim.h"
#include "scheduler/test_farm.h"

namespace stagefarm::scheduler {
namespace {

constexpr char kOneStage[] = "FROM scratch\nCOPY a /a\n";

std::string LogText(const sim::Outcome& o) {
  std::string text;
  for (const auto& e : o.events) {
    if (e.kind() == "log") text += e.text();
  }
  return text;
}

// A report of `lines` log events "L<first + i>\n" for `task`.
v1::StageReport Lines(const v1::StageTask& task, int first, int lines) {
  v1::StageReport r;
  r.set_lease_id(task.lease_id());
  r.set_worker("w");
  for (int i = 0; i < lines; ++i) {
    v1::Event* e = r.add_events();
    e->set_kind("log");
    e->set_stage("stage-0");
    e->set_step(1);
    e->set_text(absl::StrCat("L", first + i, "\n"));
  }
  return r;
}

TEST(EventBounds, LinesOfOneReportAreHeldAsOneEvent) {
  Farm farm(Fast());
  auto build = std::async(std::launch::async, [&] {
    return sim::SubmitAndWait(farm.stub.get(), sim::Spec(kOneStage));
  });
  v1::LeaseResponse lease = farm.Lease("w");
  ASSERT_TRUE(lease.has_task());
  EXPECT_FALSE(farm.Report(Lines(lease.task(), 0, 1000)).stop());
  EXPECT_FALSE(farm.Report(Lines(lease.task(), 1000, 1000)).stop());
  // Another step's line is its own event.
  v1::StageReport other = Lines(lease.task(), 2000, 1);
  other.mutable_events(0)->set_step(2);
  EXPECT_FALSE(farm.Report(other).stop());
  farm.Report(Done(lease.task(), "w"));
  sim::Outcome o = build.get();
  ASSERT_EQ(o.last.code(), 0) << o.last.error();
  std::string want;
  for (int i = 0; i <= 2000; ++i) absl::StrAppend(&want, "L", i, "\n");
  EXPECT_EQ(LogText(o), want);  // every byte, in order
  // One event a report for step 1 (never merged across reports: a stream
  // may have sent the first), one for step 2.
  EXPECT_EQ(CountKind(o, "log"), 3);
}

TEST(EventBounds, OutputPastABuildsBoundIsDroppedAndSaidSo) {
  SchedulerOptions options = Fast();
  options.build_event_bytes = 256 << 10;
  Farm farm(options);
  // 10 reports of 1,000 lines of about 48 bytes: ~480 KB.
  sim::Workers workers(farm.channel, "w", 1, {}, 10000);
  sim::Outcome o = sim::SubmitAndWait(farm.stub.get(), sim::Spec(kOneStage));
  ASSERT_EQ(o.last.code(), 0) << o.last.error();
  const std::string kept = LogText(o);
  EXPECT_GT(kept.size(), 100u << 10);
  EXPECT_LT(kept.size(), 256u << 10);
  int64_t sent = 0;
  for (int i = 0; i < 10000; ++i) {
    sent += static_cast<int64_t>(
        absl::StrCat("line ", i, " of the step's output, about sixty bytes\n")
            .size());
  }
  bool bound_said = false;
  int64_t dropped = -1;
  for (const auto& e : o.events) {
    if (e.kind() != "note") continue;
    if (absl::StrContains(e.text(), "passed the scheduler's bound")) {
      bound_said = true;
    }
    if (absl::StrContains(e.text(), "output were not kept")) {
      dropped = std::stoll(e.text());
    }
  }
  EXPECT_TRUE(bound_said);
  EXPECT_EQ(dropped + static_cast<int64_t>(kept.size()), sent);
  // The end of the build is still reported after the bound.
  EXPECT_EQ(CountKind(o, "stage-done"), 1);
}

TEST(EventBounds, FinishedBuildsPastTheirByteBoundAreForgottenOldestFirst) {
  SchedulerOptions options = Fast();
  options.keep_event_bytes = 1 << 20;
  options.state_dir = TempDir("event-bounds");
  std::vector<std::string> ids;
  {
    Farm farm(options);
    // Each build holds ~300 KB of output: 3 fit in 1 MiB.
    sim::Workers workers(farm.channel, "w", 1, {}, 6000);
    for (int i = 0; i < 6; ++i) {
      sim::Outcome o =
          sim::SubmitAndWait(farm.stub.get(), sim::Spec(kOneStage));
      ASSERT_EQ(o.last.code(), 0) << o.last.error();
      ids.push_back(o.build_id);
    }
    EXPECT_EQ(farm.service->BuildCount(), 3u);
  }
  // A restart loads what was kept and keeps to the same bound.
  options.keep_event_bytes = 700 << 10;
  Farm farm(options);
  EXPECT_EQ(farm.service->BuildCount(), 2u);
  EXPECT_EQ(sim::Watch(farm.stub.get(), ids[3]).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  sim::Outcome newest = sim::Watch(farm.stub.get(), ids[5]);
  ASSERT_TRUE(newest.status.ok()) << newest.status.error_message();
  EXPECT_GT(LogText(newest).size(), 250u << 10);
}

}  // namespace
}  // namespace stagefarm::scheduler
