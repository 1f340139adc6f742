#include "common/fs_util.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/status_code.h"

namespace stagefarm {
namespace {

using ::testing::HasSubstr;

class FsUtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/fs_util.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    // Undo read-only modes so remove_all can clean up even if a test failed.
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
         !ec && it != std::filesystem::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        chmod(it->path().c_str(), 0755);
      }
    }
    std::filesystem::remove_all(root_, ec);
  }
  std::string P(const std::string& rel) const {
    return absl::StrCat(root_, "/", rel);
  }
  void Mkdir(const std::string& rel) {
    ASSERT_EQ(mkdir(P(rel).c_str(), 0755), 0) << rel;
  }
  void Symlink(const std::string& target, const std::string& rel) {
    ASSERT_EQ(symlink(target.c_str(), P(rel).c_str()), 0) << rel;
  }
  void Touch(const std::string& rel) {
    ASSERT_TRUE(WriteStringToFile(P(rel), "x").ok()) << rel;
  }
  bool Exists(const std::string& path) const {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
  }

  std::string root_;
};

// --- ResolveInRoot ---

TEST_F(FsUtilTest, AbsoluteSymlinkResolvesUnderRoot) {
  Mkdir("real_etc");
  Symlink("/real_etc", "etc");
  auto r = ResolveInRoot(root_, "/etc/passwd", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("real_etc/passwd"));
}

TEST_F(FsUtilTest, AbsoluteSymlinkToHostPathStaysInRoot) {
  // "/etc" inside the root must not mean the host's /etc.
  Symlink("/etc", "link");
  auto r = ResolveInRoot(root_, "link/passwd", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("etc/passwd"));
}

TEST_F(FsUtilTest, DotDotClampsAtRoot) {
  auto r = ResolveInRoot(root_, "../../../a/../../b", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("b"));
}

TEST_F(FsUtilTest, DotDotInSymlinkTargetClampsAtRoot) {
  Mkdir("d");
  Symlink("../../../../../x", "d/up");
  auto r = ResolveInRoot(root_, "/d/up/y", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("x/y"));
}

TEST_F(FsUtilTest, RootItselfResolvesToRoot) {
  auto r = ResolveInRoot(root_, "/", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, root_);
  r = ResolveInRoot(root_, "..", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, root_);
}

TEST_F(FsUtilTest, FollowsARelativeLinkChain) {
  Mkdir("d1");
  Mkdir("d2");
  Mkdir("d2/real");
  Symlink("../d2/l2", "d1/l1");
  Symlink("real", "d2/l2");
  auto r = ResolveInRoot(root_, "d1/l1/file", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("d2/real/file"));
}

TEST_F(FsUtilTest, FollowLastFalseKeepsTheLastSymlink) {
  Mkdir("dir");
  Symlink("/dir", "link");
  auto kept = ResolveInRoot(root_, "link", false);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, P("link"));
  auto followed = ResolveInRoot(root_, "link", true);
  ASSERT_TRUE(followed.ok()) << followed.status();
  EXPECT_EQ(*followed, P("dir"));
}

TEST_F(FsUtilTest, FollowLastFalseStillFollowsEarlierSymlinks) {
  Mkdir("dir");
  Symlink("/dir", "link");
  Symlink("target", "dir/last");
  auto r = ResolveInRoot(root_, "link/last", false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("dir/last"));
}

TEST_F(FsUtilTest, SymlinkLoopIsAnError) {
  Symlink("b", "a");
  Symlink("a", "b");
  auto r = ResolveInRoot(root_, "a/x", true);
  EXPECT_EQ(testing::CodeOf(r), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("symbolic links"));
}

