#include "cli/vcs.h"

#include <stdlib.h>

#include <fstream>

#include "common/fs_util.h"
#include "gtest/gtest.h"

namespace stagefarm::cli {
namespace {

class VcsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vcs-test.XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  void TearDown() override { (void)RemoveAll(root_); }
  void Write(const std::string& rel, const std::string& text) {
    std::string path = root_ + "/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    std::ofstream(path) << text;
  }
  std::string root_;
};

const char kCommit[] = "0123456789abcdef0123456789abcdef01234567";

TEST_F(VcsTest, ReadsOriginAndHeadFromASubdirectory) {
  Write("repo/.git/HEAD", "ref: refs/heads/main\n");
  Write("repo/.git/refs/heads/main", std::string(kCommit) + "\n");
  Write("repo/.git/config",
        "[core]\n\tbare = false\n[remote \"upstream\"]\n\turl = "
        "https://example.com/other.git\n[remote \"origin\"]\n\turl = "
        "https://user:secret@example.com/org/repo.git\n");
  Write("repo/app/Dockerfile", "FROM scratch\n");
  VcsInfo info = ReadVcsInfo(root_ + "/repo/app");
  EXPECT_EQ(info.source, "https://example.com/org/repo.git");  // no secret
  EXPECT_EQ(info.revision, kCommit);
}

TEST_F(VcsTest, PackedRefsAndDetachedHeadAndWorktrees) {
  Write("repo/.git/HEAD", "ref: refs/heads/dev\n");
  Write("repo/.git/packed-refs", std::string("# pack-refs with: peeled\n") +
                                     kCommit + " refs/heads/dev\n");
  EXPECT_EQ(ReadVcsInfo(root_ + "/repo").revision, kCommit);
  Write("repo/.git/worktrees/wt/HEAD", std::string(kCommit) + "\n");
  Write("repo/.git/worktrees/wt/commondir", "../..\n");
  Write("wt/.git", "gitdir: " + root_ + "/repo/.git/worktrees/wt\n");
  Write("repo/.git/config", "[remote \"origin\"]\n\turl = git@host:org/x\n");
  VcsInfo wt = ReadVcsInfo(root_ + "/wt");
  EXPECT_EQ(wt.revision, kCommit);
  EXPECT_EQ(wt.source, "git@host:org/x");
}

TEST_F(VcsTest, NotARepository) {
  Write("plain/Dockerfile", "FROM scratch\n");
  VcsInfo info = ReadVcsInfo(root_ + "/plain");
  EXPECT_EQ(info.source, "");
  EXPECT_EQ(info.revision, "");
  EXPECT_EQ(StripCredentials("https://h/x"), "https://h/x");
  EXPECT_EQ(StripCredentials("ssh://git@h/x"), "ssh://h/x");
}

}  // namespace
}  // namespace stagefarm::cli
