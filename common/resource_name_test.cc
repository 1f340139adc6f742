#include "common/resource_name.h"

#include <gtest/gtest.h>

#include "tests/status_code.h"

namespace stagefarm {
namespace {

const Digest& Abc() {
  static const Digest d = Digest::Of("abc");
  return d;
}

TEST(ResourceNameTest, ReadWithAndWithoutInstance) {
  auto r = ParseReadResourceName("blobs/" + Abc().hash() + "/3");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->instance_name, "");
  EXPECT_EQ(r->digest, Abc());

  r = ParseReadResourceName("team/a/blobs/" + Abc().hash() + "/3/file.txt");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->instance_name, "team/a");
  EXPECT_EQ(r->digest, Abc());
}

TEST(ResourceNameTest, ReadWithDigestFunction) {
  auto r = ParseReadResourceName("main/blobs/sha256/" + Abc().hash() + "/3");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->instance_name, "main");

  auto bad = ParseReadResourceName("main/blobs/blake3/" + Abc().hash() + "/3");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown digest function \"blake3\""),
            std::string::npos);
}

TEST(ResourceNameTest, WriteNames) {
  auto w = ParseWriteResourceName("ci/uploads/1234-abcd/blobs/" + Abc().hash() +
                                  "/3/extra/metadata");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->instance_name, "ci");
  EXPECT_EQ(w->uuid, "1234-abcd");
  EXPECT_EQ(w->digest, Abc());
  EXPECT_EQ(MakeWriteResourceName("ci", "u", Abc()),
            "ci/uploads/u/blobs/" + Abc().hash() + "/3");
  EXPECT_EQ(MakeReadResourceName("", Abc()), "blobs/" + Abc().hash() + "/3");
}

TEST(ResourceNameTest, MalformedNamesAreInvalidArgument) {
  for (const std::string& name : std::vector<std::string>{
           "", "blobs", "blobs/" + Abc().hash(), "x/blobs/zz/3",
           "blobs/" + Abc().hash() + "/-3", "blobs/" + Abc().hash() + "/+3",
           "blobs/" + Abc().hash() + "/three",
           "a//b/blobs/" + Abc().hash() + "/3",
           "uploads/u/blobs/" + Abc().hash() + "/3"}) {
    auto r = ParseReadResourceName(name);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find("resource_name"), std::string::npos)
        << r.status();
  }
  for (const std::string& name : std::vector<std::string>{
           "blobs/" + Abc().hash() + "/3",
           "uploads//blobs/" + Abc().hash() + "/3",
           "uploads/u/" + Abc().hash() + "/3",
           "uploads/u/compressed-blobs/zstd/" + Abc().hash() + "/3"}) {
    auto w = ParseWriteResourceName(name);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
}

TEST(ResourceNameTest, InstanceNameValidation) {
  EXPECT_TRUE(ValidateInstanceName("").ok());
  EXPECT_TRUE(ValidateInstanceName("team-a/main").ok());
  EXPECT_EQ(testing::CodeOf(ValidateInstanceName("a//b")),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(testing::CodeOf(ValidateInstanceName("x/blobs")),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(testing::CodeOf(ValidateInstanceName(std::string(2000, 'a'))),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace stagefarm
