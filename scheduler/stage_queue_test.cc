#include "scheduler/stage_queue.h"

#include <map>
#include <set>

#include "gtest/gtest.h"

namespace stagefarm::scheduler {
namespace {

using Clock = StageQueue::Clock;

// Queue times by "build/stage"; an entry not in the map is stale.
class StageQueueTest : public ::testing::Test {
 protected:
  void Push(const std::string& build, int stage, const std::string& preferred,
            Clock::time_point at) {
    queued_[build + "/" + std::to_string(stage)] = at;
    queue_.Push({build, stage, preferred, "", "", ""});
  }
  std::optional<StageQueue::Entry> Pick(const std::string& worker,
                                        Clock::time_point now, bool* held) {
    return queue_.Pick(worker, now, QueuedAt(), held);
  }
  // When an entry was queued, from queued_ (stale when not there).
  StageQueue::QueuedAt QueuedAt() {
    return
        [this](const StageQueue::Entry& e) -> std::optional<Clock::time_point> {
          auto it = queued_.find(e.build + "/" + std::to_string(e.stage));
          if (it == queued_.end()) return std::nullopt;
          return it->second;
        };
  }
  StageQueue queue_;
  std::map<std::string, Clock::time_point> queued_;
  Clock::time_point t0_ = Clock::now();
};

TEST_F(StageQueueTest, ARebuildsStageNeverGoesToTheWorkerItAvoids) {
  auto now = Clock::now();
  queued_["b/0"] = now - std::chrono::seconds(5);
  queue_.Push({"b", 0, "", "", "w1", ""});
  bool held = false;
  EXPECT_FALSE(Pick("w1", now, &held).has_value());
  auto e = Pick("w2", now, &held);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->build, "b");
  EXPECT_EQ(queue_.size(), 0u);
}

TEST_F(StageQueueTest, OldestFirstWhenNothingPrefersAWorker) {
  Push("a", 0, "", t0_);
  Push("b", 0, "", t0_);
  bool held = false;
  EXPECT_EQ(Pick("w1", t0_, &held)->build, "a");
  EXPECT_EQ(Pick("w2", t0_, &held)->build, "b");
  EXPECT_FALSE(Pick("w1", t0_, &held).has_value());
  EXPECT_FALSE(held);
}

TEST_F(StageQueueTest, PreferredWorkerGetsItsStageFirst) {
  Push("a", 0, "", t0_);
  Push("a", 1, "w2", t0_);
  bool held = false;
  auto got = Pick("w2", t0_, &held);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->stage, 1);
  EXPECT_EQ(queue_.size(), 1u);
}

TEST_F(StageQueueTest, AnotherWorkerWaitsOutTheGraceThenTakesIt) {
  Push("a", 1, "w2", t0_);
  bool held = false;
  EXPECT_FALSE(Pick("w1", t0_ + std::chrono::milliseconds(50), &held));
  EXPECT_TRUE(held);
  held = false;
  auto got = Pick("w1", t0_ + StageQueue::kPlacementGrace, &held);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->stage, 1);
  EXPECT_FALSE(held);
}

TEST_F(StageQueueTest, HeldStageDoesNotBlockAFreeOne) {
  Push("a", 1, "w2", t0_);
  Push("b", 0, "", t0_);
  bool held = false;
  auto got = Pick("w1", t0_, &held);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->build, "b");
  EXPECT_TRUE(held);
  EXPECT_EQ(queue_.size(), 1u);
}

TEST_F(StageQueueTest, StaleEntriesAreDropped) {
  Push("gone", 0, "w9", t0_);
  Push("a", 0, "", t0_);
  queued_.erase("gone/0");
  bool held = false;
  auto got = Pick("w1", t0_, &held);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->build, "a");
  EXPECT_FALSE(held);
  EXPECT_EQ(queue_.size(), 0u);
}

TEST_F(StageQueueTest, GraceCountsFromTheCurrentQueueTime) {
  // Queued again later (a retry): the grace starts over.
  Push("a", 1, "w2", t0_);
  queued_["a/1"] = t0_ + std::chrono::seconds(10);
  bool held = false;
  EXPECT_FALSE(Pick("w1", t0_ + std::chrono::seconds(10), &held));
  EXPECT_TRUE(held);
}

