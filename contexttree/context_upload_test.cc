// Context upload: the Merkle tree (what it holds and what it ignores), the
// stat cache, and uploads against the real stagefarm-cas.
#include "contexttree/context_upload.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "tests/cas_process.h"

namespace stagefarm::contexttree {
namespace {

namespace fs = std::filesystem;

void Write(const std::string& path, const std::string& content,
           mode_t mode = 0644) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
  chmod(path.c_str(), mode);
}

void SetMtime(const std::string& path, time_t t) {
  struct timeval tv[2] = {{t, 0}, {t, 0}};
  lutimes(path.c_str(), tv);
}

ContextTree Tree(const std::string& dir,
                 const dockerfile::DockerignoreMatcher* ignore = nullptr,
                 StatCache* cache = nullptr) {
  auto tree = BuildContextTree(dir, ignore, cache, /*racy_window_ns=*/0);
  EXPECT_TRUE(tree.ok()) << tree.status();
  return tree.ok() ? *std::move(tree) : ContextTree();
}

// The names at the top of the tree's root Directory.
std::vector<std::string> RootNames(const ContextTree& tree) {
  std::vector<std::string> names;
  for (const auto& [d, bytes] : tree.directories) {
    if (d != tree.root) continue;
    reapi::Directory dir;
    EXPECT_TRUE(dir.ParseFromString(bytes));
    for (const auto& f : dir.files()) names.push_back("f:" + f.name());
    for (const auto& s : dir.directories()) names.push_back("d:" + s.name());
    for (const auto& l : dir.symlinks())
      names.push_back("l:" + l.name() + "->" + l.target());
  }
  return names;
}

class ContextTreeTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = MakeTempDir("context"); }
  void TearDown() override { fs::remove_all(root_); }
  std::string Make(const std::string& name) {
    std::string d = root_ + "/" + name;
    Write(d + "/Dockerfile", "FROM scratch\nCOPY . /\n");
    Write(d + "/src/main.go", "package main\n");
    Write(d + "/src/run.sh", "#!/bin/sh\n", 0755);
    Write(d + "/docs/a.txt", "a\n");
    EXPECT_EQ(symlink("src/main.go", (d + "/link").c_str()), 0);
    return d;
  }
  std::string root_;
};

TEST_F(ContextTreeTest, SameContentSameRootWhateverPathOrTimes) {
  std::string one = Make("one");
  std::string two = Make("two");
  SetMtime(two + "/src/main.go", 1000000);
  SetMtime(two + "/src", 2000000);
  ContextTree a = Tree(one);
  ContextTree b = Tree(two);
  EXPECT_EQ(a.root, b.root);
  EXPECT_EQ(a.file_count, 4);
  EXPECT_EQ(a.dir_count, 3);
  EXPECT_EQ(a.symlink_count, 1);
  EXPECT_EQ(RootNames(a),
            (std::vector<std::string>{"f:Dockerfile", "d:docs", "d:src",
                                      "l:link->src/main.go"}));
  // Content, mode and link targets are part of the tree.
  Write(two + "/src/main.go", "package other\n");
  EXPECT_NE(Tree(two).root, a.root);
  Write(two + "/src/main.go", "package main\n");
  EXPECT_EQ(Tree(two).root, a.root);
  chmod((two + "/docs/a.txt").c_str(), 0600);
  EXPECT_NE(Tree(two).root, a.root);
  chmod((two + "/docs/a.txt").c_str(), 0644);
  chmod((two + "/docs").c_str(), 0700);
  EXPECT_NE(Tree(two).root, a.root);
  chmod((two + "/docs").c_str(), 0755);
  unlink((two + "/link").c_str());
  ASSERT_EQ(symlink("src/run.sh", (two + "/link").c_str()), 0);
  EXPECT_NE(Tree(two).root, a.root);
}

TEST_F(ContextTreeTest, DockerignoreAndSpecialFiles) {
  std::string d = Make("ctx");
  Write(d + "/build/out.o", "obj");
  Write(d + "/build/keep.txt", "keep");
  Write(d + "/secret.env", "x");
  ASSERT_EQ(mkfifo((d + "/pipe").c_str(), 0644), 0);
  auto ignore = dockerfile::DockerignoreMatcher::Create(
      {"build", "!build/keep.txt", "*.env", "docs"});
  ASSERT_TRUE(ignore.ok());
  ContextTree t = Tree(d, &*ignore);
  EXPECT_EQ(RootNames(t),
            (std::vector<std::string>{"f:Dockerfile", "d:build", "d:src",
                                      "l:link->src/main.go"}));
  EXPECT_EQ(t.file_count, 4);  // Dockerfile, build/keep.txt, src/*
  EXPECT_EQ(t.skipped_special, 1);
  // Without the exception the excluded directory disappears entirely.
  auto plain = dockerfile::DockerignoreMatcher::Create({"build", "*.env"});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(RootNames(Tree(d, &*plain)),
            (std::vector<std::string>{"f:Dockerfile", "d:docs", "d:src",
                                      "l:link->src/main.go"}));
}

