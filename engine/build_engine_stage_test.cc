// A build run stage by stage (RunStage with the results of the stages each
// one needs, then Assemble), as farm workers run it, gives the very image a
// whole Build gives. Runs real containers: needs root, runc and
// /bin/busybox (busybox-static); skipped otherwise.
#include <atomic>
#include <thread>

#include "engine/build_engine.h"
#include "engine/test_engine.h"
#include "gtest/gtest.h"

namespace stagefarm::engine {
namespace {

constexpr char kDockerfile[] = R"(FROM busybox AS a
RUN echo a > /a
FROM busybox AS b
RUN echo b > /b
FROM a
COPY --from=b /b /b
RUN cat /a /b > /ab
)";

class StageTest : public BusyboxEngineTest {
 protected:
  BuildRequest Request() {
    BuildRequest r = BusyboxEngineTest::Request(kDockerfile);
    r.no_cache = true;  // every step runs, in both ways of building
    return r;
  }
};

TEST_F(StageTest, StageByStageEqualsWholeBuild) {
  auto whole = engine_->Build(Request(), nullptr, nullptr);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->steps_run, 4);

  BuildRequest r = Request();
  auto a = engine_->RunStage(r, 0, {}, nullptr, nullptr);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = engine_->RunStage(r, 1, {}, nullptr, nullptr);
  ASSERT_TRUE(b.ok()) << b.status();
  // The last stage needs both: without b's result it is refused.
  auto missing = engine_->RunStage(r, 2, {{0, a->state}}, nullptr, nullptr);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> started;
  auto last = engine_->RunStage(
      r, 2, {{0, a->state}, {1, b->state}},
      [&](const BuildEvent& ev) {
        if (ev.kind == BuildEvent::Kind::kStepStarted) {
          started.push_back(ev.text);
        }
      },
      nullptr);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->steps_run, 2);
  EXPECT_EQ(started.size(), 2u);
  auto image = engine_->Assemble(r, last->state);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, whole->manifest.digest);
  EXPECT_EQ(image->image.diff_ids, whole->image.diff_ids);

  // Images resolved by the caller are used as given.
  BuildRequest pinned = Request();
  pinned.images["busybox"] = image->manifest.digest;  // "busybox" is now ours
  pinned.no_cache = false;
  auto on_ours = engine_->RunStage(pinned, 1, {}, nullptr, nullptr);
  ASSERT_TRUE(on_ours.ok()) << on_ours.status();
  EXPECT_EQ(on_ours->state.layers.size(), image->image.layers.size() + 1);
}

// Two builds running the same step at once (two platforms' builds sharing
// a $BUILDPLATFORM stage do) run it once: the second waits for the first
// and takes its result from the cache.
TEST_F(StageTest, ConcurrentBuildsRunASharedStepOnce) {
  BuildRequest r = Request();
  r.no_cache = false;
  r.dockerfile = "FROM busybox\nRUN sleep 1 && echo shared > /shared\n";
  std::atomic<int> done{0}, cached{0};
  auto count = [&](const BuildEvent& ev) {
    if (ev.kind == BuildEvent::Kind::kStepDone) ++done;
    if (ev.kind == BuildEvent::Kind::kStepCached) ++cached;
  };
  absl::StatusOr<BuildResult> first, second;
  std::thread t1([&] { first = engine_->Build(r, count, nullptr); });
  std::thread t2([&] { second = engine_->Build(r, count, nullptr); });
  t1.join();
  t2.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(done.load(), 1);
  EXPECT_EQ(cached.load(), 1);
  EXPECT_EQ(first->steps_run + second->steps_run, 1);
  EXPECT_EQ(first->image.layers.size(), second->image.layers.size());
  EXPECT_EQ(first->image.layers.back().digest,
            second->image.layers.back().digest);
}

}  // namespace
}  // namespace stagefarm::engine