// A stage FROM an image goes to the worker that last ran one from it, if
// that worker asks or is about to (waiting for work); never held for a busy
// one, nor past the grace.
TEST_F(StageQueueTest, AffinityWaitsOnlyForAnIdleWorker) {
  std::set<std::string> idle;
  auto pick = [&](const std::string& worker, Clock::time_point now,
                  bool* held) {
    StageQueue::Asker asker{
        worker, nullptr, nullptr,
        [&](const std::string& w) { return idle.count(w) > 0; }};
    return queue_.Pick(asker, now, QueuedAt(), held);
  };
  auto push = [&](const std::string& build, const std::string& affinity) {
    queued_[build + "/0"] = t0_;
    queue_.Push({build, 0, "", "", "", affinity});
  };
  // The affine worker takes its stage before older ones.
  push("old", "");
  push("sdk", "w2");
  bool held = false;
  EXPECT_EQ(pick("w2", t0_, &held)->build, "sdk");
  EXPECT_EQ(pick("w2", t0_, &held)->build, "old");
  // Another worker leaves it while w2 waits for work...
  push("sdk2", "w2");
  idle = {"w2"};
  held = false;
  EXPECT_FALSE(pick("w1", t0_, &held).has_value());
  EXPECT_TRUE(held);
  // ...but takes it at once when w2 is busy,
  idle.clear();
  EXPECT_EQ(pick("w1", t0_, &held)->build, "sdk2");
  // or when w2 let the grace pass.
  push("sdk3", "w2");
  idle = {"w2"};
  EXPECT_EQ(pick("w1", t0_ + StageQueue::kPlacementGrace, &held)->build,
            "sdk3");
  EXPECT_EQ(queue_.size(), 0u);
  // With nothing else queued, stages without a wish go oldest first again.
  push("a", "");
  push("b", "");
  EXPECT_EQ(pick("w1", t0_, &held)->build, "a");
}

TEST(BaseAffinityTest, RemembersTheLastWorkerAndForgetsTheOldestImage) {
  BaseAffinity a;
  EXPECT_EQ(a.WorkerFor("debian"), "");
  a.Ran("debian", "w1");
  a.Ran("golang", "w2");
  a.Ran("debian", "w3");
  EXPECT_EQ(a.WorkerFor("debian"), "w3");
  EXPECT_EQ(a.WorkerFor("golang"), "w2");
  for (size_t i = 0; i + 1 < BaseAffinity::kMaxImages; ++i) {
    a.Ran("image-" + std::to_string(i), "w");
  }
  // golang was recorded longest ago: forgotten; debian was renewed later.
  EXPECT_EQ(a.size(), BaseAffinity::kMaxImages);
  EXPECT_EQ(a.WorkerFor("golang"), "");
  EXPECT_EQ(a.WorkerFor("debian"), "w3");
  a.Ran("one-more", "w");
  EXPECT_EQ(a.WorkerFor("debian"), "");
  EXPECT_EQ(a.size(), BaseAffinity::kMaxImages);
}

// Workers by platform: "amd" runs linux/amd64 natively and emulates
// linux/arm64; "arm" runs linux/arm64 natively; "old" only linux/amd64.
class PlatformQueueTest : public StageQueueTest {
 protected:
  void PushFor(const std::string& build, const std::string& platform,
               Clock::time_point at) {
    queued_[build + "/0"] = at;
    queue_.Push({build, 0, "", platform, "", ""});
  }
  std::optional<StageQueue::Entry> PickAs(const std::string& worker,
                                          Clock::time_point now, bool* held,
                                          bool arm_alive = true) {
    using Fit = StageQueue::Fit;
    StageQueue::Asker asker;
    asker.worker = worker;
    asker.fit = [worker](const std::string& p) {
      if (worker == "amd") {
        return p == "linux/amd64"   ? Fit::kNative
               : p == "linux/arm64" ? Fit::kEmulated
                                    : Fit::kNo;
      }
      if (worker == "arm") return p == "linux/arm64" ? Fit::kNative : Fit::kNo;
      return p == "linux/amd64" ? Fit::kNative : Fit::kNo;
    };
    asker.native_elsewhere = [worker, arm_alive](const std::string& p) {
      return arm_alive && worker != "arm" && p == "linux/arm64";
    };
    return queue_.Pick(asker, now, QueuedAt(), held);
  }
};

TEST_F(PlatformQueueTest, AStageGoesOnlyToAWorkerThatRunsItsPlatform) {
  PushFor("arm-build", "linux/arm64", t0_);
  PushFor("riscv-build", "linux/riscv64", t0_);
  bool held = false;
  EXPECT_FALSE(PickAs("old", t0_, &held).has_value());
  EXPECT_FALSE(held);
  auto got = PickAs("arm", t0_, &held);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->build, "arm-build");
  // Nobody runs riscv64: it stays queued, blocking no one.
  PushFor("amd-build", "linux/amd64", t0_);
  got = PickAs("old", t0_, &held);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->build, "amd-build");
  EXPECT_EQ(queue_.size(), 1u);
}

TEST_F(PlatformQueueTest, NativeWorkersComeBeforeEmulatingOnes) {
  PushFor("arm-build", "linux/arm64", t0_);
  bool held = false;
  // The emulating worker waits while a native one lives...
  EXPECT_FALSE(PickAs("amd", t0_, &held).has_value());
  EXPECT_TRUE(held);
  // ...and takes the stage after the grace, or at once when none lives.
  held = false;
  auto late = PickAs("amd", t0_ + StageQueue::kEmulationGrace, &held);
  ASSERT_TRUE(late.has_value());
  PushFor("arm-2", "linux/arm64", t0_);
  EXPECT_TRUE(PickAs("amd", t0_, &held, /*arm_alive=*/false).has_value());
}

}  // namespace
}  // namespace stagefarm::scheduler
