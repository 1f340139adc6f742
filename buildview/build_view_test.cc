#include "buildview/build_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "common/json.h"

namespace stagefarm::buildview {
namespace {

using ::testing::ElementsAre;

// Two stages built at once on one worker, a third after both on another;
// the third fails at its second step.
class BuildViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    build_.set_build_id("b1");
    build_.set_submitted(1000);
    build_.mutable_spec()->set_dockerfile_name("Dockerfile");
    AddStage(0, "sdk", {}, 3, "w1");
    AddStage(1, "assets", {}, 3, "w1");
    AddStage(2, "final", {0, 1}, 2, "w2");
  }
  void AddStage(int index, const std::string& name, std::vector<int> deps,
                int status, const std::string& worker) {
    v1::StoredStage* s = build_.add_stages();
    s->set_index(index);
    s->set_display(name);
    s->set_status(status);
    s->set_worker(worker);
    s->set_base_stage(-1);
    for (int d : deps) s->add_depends_on(d);
  }
  void Ev(const std::string& kind, const std::string& stage, double t,
          int step = 0, const std::string& text = "", double seconds = 0,
          const std::string& worker = "") {
    v1::Event e;
    e.set_kind(kind);
    e.set_stage(stage);
    e.set_unix_time(t);
    e.set_step(step);
    e.set_steps(step > 0 ? 2 : 0);
    e.set_text(text);
    e.set_seconds(seconds);
    e.set_worker(worker);
    events_.push_back(e);
  }
  void TwoStagesThenAFailure() {
    Ev("stage-started", "sdk", 1001, 0, "w1", 0, "w1");
    Ev("stage-started", "assets", 1001.5, 0, "w1", 0, "w1");
    Ev("started", "sdk", 1001.1, 1, "FROM busybox", 0, "w1");
    Ev("cached", "sdk", 1001.1, 1, "FROM busybox", 0, "w1");
    Ev("started", "sdk", 1001.2, 2, "RUN make", 0, "w1");
    Ev("log", "sdk", 1002, 2, "compiling\n", 0, "w1");
    Ev("log", "sdk", 1003, 2, "\xff\xfe binary\n", 0, "w1");
    Ev("done", "sdk", 1004, 2, "", 2.5, "w1");
    Ev("started", "assets", 1001.6, 1, "COPY . /a", 0, "w1");
    Ev("done", "assets", 1002, 1, "", 0.3, "w1");
    Ev("stage-done", "sdk", 1004, 0, "w1", 0, "w1");
    Ev("stage-done", "assets", 1002.5, 0, "w1", 0, "w1");
    Ev("stage-started", "final", 1005, 0, "w2", 0, "w2");
    Ev("started", "final", 1005.1, 1, "COPY --from=sdk /out /", 0, "w2");
    Ev("done", "final", 1005.2, 1, "", 0.1, "w2");
    Ev("started", "final", 1005.3, 2, "RUN test", 0, "w2");
    Ev("failed", "final", 1006, 2, "exit code 3: test failed", 0.6, "w2");
    build_.set_finished(true);
    build_.set_code(2);
    build_.set_finished_at(1006.5);
    build_.set_error("final: RUN test: exit code 3");
  }

  v1::StoredBuild build_;
  std::vector<v1::Event> events_;
};

TEST_F(BuildViewTest, StagesAndStepsWithTheirTimesAndStates) {
  TwoStagesThenAFailure();
  BuildView v = MakeView(build_, events_);
  EXPECT_EQ(v.state, "failed");
  ASSERT_EQ(v.stages.size(), 3u);
  const StageView& sdk = v.stages[0];
  EXPECT_EQ(sdk.state, "done");
  EXPECT_EQ(sdk.worker, "w1");
  EXPECT_DOUBLE_EQ(sdk.start, 1001);
  EXPECT_DOUBLE_EQ(sdk.end, 1004);
  ASSERT_EQ(sdk.steps.size(), 2u);
  EXPECT_EQ(sdk.steps[0].state, "cached");
  EXPECT_EQ(sdk.steps[1].state, "done");
  EXPECT_EQ(sdk.steps[1].instruction, "RUN make");
  // The end is the worker's measure from the start, not the report's time.
  EXPECT_DOUBLE_EQ(sdk.steps[1].end, 1001.2 + 2.5);
  EXPECT_EQ(sdk.steps[1].log_bytes, 10 + 10);
  const StageView& final = v.stages[2];
  EXPECT_EQ(final.state, "failed");
  EXPECT_THAT(final.depends_on, ElementsAre(0, 1));
  EXPECT_EQ(final.steps[1].state, "failed");
  EXPECT_EQ(final.steps[1].error, "exit code 3: test failed");
  EXPECT_EQ(final.steps[1].exit_code, -1);  // not in the error's words
  EXPECT_EQ(final.steps_total, 2);
}