TEST_F(ContextTreeTest, StatCacheSkipsUnchangedFilesAndSurvivesSaving) {
  std::string d = Make("ctx");
  std::string cache_file = root_ + "/cache";
  StatCache cache = StatCache::Load(cache_file);
  EXPECT_EQ(cache.size(), 0u);
  ContextTree first = Tree(d, nullptr, &cache);
  EXPECT_EQ(first.files_hashed, 4);
  ASSERT_TRUE(cache.Save(cache_file).ok());

  StatCache loaded = StatCache::Load(cache_file);
  EXPECT_EQ(loaded.size(), 4u);
  ContextTree second = Tree(d, nullptr, &loaded);
  EXPECT_EQ(second.files_hashed, 0);
  EXPECT_EQ(second.root, first.root);

  // A rewrite with the same size is noticed (mtime/ctime), and so is a
  // file replaced by another (inode).
  Write(d + "/src/main.go", "package mian\n");
  ContextTree third = Tree(d, nullptr, &loaded);
  EXPECT_EQ(third.files_hashed, 1);
  EXPECT_NE(third.root, first.root);
  Write(d + "/docs/b.txt", "a\n");
  fs::rename(d + "/docs/b.txt", d + "/docs/a.txt");
  EXPECT_EQ(Tree(d, nullptr, &loaded).files_hashed, 1);

  // Files changed within the racy window are hashed but not remembered.
  StatCache racy;
  ASSERT_TRUE(
      BuildContextTree(d, nullptr, &racy, int64_t{3600} * 1000000000).ok());
  EXPECT_EQ(racy.size(), 0u);

  // A damaged cache file is an empty cache, not an error.
  std::ofstream(cache_file, std::ios::binary | std::ios::trunc)
      << "stagefarm.statcache.v1\n\x05garbage";
  EXPECT_EQ(StatCache::Load(cache_file).size(), 0u);
}

// Many tiny blobs (a context of a million small files sends ~176,000 in
// 3 MiB): every request stays within the server's item bound.
TEST(ContextUploadTest, TinyBlobsAreBatchedWithinTheServersItemLimit) {
  std::string root = MakeTempDir("tiny");
  auto cas = CasProcess::Start(CasBinaryPath(), root + "/cas");
  ASSERT_TRUE(cas.ok()) << cas.status();
  CasClient client(CasClient::Connect(cas->address()), "team-a");
  constexpr size_t kBlobs = 150000;
  size_t ok = 0, failed = 0;
  std::string first_error;
  BatchUploader up(&client, [&](size_t, const absl::Status& s, bool) {
    if (s.ok()) {
      ++ok;
    } else if (failed++ == 0) {
      first_error = s.ToString();
    }
  });
  std::vector<Digest> digests;
  for (size_t i = 0; i < kBlobs; ++i) {
    std::string blob = absl::StrCat("t", i);
    digests.push_back(Digest::Of(blob));
    up.Add(i, digests.back(), std::move(blob));
  }
  up.Flush();
  EXPECT_EQ(failed, 0u) << first_error;
  EXPECT_EQ(ok, kBlobs);
  auto missing = client.FindMissing(digests);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_TRUE(missing->empty());
}

// Against the real CAS: a context of 100,000 files is uploaded once; sent
// again unchanged it uploads nothing and reads no file; one changed file
// uploads that file and the Directory messages above it.
TEST(ContextUploadTest, UploadsOnlyWhatIsMissing) {
  std::string root = MakeTempDir("upload");
  auto cas = CasProcess::Start(CasBinaryPath(), root + "/cas");
  ASSERT_TRUE(cas.ok()) << cas.status();
  CasClient client(CasClient::Connect(cas->address()), "team-a");
  std::string ctx = root + "/ctx";
  // 100,000 files; a tenth under the sanitizers, which slow the walk and
  // the CAS (built with them too) about tenfold.
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kDirs = 100, kFiles = 100;
#else
  constexpr int kDirs = 100, kFiles = 1000;
#endif
  for (int i = 0; i < kDirs; ++i) {
    std::string dir = absl::StrCat(ctx, "/pkg", i, "/src");
    fs::create_directories(dir);
    for (int j = 0; j < kFiles; ++j) {
      std::ofstream(absl::StrCat(dir, "/f", j, ".txt"))
          << "file " << i << "/" << j << "\n";
    }
  }
  std::string big(3 << 20, 'z');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i);
  std::ofstream(ctx + "/big.bin", std::ios::binary) << big;

  StatCache cache;
  auto tree = BuildContextTree(ctx, nullptr, &cache, 0);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->file_count, kDirs * kFiles + 1);
  EXPECT_EQ(tree->files_hashed, kDirs * kFiles + 1);
  auto up = UploadMissing(*tree, &client);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->blobs_uploaded, static_cast<int64_t>(tree->files.size() +
                                                     tree->directories.size()));

  auto again = BuildContextTree(ctx, nullptr, &cache, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->files_hashed, 0);
  EXPECT_EQ(again->root, tree->root);
  auto up2 = UploadMissing(*again, &client);
  ASSERT_TRUE(up2.ok()) << up2.status();
  EXPECT_EQ(up2->blobs_uploaded, 0);
  EXPECT_EQ(up2->bytes_uploaded, 0);

  std::ofstream(ctx + "/pkg7/src/f3.txt") << "changed\n";
  auto third = BuildContextTree(ctx, nullptr, &cache, 0);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->files_hashed, 1);
  auto up3 = UploadMissing(*third, &client);
  ASSERT_TRUE(up3.ok()) << up3.status();
  // The file, and the Directories of pkg7/src, pkg7 and the root.
  EXPECT_EQ(up3->blobs_uploaded, 4);

  // Everything the root names is readable back from the CAS.
  auto root_dir = client.ReadString(third->root);
  ASSERT_TRUE(root_dir.ok()) << root_dir.status();
  reapi::Directory parsed;
  ASSERT_TRUE(parsed.ParseFromString(*root_dir));
  EXPECT_EQ(parsed.files_size(), 1);  // big.bin
  EXPECT_EQ(parsed.directories_size(), kDirs);
  auto big_back =
      client.ReadString(*Digest::FromProto(parsed.files(0).digest()));
  ASSERT_TRUE(big_back.ok());
  EXPECT_TRUE(*big_back == big);
  fs::remove_all(root);
}

}  // namespace
}  // namespace stagefarm::contexttree
