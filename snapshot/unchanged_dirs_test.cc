#include "snapshot/unchanged_dirs.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "archives/layer_tar.h"
#include "common/fs_util.h"
#include "snapshot/snapshots.h"

namespace stagefarm::snapshot {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Every path below `dir`, relative, sorted.
std::vector<std::string> Tree(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    out.push_back(std::filesystem::relative(e.path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void MakeOpaque(const std::string& dir) {
  std::string name = archives::OverlayXattrPrefix() + "opaque";
  ASSERT_EQ(lsetxattr(dir.c_str(), name.c_str(), "y", 1, 0), 0) << dir;
}

// Needs root: trusted.* xattrs, whiteouts and overlayfs mounts.
class UnchangedDirsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/unchanged.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    bottom_ = dir_ + "/bottom";
    top_ = dir_ + "/top";
    upper_ = dir_ + "/upper";
    for (const std::string& d : {bottom_, top_, upper_}) {
      ASSERT_TRUE(MakeDirs(d, 0755).ok());
    }
    // bottom: etc/ (with a file), etc/ssl/, var/ (0700), gone/, o/sub/.
    ASSERT_TRUE(MakeDirs(bottom_ + "/etc/ssl", 0755).ok());
    ASSERT_TRUE(WriteStringToFile(bottom_ + "/etc/passwd", "root").ok());
    ASSERT_TRUE(MakeDirs(bottom_ + "/var", 0700).ok());
    ASSERT_EQ(chmod((bottom_ + "/var").c_str(), 0700), 0);
    ASSERT_TRUE(MakeDirs(bottom_ + "/gone", 0755).ok());
    ASSERT_TRUE(MakeDirs(bottom_ + "/o/sub", 0755).ok());
    // top: gone/ deleted (a whiteout), o/ made anew (opaque, no sub/).
    ASSERT_EQ(mknod((top_ + "/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
    ASSERT_TRUE(MakeDirs(top_ + "/o", 0755).ok());
    MakeOpaque(top_ + "/o");
    lowers_ = {bottom_, top_};
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A directory in the upper dir as overlayfs copies it up: the same mode
  // and owner as below.
  void CopyUp(const std::string& rel, mode_t mode = 0755) {
    ASSERT_TRUE(MakeDirs(upper_ + "/" + rel, mode).ok());
    ASSERT_EQ(chmod((upper_ + "/" + rel).c_str(), mode), 0);
  }

  std::string dir_, bottom_, top_, upper_;
  std::vector<std::string> lowers_;
};

TEST_F(UnchangedDirsTest, EmptyCopiesLikeTheirLowerGo) {
  CopyUp("etc");
  CopyUp("etc/ssl");
  CopyUp("var", 0700);
  RemoveUnchangedDirs(upper_, lowers_);
  EXPECT_THAT(Tree(upper_), IsEmpty());
}

TEST_F(UnchangedDirsTest, AChangedModeOrOwnerStays) {
  CopyUp("etc", 0700);
  CopyUp("var", 0755);
  CopyUp("etc/ssl");
  ASSERT_EQ(chown((upper_ + "/etc/ssl").c_str(), 1000, 1000), 0);
  RemoveUnchangedDirs(upper_, lowers_);
  EXPECT_THAT(Tree(upper_), ElementsAre("etc", "etc/ssl", "var"));
}

TEST_F(UnchangedDirsTest, AChangedXattrStays) {
  CopyUp("etc");
  ASSERT_EQ(lsetxattr((upper_ + "/etc").c_str(), "trusted.note", "1", 1, 0), 0);
  RemoveUnchangedDirs(upper_, lowers_);
  EXPECT_THAT(Tree(upper_), ElementsAre("etc"));
}

TEST_F(UnchangedDirsTest, DirectoriesWithContentStay) {
  CopyUp("etc");
  CopyUp("etc/ssl");
  ASSERT_TRUE(WriteStringToFile(upper_ + "/etc/hosts", "x").ok());
  RemoveUnchangedDirs(upper_, lowers_);
  // ssl/ is an unchanged copy beside a change: it goes, etc/ holds hosts.
  EXPECT_THAT(Tree(upper_), ElementsAre("etc", "etc/hosts"));
}

TEST_F(UnchangedDirsTest, NewDirectoriesStay) {
  CopyUp("new");
  CopyUp("etc");
  CopyUp("etc/new");
  // gone/ is whited out above its lower copy, o/sub hidden by opaque o/.
  CopyUp("gone");
  CopyUp("o");
  CopyUp("o/sub");
  RemoveUnchangedDirs(upper_, lowers_);
  EXPECT_THAT(Tree(upper_),
              ElementsAre("etc", "etc/new", "gone", "new", "o", "o/sub"));
}

TEST_F(UnchangedDirsTest, OpaqueDirectoriesStay) {
  // rm -rf /etc/ssl; mkdir /etc/ssl: emptied, a change though it is empty.
  CopyUp("etc");
  CopyUp("etc/ssl");
  MakeOpaque(upper_ + "/etc/ssl");
  RemoveUnchangedDirs(upper_, lowers_);
  EXPECT_THAT(Tree(upper_), ElementsAre("etc", "etc/ssl"));
}

TEST_F(UnchangedDirsTest, ACopyUpByTheKernelIsUndone) {
  // What a RUN's mount stubs leave: a file made under etc/ and removed.
  std::string work = dir_ + "/work", target = dir_ + "/mnt";
  std::string empty = dir_ + "/empty";
  for (const std::string& d : {work, target, empty}) {
    ASSERT_TRUE(MakeDirs(d, 0755).ok());
  }
  {
    auto mount = OverlayMount::Mount(lowers_, upper_, work, target, empty);
    ASSERT_TRUE(mount.ok()) << mount.status();
    ASSERT_TRUE(WriteStringToFile(target + "/etc/ssl/stub", "").ok());
    ASSERT_EQ(unlink((target + "/etc/ssl/stub").c_str()), 0);
    ASSERT_TRUE((*mount)->Unmount().ok());
  }
  ASSERT_THAT(Tree(upper_), ElementsAre("etc", "etc/ssl"));
  RemoveUnchangedDirs(upper_, lowers_);
  EXPECT_THAT(Tree(upper_), IsEmpty());
  auto layer =
      archives::WriteLayer(upper_, archives::LayerOptions{}, dir_ + "/layer");
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->entries, 0);
}

}  // namespace
}  // namespace stagefarm::snapshot