// The embedded engine starts every stage at once: when one fails, a stage
// waiting for it at a COPY --from reports that step cancelled, not failed.
TEST_F(BuildViewTest, AStepWaitingForAFailedStageIsStoppedNotFailed) {
  Ev("started", "sdk", 1001.1, 1, "RUN make", 0, "w1");
  Ev("started", "final", 1001.2, 1, "COPY --from=sdk /out /", 0, "w1");
  Ev("failed", "sdk", 1003, 1, "exit code 3", 1.9, "w1");
  Ev("cancelled", "final", 1003.1, 1, "COPY --from=sdk /out /", 0, "w1");
  build_.set_finished(true);
  build_.set_code(2);
  build_.set_finished_at(1003.5);
  BuildView v = MakeView(build_, events_);
  EXPECT_EQ(v.stages[0].steps[0].state, "failed");
  EXPECT_EQ(v.stages[0].state, "failed");
  const StageView& final = v.stages[2];
  ASSERT_EQ(final.steps.size(), 1u);
  EXPECT_EQ(final.steps[0].state, "stopped");
  EXPECT_DOUBLE_EQ(final.steps[0].start, 1001.2);
  EXPECT_DOUBLE_EQ(final.steps[0].end, 1003.1);
  EXPECT_EQ(final.state, "stopped");
  EXPECT_EQ(final.steps[0].error, "");
}

TEST_F(BuildViewTest, AFailedStepNamedOnlyByItsInstructionTakesTheBuildsError) {
  TwoStagesThenAFailure();
  events_.back().set_text("RUN test");
  build_.set_error(
      "Dockerfile:9: process did not complete successfully: exit code: 3");
  BuildView v = MakeView(build_, events_);
  EXPECT_EQ(v.stages[2].steps[1].error, build_.error());
  EXPECT_EQ(v.stages[2].steps[1].exit_code, 3);
}

TEST_F(BuildViewTest, StagesAtOnceOnAWorkerGetTheirOwnLanes) {
  TwoStagesThenAFailure();
  BuildView v = MakeView(build_, events_);
  EXPECT_EQ(v.stages[0].lane, 0);
  EXPECT_EQ(v.stages[1].lane, 1);  // w1 ran both at once
  EXPECT_EQ(v.stages[2].lane, 0);  // w2's first
}

TEST_F(BuildViewTest, ARetriedStageShowsItsLastAttempt) {
  Ev("stage-started", "sdk", 1001, 0, "w1", 0, "w1");
  Ev("started", "sdk", 1001.1, 1, "RUN make", 0, "w1");
  Ev("retry", "sdk", 1011, 0, "w1 was lost", 0, "");
  Ev("stage-started", "sdk", 1012, 0, "w3", 0, "w3");
  BuildView v = MakeView(build_, events_);
  EXPECT_EQ(v.stages[0].worker, "w3");
  EXPECT_DOUBLE_EQ(v.stages[0].start, 1012);
  EXPECT_TRUE(v.stages[0].steps.empty());
  EXPECT_EQ(v.state, "running");
}

TEST_F(BuildViewTest, AFinishedBuildLeavesNothingRunning) {
  Ev("stage-started", "sdk", 1001, 0, "w1", 0, "w1");
  Ev("started", "sdk", 1001.1, 1, "RUN sleep 100", 0, "w1");
  build_.mutable_stages(0)->set_status(2);
  build_.set_finished(true);
  build_.set_code(1);
  build_.set_finished_at(1003);
  BuildView v = MakeView(build_, events_);
  EXPECT_EQ(v.state, "cancelled");
  EXPECT_EQ(v.stages[0].state, "stopped");
  EXPECT_EQ(v.stages[0].steps[0].state, "stopped");
  EXPECT_DOUBLE_EQ(v.stages[0].steps[0].end, 1003);
}