TEST_F(FsUtilTest, SelfLoopIsAnError) {
  Symlink("/self", "self");
  EXPECT_EQ(testing::CodeOf(ResolveInRoot(root_, "self", true)),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FsUtilTest, NonexistentComponentsAreKept) {
  Mkdir("a");
  auto r = ResolveInRoot(root_, "/a/missing/./deeper/", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("a/missing/deeper"));
}

TEST_F(FsUtilTest, DotDotAfterASymlinkIsRelativeToItsTarget) {
  Mkdir("x");
  Mkdir("x/y");
  Symlink("/x/y", "l");
  // As in the kernel: l/.. is the parent of l's target, /x.
  auto r = ResolveInRoot(root_, "l/../z", true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, P("x/z"));
}

// --- CleanAbsolute ---

TEST(CleanAbsoluteTest, Cases) {
  EXPECT_EQ(CleanAbsolute(""), "/");
  EXPECT_EQ(CleanAbsolute("/"), "/");
  EXPECT_EQ(CleanAbsolute("a/b"), "/a/b");
  EXPECT_EQ(CleanAbsolute("//a///b/"), "/a/b");
  EXPECT_EQ(CleanAbsolute("./a/./b/."), "/a/b");
  EXPECT_EQ(CleanAbsolute("/a/b/../c"), "/a/c");
  EXPECT_EQ(CleanAbsolute("../../a"), "/a");
  EXPECT_EQ(CleanAbsolute("/a/.."), "/");
  EXPECT_EQ(CleanAbsolute("..."), "/...");
}

// --- RemoveAll ---

TEST_F(FsUtilTest, RemoveAllRemovesTreeWithReadOnlyDir) {
  Mkdir("t");
  Mkdir("t/ro");
  Mkdir("t/ro/inner");
  Touch("t/ro/f");
  Touch("t/ro/inner/g");
  Symlink("/nonexistent", "t/ro/dangling");
  ASSERT_EQ(chmod(P("t/ro/inner").c_str(), 0555), 0);
  ASSERT_EQ(chmod(P("t/ro").c_str(), 0555), 0);
  absl::Status s = RemoveAll(P("t"));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_FALSE(Exists(P("t")));
}

// Root's capabilities ignore directory permissions; an owner without them
// does not. RemoveAll runs in a child that gives up every capability.
TEST_F(FsUtilTest, RemoveAllAsTheOwnerOpensReadOnlyAndUnreadableDirs) {
  Mkdir("t");
  Mkdir("t/ro");
  Mkdir("t/ro/locked");
  Mkdir("t/ro/locked/deeper");
  Touch("t/ro/f");
  Touch("t/ro/locked/deeper/g");
  ASSERT_EQ(chmod(P("t/ro/locked/deeper").c_str(), 0), 0);
  ASSERT_EQ(chmod(P("t/ro/locked").c_str(), 0), 0);
  ASSERT_EQ(chmod(P("t/ro").c_str(), 0555), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[2] = {};
    if (syscall(SYS_capset, &header, none) != 0) _exit(2);
    _exit(RemoveAll(P("t")).ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_FALSE(Exists(P("t")));
}

TEST_F(FsUtilTest, RemoveAllDoesNotFollowSymlinks) {
  Mkdir("keep");
  Touch("keep/f");
  Mkdir("t");
  Symlink(P("keep"), "t/link");
  ASSERT_TRUE(RemoveAll(P("t")).ok());
  EXPECT_FALSE(Exists(P("t")));
  EXPECT_TRUE(Exists(P("keep/f")));
}

TEST_F(FsUtilTest, RemoveAllOfASymlinkRemovesOnlyTheLink) {
  Mkdir("keep");
  Touch("keep/f");
  Symlink(P("keep"), "link");
  ASSERT_TRUE(RemoveAll(P("link")).ok());
  EXPECT_FALSE(Exists(P("link")));
  EXPECT_TRUE(Exists(P("keep/f")));
}

TEST_F(FsUtilTest, RemoveAllOfAMissingPathIsOk) {
  EXPECT_TRUE(RemoveAll(P("does/not/exist")).ok());
}

TEST_F(FsUtilTest, RemoveAllRemovesAFile) {
  Touch("f");
  ASSERT_TRUE(RemoveAll(P("f")).ok());
  EXPECT_FALSE(Exists(P("f")));
}

// --- MakeDirs ---

TEST_F(FsUtilTest, MakeDirsCreatesNestedDirsWithMode) {
  mode_t old = umask(0);
  absl::Status s = MakeDirs(P("a/b/c"), 0750);
  umask(old);
  ASSERT_TRUE(s.ok()) << s;
  struct stat st;
  ASSERT_EQ(stat(P("a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // Existing directories are fine.
  EXPECT_TRUE(MakeDirs(P("a/b/c")).ok());
}

TEST_F(FsUtilTest, MakeDirsFailsThroughAFile) {
  Touch("f");
  EXPECT_FALSE(MakeDirs(P("f/sub")).ok());
}

// --- MakeTempDir ---

TEST_F(FsUtilTest, MakeTempDirIsUnique) {
  auto a = MakeTempDir(root_, "pre-");
  auto b = MakeTempDir(root_, "pre-");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(absl::StartsWith(*a, P("pre-")));
  struct stat st;
  ASSERT_EQ(stat(a->c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(FsUtilTest, MakeTempDirInMissingParentFails) {
  auto a = MakeTempDir(P("missing"), "x");
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound);
}

// --- Read/WriteStringToFile ---

TEST_F(FsUtilTest, WriteThenReadRoundTripsBinaryData) {
  std::string data("a\0b\xff", 4);
  ASSERT_TRUE(WriteStringToFile(P("f"), data, 0600).ok());
  auto r = ReadFileToString(P("f"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, data);
  ASSERT_TRUE(WriteStringToFile(P("f"), "short").ok());
  EXPECT_EQ(*ReadFileToString(P("f")), "short");
}

TEST_F(FsUtilTest, ReadMissingFileIsNotFound) {
  EXPECT_EQ(ReadFileToString(P("nope")).status().code(),
            absl::StatusCode::kNotFound);
}

// --- FileLock ---

TEST_F(FsUtilTest, FileLockExcludesAndReleases) {
  ASSERT_TRUE(MakeDirs(P("cache")).ok());
  {
    FileLock first(P("cache"), FileLock::Mode::kWait);
    ASSERT_TRUE(first.held());
    // flock locks belong to the open file: a second open is refused.
    FileLock second(P("cache"), FileLock::Mode::kTry);
    EXPECT_FALSE(second.held());
  }
  FileLock again(P("cache"), FileLock::Mode::kTry);
  EXPECT_TRUE(again.held());
}

TEST_F(FsUtilTest, FileLockCreatesAMissingFile) {
  FileLock lock(P("index.lock"), FileLock::Mode::kWait);
  EXPECT_TRUE(lock.held());
  EXPECT_TRUE(ReadFileToString(P("index.lock")).ok());
  FileLock other(P("index.lock"), FileLock::Mode::kTry);
  EXPECT_FALSE(other.held());
}

}  // namespace
}  // namespace stagefarm
