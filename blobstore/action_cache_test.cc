#include "blobstore/action_cache.h"

#include <gtest/gtest.h>

#include "blobstore/memory_blob_store.h"

namespace stagefarm {
namespace {

class ActionCacheTest : public ::testing::Test {
 protected:
  ActionCacheTest() : cache_(&store_, &store_) {}
  MemoryBlobStore store_;
  ActionCache cache_;
  Digest action_ = Digest::Of("action");
};

TEST_F(ActionCacheTest, StoresAndServesCompleteResults) {
  ASSERT_TRUE(store_.Put("ns", "out").ok());
  reapi::ActionResult result;
  auto* file = result.add_output_files();
  file->set_path("a.o");
  Digest::Of("out").ToProto(file->mutable_digest());
  result.set_exit_code(0);
  ASSERT_TRUE(cache_.Update("ns", action_, result).ok());
  auto got = cache_.Get("ns", action_, {});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->output_files(0).path(), "a.o");
  EXPECT_EQ(cache_.Get("other", action_, {}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ActionCacheTest, UpdateRefusesResultsWithMissingOutputs) {
  reapi::ActionResult result;
  Digest::Of("never uploaded")
      .ToProto(result.add_output_files()->mutable_digest());
  absl::Status s = cache_.Update("ns", action_, result);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ActionCacheTest, UpdateNamesTheBadField) {
  reapi::ActionResult result;
  result.add_output_files();
  result.add_output_files()->mutable_digest()->set_hash("zz");
  absl::Status s = cache_.Update("ns", action_, result);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("output_files[0].digest"), std::string::npos) << s;
}

TEST_F(ActionCacheTest, EvictedOutputMakesTheEntryNotFound) {
  ASSERT_TRUE(store_.Put("ns", "stdout text").ok());
  ASSERT_TRUE(store_.Put("ns", "tree file").ok());
  reapi::Tree tree;
  Digest::Of("tree file")
      .ToProto(tree.mutable_root()->add_files()->mutable_digest());
  std::string tree_bytes = tree.SerializeAsString();
  ASSERT_TRUE(store_.Put("ns", tree_bytes).ok());
  reapi::ActionResult result;
  Digest::Of("stdout text").ToProto(result.mutable_stdout_digest());
  auto* dir = result.add_output_directories();
  dir->set_path("out");
  Digest::Of(tree_bytes).ToProto(dir->mutable_tree_digest());
  ASSERT_TRUE(cache_.Update("ns", action_, result).ok());

  InlineRequest inline_request;
  inline_request.stdout_raw = true;
  auto got = cache_.Get("ns", action_, inline_request);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->stdout_raw(), "stdout text");

  // A file inside the output tree disappears: the whole entry goes.
  store_.Evict(Digest::Of("tree file"));
  EXPECT_EQ(cache_.Get("ns", action_, {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.GetAction("ns", action_).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ActionCacheTest, InlineContentsOnUpdateGoToTheCas) {
  reapi::ActionResult result;
  result.set_stderr_raw("warning: x");
  ASSERT_TRUE(cache_.Update("ns", action_, result).ok());
  EXPECT_EQ(*store_.Get("ns", Digest::Of("warning: x")), "warning: x");
  auto got = cache_.Get("ns", action_, {});
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->stderr_raw().empty());
  EXPECT_EQ(got->stderr_digest().hash(), Digest::Of("warning: x").hash());
}

}  // namespace
}  // namespace stagefarm
