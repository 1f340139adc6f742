#include "engine/step_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "blobstore/memory_blob_store.h"

namespace stagefarm::engine {
namespace {

class StepLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/step_log_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { rmdir(dir_.c_str()); }

  // A clock the test moves.
  StepLog::Clock::time_point now_{};
  std::function<StepLog::Clock::time_point()> Clock() {
    return [this] { return now_; };
  }
  std::string dir_;
  std::string live_;
  std::function<void(std::string)> Live() {
    return [this](std::string s) { live_ += s; };
  }
};

TEST_F(StepLogTest, SmallOutputStreamsEverythingAndKeepsNoBlob) {
  MemoryBlobStore blobs;
  StepLog log(LogLimits{}, dir_, Live(), Clock());
  std::string binary("a\0b\xff\xfe\r\x1b[31mred\n", 14);
  log.Write(binary);
  EXPECT_EQ(live_, binary);  // bytes pass through untouched
  EXPECT_FALSE(log.clipped());
  EXPECT_EQ(log.Note("hint"), "");
  auto d = log.Finish(&blobs, "");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->has_value());
}

TEST_F(StepLogTest, ClipsLiveOutputAndKeepsTheWholeOutputAsABlob) {
  MemoryBlobStore blobs;
  LogLimits limits;
  limits.live_bytes = 1000;
  limits.rate_bytes_per_second = 0;
  StepLog log(limits, dir_, Live(), Clock());
  std::string all;
  for (int i = 0; i < 100; ++i) {
    std::string chunk(97, static_cast<char>('a' + i % 26));
    chunk += '\n';
    all += chunk;
    log.Write(chunk);
  }
  EXPECT_TRUE(log.clipped());
  EXPECT_EQ(log.live_bytes(), 1000);
  EXPECT_EQ(log.total_bytes(), 9800);
  EXPECT_EQ(live_.substr(0, 1000), all.substr(0, 1000));
  EXPECT_NE(live_.find("[output clipped"), std::string::npos);
  EXPECT_NE(log.Note("see X").find("1000 B of 9.6 KiB shown live; see X"),
            std::string::npos)
      << log.Note("see X");
  auto d = log.Finish(&blobs, "ns");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->has_value());
  // The end of the output (where errors are) is streamed after all.
  EXPECT_NE(live_.find("[output clipped; its last 4.0 KiB:]\n" +
                       all.substr(all.size() - 4096)),
            std::string::npos);
  auto got = blobs.Get("ns", **d);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, all);
}

TEST_F(StepLogTest, RateLimitLeavesOutBurstsAndSaysHowMuch) {
  MemoryBlobStore blobs;
  LogLimits limits;
  limits.rate_bytes_per_second = 100;
  StepLog log(limits, dir_, Live(), Clock());
  log.Write(std::string(80, 'x'));  // within the first second's 100
  log.Write(std::string(80, 'y'));  // over: left out
  EXPECT_EQ(live_, std::string(80, 'x'));
  log.Write("w");  // 20 bytes of room, but not a quarter second's worth
  now_ += std::chrono::seconds(1);
  log.Write("z\n");
  EXPECT_NE(live_.find("[81 B of output left out of the live log"),
            std::string::npos)
      << live_;
  EXPECT_EQ(live_.substr(live_.size() - 2), "z\n");
  EXPECT_TRUE(log.clipped());
  auto d = log.Finish(&blobs, "");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ((*d)->size(), 163);
}

TEST_F(StepLogTest, KeepBoundIsSaid) {
  MemoryBlobStore blobs;
  LogLimits limits;
  limits.live_bytes = 10;
  limits.keep_bytes = 50;
  limits.rate_bytes_per_second = 0;
  StepLog log(limits, dir_, Live(), Clock());
  for (int i = 0; i < 10; ++i) log.Write(std::string(20, 'k'));
  EXPECT_NE(log.Note("").find("only the first 50 B of the output are kept"),
            std::string::npos)
      << log.Note("");
  auto d = log.Finish(&blobs, "");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ((*d)->size(), 50);
}

TEST_F(StepLogTest, UnwritableScratchDirStillStreams) {
  MemoryBlobStore blobs;
  LogLimits limits;
  limits.live_bytes = 4;
  limits.rate_bytes_per_second = 0;
  StepLog log(limits, dir_ + "/missing", Live(), Clock());
  log.Write("abcdefgh");
  EXPECT_EQ(live_.substr(0, 4), "abcd");
  EXPECT_NE(log.Note("").find("the full output cannot be kept"),
            std::string::npos);
  auto d = log.Finish(&blobs, "");
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->has_value());
}

}  // namespace
}  // namespace stagefarm::engine