TEST_F(BuildViewTest, JsonCarriesBytesThatAreNotUtf8AsReplacements) {
  TwoStagesThenAFailure();
  events_[0].set_text("w1");
  build_.set_error("bad \xff byte");
  nlohmann::json j = ToJson(MakeView(build_, events_));
  EXPECT_EQ(j["stages"][2]["steps"][1]["error"], "exit code 3: test failed");
  std::string text = stagefarm::json::Dump(j);
  EXPECT_NE(text.find("bad \xEF\xBF\xBD byte"), std::string::npos) << text;
}

TEST(BuildFilterTest, MatchesStateExactlyAndTextInAnyFieldIgnoringCase) {
  BuildFilter any;
  EXPECT_TRUE(any.Matches("failed", {"b1", "Dockerfile"}));
  BuildFilter failed{"", "failed"};
  EXPECT_TRUE(failed.Matches("failed", {}));
  EXPECT_FALSE(failed.Matches("running", {}));
  BuildFilter text{"dockerFILE.dev", ""};
  EXPECT_TRUE(text.Matches("running", {"b1", "app/Dockerfile.dev"}));
  EXPECT_FALSE(text.Matches("running", {"b1", "Dockerfile"}));
  BuildFilter both{"team", "succeeded"};
  EXPECT_FALSE(both.Matches("failed", {"team-a"}));
  EXPECT_TRUE(both.Matches("succeeded", {"x", "team-a"}));
  BuildFilter before{"", "", 100};
  EXPECT_TRUE(before.SubmittedInRange(99.5));
  EXPECT_FALSE(before.SubmittedInRange(100));
  EXPECT_TRUE(BuildFilter{}.SubmittedInRange(1e12));
}

TEST_F(BuildViewTest, TraceHasAProcessPerWorkerAndATrackPerLane) {
  TwoStagesThenAFailure();
  nlohmann::json t = TraceEvents(MakeView(build_, events_));
  ASSERT_TRUE(t["traceEvents"].is_array());
  std::set<std::string> processes;
  std::set<std::pair<int, int>> tracks;
  int stage_slices = 0, step_slices = 0;
  for (const auto& e : t["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "process_name") {
      processes.insert(e["args"]["name"].get<std::string>());
    }
    if (e["ph"] != "X") continue;
    tracks.insert({e["pid"].get<int>(), e["tid"].get<int>()});
    EXPECT_GE(e["ts"].get<int64_t>(), 0);
    EXPECT_GE(e["dur"].get<int64_t>(), 0);
    if (e["cat"] == "stage") {
      ++stage_slices;
    } else {
      ++step_slices;
    }
    if (e["name"] == "RUN make") {
      EXPECT_EQ(e["ts"].get<int64_t>(), 1200000);  // 1001.2 - 1000 s
      EXPECT_EQ(e["dur"].get<int64_t>(), 2500000);
    }
  }
  EXPECT_EQ(processes, (std::set<std::string>{"w1", "w2"}));
  EXPECT_EQ(tracks.size(), 3u);  // w1 x 2 lanes, w2 x 1
  EXPECT_EQ(stage_slices, 3);
  EXPECT_EQ(step_slices, 5);
}

// A step's key parts as the engine reports them on "started" or "cached".
v1::Event StepEvent(const std::string& kind, const std::string& stage, int step,
                    std::vector<std::pair<std::string, std::string>> parts,
                    int line = 0, int64_t layer = -1) {
  v1::Event e;
  e.set_kind(kind);
  e.set_stage(stage);
  e.set_step(step);
  e.set_unix_time(1000 + step);
  e.set_line(line);
  e.set_key("sha256:" + std::string(64, 'a' + step));
  for (const auto& [name, fingerprint] : parts) {
    v1::KeyPart* p = e.add_key_parts();
    p->set_name(name);
    p->set_fingerprint(fingerprint);
  }
  if (layer >= 0) {
    e.set_has_layer(true);
    e.set_layer_bytes(layer);
  }
  return e;
}

v1::StoredBuild OneStage(const std::string& id, double submitted) {
  v1::StoredBuild b;
  b.set_build_id(id);
  b.set_submitted(submitted);
  b.mutable_spec()->set_dockerfile_name("Dockerfile");
  v1::StoredStage* s = b.add_stages();
  s->set_display("app");
  s->set_base_stage(-1);
  return b;
}

