#include "executor/memory_kill.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace stagefarm::executor {
namespace {

namespace fs = std::filesystem;

TEST(MemoryKillTest, CountsFromV1AndV2Texts) {
  EXPECT_EQ(OomKillCount("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"), 3);
  EXPECT_EQ(OomKillCount("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"
                         "oom_group_kill 0\n"),
            1);
  EXPECT_EQ(OomKillCount("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"), 0);
  // A kernel before 4.13: no counter.
  EXPECT_EQ(OomKillCount("oom_kill_disable 0\nunder_oom 0\n"), -1);
  EXPECT_EQ(OomKillCount(""), -1);
  EXPECT_EQ(OomKillCount("oom_kill x\n"), -1);
}

class CgroupDirsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string base =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/memory_kill.XXXXXX");
    ASSERT_NE(mkdtemp(base.data()), nullptr);
    dir_ = base;
    fs::create_directories(dir_ + "/memory/c");
    fs::create_directories(dir_ + "/unified/c");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void Write(const std::string& path, const std::string& text) {
    std::ofstream(dir_ + "/" + path) << text;
  }
  // runc's state.json naming the two directories, as runc 1.1 writes it
  // on a hybrid host.
  std::string State() {
    return absl::StrCat(R"({"id":"c","cgroup_paths":{"":")", dir_,
                        R"(/unified/c","memory":")", dir_,
                        R"(/memory/c","pids":"/nonexistent"}})");
  }
  std::string dir_;
};

TEST_F(CgroupDirsTest, V1OomControl) {
  Write("memory/c/memory.oom_control", "oom_kill_disable 0\noom_kill 0\n");
  Write("memory/c/memory.failcnt", "12\n");
  EXPECT_FALSE(KilledForMemory(State(), 137));
  Write("memory/c/memory.oom_control", "oom_kill_disable 0\noom_kill 1\n");
  EXPECT_TRUE(KilledForMemory(State(), 1));
}

TEST_F(CgroupDirsTest, V1FailcntOnlyWithoutTheCounterAndOnSigkill) {
  Write("memory/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
  Write("memory/c/memory.failcnt", "12\n");
  EXPECT_TRUE(KilledForMemory(State(), 137));
  EXPECT_FALSE(KilledForMemory(State(), 1));
  Write("memory/c/memory.failcnt", "0\n");
  EXPECT_FALSE(KilledForMemory(State(), 137));
}

TEST_F(CgroupDirsTest, V2MemoryEvents) {
  Write("unified/c/memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 0\n");
  EXPECT_FALSE(KilledForMemory(State(), 137));
  Write("unified/c/memory.events", "low 0\nhigh 0\nmax 9\noom 1\noom_kill 2\n");
  EXPECT_TRUE(KilledForMemory(State(), 137));
}

TEST_F(CgroupDirsTest, UnreadableOrOddStateIsNoKill) {
  EXPECT_FALSE(KilledForMemory(State(), 137));  // no counter files
  EXPECT_FALSE(KilledForMemory("not json", 137));
  EXPECT_FALSE(KilledForMemory(R"({"cgroup_paths": 7})", 137));
  EXPECT_FALSE(KilledForMemory(R"({"cgroup_paths": {"memory": 7}})", 137));
  EXPECT_FALSE(KilledForMemory("{}", 137));
}

TEST(DescribeExitTest, SaysMemoryWhenTheKernelKilledForIt) {
  ExecResult r;
  r.exit_code = 2;
  EXPECT_EQ(DescribeExit(r), "exit code: 2");
  r.exit_code = 137;
  r.memory_limit_bytes = 256 << 20;
  EXPECT_EQ(DescribeExit(r), "exit code: 137");
  r.killed_for_memory = true;
  EXPECT_EQ(DescribeExit(r),
            "exit code: 137: killed by the kernel: out of memory (the step's "
            "memory limit is 256 MiB)");
  r.memory_limit_bytes = 0;
  EXPECT_EQ(DescribeExit(r),
            "exit code: 137: killed by the kernel: out of memory");
}

}  // namespace
}  // namespace stagefarm::executor
