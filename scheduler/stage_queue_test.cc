#include "scheduler/stage_queue.h"

#include <map>

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
    queue_.Push({build, stage, preferred});
  }
  std::optional<StageQueue::Entry> Pick(const std::string& worker,
                                        Clock::time_point now, bool* held) {
    return queue_.Pick(
        worker, now,
        [this](const StageQueue::Entry& e) -> std::optional<Clock::time_point> {
          auto it = queued_.find(e.build + "/" + std::to_string(e.stage));
          if (it == queued_.end()) return std::nullopt;
          return it->second;
        },
        held);
  }
  StageQueue queue_;
  std::map<std::string, Clock::time_point> queued_;
  Clock::time_point t0_ = Clock::now();
};

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

}  // namespace
}  // namespace stagefarm::scheduler