TEST(ExplainMissesTest, NamesTheKeyPartsThatChangedSinceTheEarlierBuild) {
  std::vector<v1::Event> before{
      StepEvent("cached", "app", 1, {{"parent", "p1"}, {"content", "c1"}}),
      StepEvent("cached", "app", 2, {{"parent", "k1"}, {"args", "a1"}}),
      StepEvent("cached", "app", 3, {{"parent", "k2"}, {"args", "a3"}})};
  std::vector<v1::Event> now{
      StepEvent("started", "app", 1, {{"parent", "p1"}, {"content", "c2"}}, 4),
      StepEvent("started", "app", 2, {{"parent", "k9"}, {"args", "a1"}}, 5),
      StepEvent("started", "app", 3,
                {{"parent", "k2"}, {"args", "a3"}, {"mount", "m1"}}, 6),
      StepEvent("started", "app", 4, {{"parent", "k3"}}, 7)};
  v1::Event done = now[0];
  done.set_kind("done");
  done.set_has_layer(true);
  done.set_layer_bytes(4096);
  now.insert(now.begin() + 1, done);
  BuildView earlier = MakeView(OneStage("b1", 100), before);
  BuildView later = MakeView(OneStage("b2", 200), now);
  v1::BuildSummary sum;
  sum.set_build_id("b1");
  sum.set_submitted(100);
  sum.set_dockerfile_name("Dockerfile");
  EXPECT_TRUE(IsEarlierBuildOf(sum, later));
  sum.set_target("other");
  EXPECT_FALSE(IsEarlierBuildOf(sum, later));
  sum.set_target("");
  sum.set_submitted(300);
  EXPECT_FALSE(IsEarlierBuildOf(sum, later));

  ExplainMisses(&earlier, &later);
  const std::vector<StepView>& steps = later.stages[0].steps;
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_THAT(steps[0].miss_parts, ElementsAre("content"));
  EXPECT_EQ(steps[0].miss,
            "changed since build b1: the files it copies (content)");
  EXPECT_EQ(steps[0].line, 4);
  EXPECT_EQ(steps[0].layer_bytes, 4096);
  EXPECT_EQ(steps[0].key, "sha256:" + std::string(64, 'b'));
  EXPECT_THAT(steps[1].miss_parts, ElementsAre("parent"));
  EXPECT_NE(steps[1].miss.find("an earlier step's result"), std::string::npos);
  EXPECT_THAT(steps[2].miss_parts, ElementsAre("mount"));
  EXPECT_NE(steps[2].miss.find("a mount"), std::string::npos);
  EXPECT_EQ(steps[3].miss, "build b1 had no step 4 in stage app");
  EXPECT_EQ(steps[3].layer_bytes, -1);

  // The same key: the entry went away.
  BuildView again = MakeView(OneStage("b3", 300), before);
  for (StageView& st : again.stages) {
    for (StepView& s : st.steps) s.state = "done";
  }
  ExplainMisses(&earlier, &again);
  EXPECT_NE(again.stages[0].steps[0].miss.find("same key as in build b1"),
            std::string::npos);
  EXPECT_TRUE(again.stages[0].steps[0].miss_parts.empty());

  // No earlier build; or the build asked for no cache.
  BuildView alone = MakeView(OneStage("b4", 400), now);
  ExplainMisses(nullptr, &alone);
  EXPECT_NE(alone.stages[0].steps[0].miss.find("no earlier build"),
            std::string::npos);
  v1::StoredBuild nc = OneStage("b5", 500);
  nc.mutable_spec()->set_no_cache(true);
  nc.mutable_spec()->add_tags("app:1");
  BuildView no_cache = MakeView(nc, now);
  ExplainMisses(&earlier, &no_cache);
  EXPECT_NE(no_cache.stages[0].steps[0].miss.find("--no-cache"),
            std::string::npos);
  // Cached steps need no reason; the JSON carries what the page shows.
  nlohmann::json j = ToJson(later);
  EXPECT_EQ(j["stages"][0]["steps"][0]["line"], 4);
  EXPECT_EQ(j["stages"][0]["steps"][0]["layer_bytes"], 4096);
  EXPECT_EQ(j["stages"][0]["steps"][0]["miss_parts"][0], "content");
  EXPECT_EQ(ToJson(no_cache)["tags"][0], "app:1");
}

}  // namespace
}  // namespace stagefarm::buildview
