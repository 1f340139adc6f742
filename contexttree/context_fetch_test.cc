// Materializing a context tree: a round trip through
// contexttree/context_upload's tree gives back the same files, modes and links
// (the same root digest), and hostile trees are refused without writing outside
// the destination.
#include "contexttree/context_fetch.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "blobstore/memory_blob_store.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/fs_util.h"
#include "contexttree/context_upload.h"
#include "tests/cas_process.h"

namespace stagefarm::contexttree {
namespace {

namespace fs = std::filesystem;

void Write(const std::string& path, const std::string& content, mode_t mode) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
  chmod(path.c_str(), mode);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Stores what an upload would send.
void Store(const contexttree::ContextTree& tree, MemoryBlobStore* blobs) {
  for (const auto& [d, bytes] : tree.directories) {
    ASSERT_TRUE(blobs->Put("ns", bytes).ok());
  }
  for (const auto& [d, path] : tree.files) {
    ASSERT_TRUE(blobs->Put("ns", ReadAll(path)).ok());
  }
}

TEST(ContextFetchTest, RoundTripGivesTheSameTree) {
  std::string root = ::stagefarm::MakeTempDir("fetch");
  std::string src = root + "/src";
  Write(src + "/Dockerfile", "FROM scratch\n", 0644);
  Write(src + "/bin/tool", "#!/bin/sh\necho hi\n", 0755);
  Write(src + "/secret/key", "k", 0600);
  Write(src + "/empty", "", 0640);
  chmod((src + "/secret").c_str(), 0700);
  fs::create_directories(src + "/emptydir");
  ASSERT_EQ(symlink("bin/tool", (src + "/link").c_str()), 0);
  std::string big(2 << 20, 'b');
  for (size_t i = 0; i < big.size(); i += 999) big[i] = static_cast<char>(i);
  Write(src + "/data/big.bin", big, 0644);

  auto tree = contexttree::BuildContextTree(src, nullptr, nullptr, 0);
  ASSERT_TRUE(tree.ok()) << tree.status();
  MemoryBlobStore blobs;
  ASSERT_NO_FATAL_FAILURE(Store(*tree, &blobs));

  std::string dest = root + "/dest";
  absl::Status s = MaterializeTree(&blobs, "ns", tree->root, dest);
  ASSERT_TRUE(s.ok()) << s;
  auto again = contexttree::BuildContextTree(dest, nullptr, nullptr, 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->root, tree->root);
  EXPECT_EQ(ReadAll(dest + "/bin/tool"), "#!/bin/sh\necho hi\n");
  EXPECT_TRUE(ReadAll(dest + "/data/big.bin") == big);
  struct stat st;
  ASSERT_EQ(stat((dest + "/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((dest + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(fs::read_symlink(dest + "/link"), "bin/tool");
  EXPECT_TRUE(fs::is_directory(dest + "/emptydir"));

  // The destination must not exist yet.
  EXPECT_EQ(MaterializeTree(&blobs, "ns", tree->root, dest).code(),
            absl::StatusCode::kAlreadyExists);
  // A missing blob is NOT_FOUND and leaves nothing behind.
  MemoryBlobStore partial;
  for (const auto& [d, bytes] : tree->directories) {
    ASSERT_TRUE(partial.Put("ns", bytes).ok());
  }
  EXPECT_EQ(
      MaterializeTree(&partial, "ns", tree->root, root + "/partial").code(),
      absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(root + "/partial"));
  int leftovers = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.path().filename().string().rfind(".context-", 0) == 0) ++leftovers;
  }
  EXPECT_EQ(leftovers, 0);
  fs::remove_all(root);
}

TEST(ContextFetchTest, HostileNamesAreRefused) {
  std::string root = ::stagefarm::MakeTempDir("fetch-hostile");
  MemoryBlobStore blobs;
  ASSERT_TRUE(blobs.Put("ns", "evil").ok());
  for (const std::string& name :
       {std::string("../escape"), std::string(".."), std::string("a/b"),
        std::string(""), std::string("x\0y", 3)}) {
    SCOPED_TRACE(name);
    reapi::Directory dir;
    auto* f = dir.add_files();
    f->set_name(name);
    Digest::Of("evil").ToProto(f->mutable_digest());
    std::string bytes = dir.SerializeAsString();
    ASSERT_TRUE(blobs.Put("ns", bytes).ok());
    std::string dest = root + "/dest";
    EXPECT_EQ(MaterializeTree(&blobs, "ns", Digest::Of(bytes), dest).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(fs::exists(dest));
  }
  EXPECT_FALSE(fs::exists(root + "/escape"));
  // The same name twice, and an unreadable message.
  reapi::Directory twice;
  for (int i = 0; i < 2; ++i) {
    auto* l = twice.add_symlinks();
    l->set_name("same");
    l->set_target("x");
  }
  std::string bytes = twice.SerializeAsString();
  ASSERT_TRUE(blobs.Put("ns", bytes).ok());
  EXPECT_EQ(
      MaterializeTree(&blobs, "ns", Digest::Of(bytes), root + "/d2").code(),
      absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(blobs.Put("ns", "\xff\xff\xff").ok());
  EXPECT_EQ(
      MaterializeTree(&blobs, "ns", Digest::Of("\xff\xff\xff"), root + "/d3")
          .code(),
      absl::StatusCode::kInvalidArgument);
  fs::remove_all(root);
}

}  // namespace
}  // namespace stagefarm::contexttree
