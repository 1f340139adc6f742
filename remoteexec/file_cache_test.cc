// FileCache against the real stagefarm-cas: input trees written with files
// hard-linked from the cache, nothing fetched the second time, bad trees
// refused before anything is written, the bound kept.
#include "remoteexec/file_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "common/fs_util.h"
#include "common/grpc_status.h"
#include "tests/cas_process.h"
#include "tests/status_code.h"

namespace stagefarm::remoteexec {
namespace {

class FileCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("file-cache");
    auto cas = CasProcess::Start(CasBinaryPath(), dir_ + "/cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_.emplace(std::move(*cas));
    client_ = std::make_unique<CasClient>(
        CasClient::Connect(cas_->address()).channels[0], "");
  }
  void TearDown() override {
    client_.reset();
    cas_.reset();
    std::filesystem::remove_all(dir_);
  }
  Digest Put(const std::string& bytes) {
    EXPECT_TRUE(client_->WriteString(bytes).ok());
    return Digest::Of(bytes);
  }
  static reapi::FileNode* AddFile(reapi::Directory* d, const std::string& name,
                                  const Digest& digest, bool x = false) {
    reapi::FileNode* f = d->add_files();
    f->set_name(name);
    digest.ToProto(f->mutable_digest());
    f->set_is_executable(x);
    return f;
  }
  Digest PutDir(const reapi::Directory& d) {
    return Put(d.SerializeAsString());
  }
  std::string dir_;
  std::optional<CasProcess> cas_;
  std::unique_ptr<CasClient> client_;
};

TEST_F(FileCacheTest, LinksFilesAndFetchesNothingTheSecondTime) {
  const std::string big(3 << 20, 'b');  // streamed, not batched
  Digest a = Put("alpha\n"), b = Put(big), tool = Put("#!/bin/sh\n");
  reapi::Directory sub;
  AddFile(&sub, "b.bin", b);
  reapi::Directory root;
  AddFile(&root, "a.txt", a);
  AddFile(&root, "run", tool, /*x=*/true);
  AddFile(&root, "a-again.txt", a);
  reapi::SymlinkNode* l = root.add_symlinks();
  l->set_name("link");
  l->set_target("a.txt");
  reapi::DirectoryNode* s = root.add_directories();
  s->set_name("sub");
  PutDir(sub).ToProto(s->mutable_digest());
  Digest r = PutDir(root);

  auto cache = FileCache::Open(dir_ + "/files", int64_t{1} << 30);
  ASSERT_TRUE(cache.ok()) << cache.status();
  FileCache::Stats first;
  ASSERT_TRUE(
      (*cache)
          ->Materialize(client_.get(), r, dir_ + "/one", 4242, 4343, &first)
          .ok());
  EXPECT_EQ(first.files, 4);
  EXPECT_EQ(first.files_fetched, 3);  // a.txt once, b.bin, run
  EXPECT_EQ(*ReadFileToString(dir_ + "/one/a.txt"), "alpha\n");
  EXPECT_EQ(*ReadFileToString(dir_ + "/one/sub/b.bin"), big);
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/one/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  ASSERT_EQ(stat((dir_ + "/one/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_GE(st.st_nlink, 3u);   // the cache's and two names here
  EXPECT_NE(st.st_uid, 4242u);  // files stay the worker's
  ASSERT_EQ(stat((dir_ + "/one/sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 4242u);  // directories are the action's
  EXPECT_EQ(st.st_gid, 4343u);
  char target[16] = {0};
  ASSERT_GT(readlink((dir_ + "/one/link").c_str(), target, sizeof(target)), 0);
  EXPECT_STREQ(target, "a.txt");

  FileCache::Stats second;
  ASSERT_TRUE(
      (*cache)
          ->Materialize(client_.get(), r, dir_ + "/two", 4242, 4343, &second)
          .ok());
  EXPECT_EQ(second.files, 4);
  EXPECT_EQ(second.files_fetched, 0);
  EXPECT_EQ(second.bytes_fetched, 0);
  struct stat one, two;
  ASSERT_EQ(stat((dir_ + "/one/sub/b.bin").c_str(), &one), 0);
  ASSERT_EQ(stat((dir_ + "/two/sub/b.bin").c_str(), &two), 0);
  EXPECT_EQ(one.st_ino, two.st_ino);  // the same file: nothing copied

  // A new cache on the same directory knows what is there.
  auto again = FileCache::Open(dir_ + "/files", int64_t{1} << 30);
  ASSERT_TRUE(again.ok());
  FileCache::Stats third;
  ASSERT_TRUE(
      (*again)
          ->Materialize(client_.get(), r, dir_ + "/three", 4242, 4343, &third)
          .ok());
  EXPECT_EQ(third.files_fetched, 0);
  EXPECT_EQ((*again)->bytes(), 6 + (3 << 20) + 10);
}

TEST_F(FileCacheTest, BadTreesAreRefusedBeforeAnythingIsWritten) {
  Digest a = Put("x");
  auto cache = FileCache::Open(dir_ + "/files", int64_t{1} << 30);
  ASSERT_TRUE(cache.ok());
  FileCache::Stats stats;
  for (const char* bad : {"..", ".", "a/b", ""}) {
    reapi::Directory root;
    AddFile(&root, bad, a);
    Digest r = PutDir(root);
    absl::Status s = (*cache)->Materialize(client_.get(), r, dir_ + "/out",
                                           4242, 4242, &stats);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/out")) << bad;
  }
  reapi::Directory twice;
  AddFile(&twice, "same", a);
  AddFile(&twice, "same", a);
  EXPECT_EQ((*cache)
                ->Materialize(client_.get(), PutDir(twice), dir_ + "/out", 4242,
                              4242, &stats)
                .code(),
            absl::StatusCode::kInvalidArgument);
  reapi::Directory missing;
  Digest gone = Digest::Of("never stored");
  AddFile(&missing, "gone", gone);
  absl::Status s = (*cache)->Materialize(client_.get(), PutDir(missing),
                                         dir_ + "/out", 4242, 4242, &stats);
  // REAPI: FAILED_PRECONDITION naming the missing blob, so the client
  // uploads it and asks again.
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(MissingBlobsOf(s), std::vector<Digest>{gone});
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/out"));
}

TEST_F(FileCacheTest, TrimKeepsTheBoundAndTheMostRecent) {
  auto cache = FileCache::Open(dir_ + "/files", 250);
  ASSERT_TRUE(cache.ok());
  FileCache::Stats stats;
  std::vector<Digest> roots;
  for (char c : {'a', 'b', 'c'}) {
    reapi::Directory root;
    AddFile(&root, "f", Put(std::string(100, c)));
    roots.push_back(PutDir(root));
    ASSERT_TRUE((*cache)
                    ->Materialize(client_.get(), roots.back(),
                                  dir_ + "/out-" + c, 1, 1, &stats)
                    .ok());
    (*cache)->Trim();
  }
  EXPECT_LE((*cache)->bytes(), 250);
  // The most recent is still there, the oldest is fetched again.
  FileCache::Stats recent, oldest;
  ASSERT_TRUE(
      (*cache)
          ->Materialize(client_.get(), roots[2], dir_ + "/re-c", 1, 1, &recent)
          .ok());
  EXPECT_EQ(recent.files_fetched, 0);
  ASSERT_TRUE(
      (*cache)
          ->Materialize(client_.get(), roots[0], dir_ + "/re-a", 1, 1, &oldest)
          .ok());
  EXPECT_EQ(oldest.files_fetched, 1);
  EXPECT_EQ(*ReadFileToString(dir_ + "/out-a/f"), std::string(100, 'a'));
}

}  // namespace
}  // namespace stagefarm::remoteexec
