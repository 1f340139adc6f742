#include "scheduler/image_index.h"

#include "common/digest.h"
#include "gtest/gtest.h"

namespace stagefarm::scheduler {
namespace {

v1::ImageTag Tag(const std::string& name) {
  v1::ImageTag t;
  t.set_name(name);
  Digest::Of(name).ToProto(t.mutable_manifest());
  return t;
}

TEST(ImageIndexTest, NamesArePerInstance) {
  ImageIndex index;
  index.Set("a", Tag("app:1"));
  index.Set("a", Tag("app:2"));
  index.Set("b", Tag("app:1"));
  std::vector<v1::ImageTag> a = index.List("a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].name(), "app:1");
  EXPECT_EQ(a[1].name(), "app:2");
  EXPECT_EQ(index.List("b").size(), 1u);
  EXPECT_TRUE(index.List("c").empty());
  EXPECT_TRUE(index.Has("b", "app:1"));
  EXPECT_FALSE(index.Has("b", "app:2"));
}

TEST(ImageIndexTest, SetReplacesAndRemoveForgets) {
  ImageIndex index;
  index.Set("a", Tag("app:1"));
  v1::ImageTag newer = Tag("app:1");
  Digest::Of("newer").ToProto(newer.mutable_manifest());
  index.Set("a", newer);
  ASSERT_EQ(index.List("a").size(), 1u);
  EXPECT_EQ(index.List("a")[0].manifest().hash(), newer.manifest().hash());
  EXPECT_TRUE(index.Remove("a", "app:1").ok());
  EXPECT_TRUE(index.List("a").empty());
  EXPECT_EQ(index.Remove("a", "app:1").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(index.Remove("zzz", "app:1").code(), absl::StatusCode::kNotFound);
}

TEST(ImageIndexTest, CheckRefusesBadNamesAndDigests) {
  EXPECT_TRUE(ImageIndex::Check(Tag("app:1")).ok());
  EXPECT_EQ(ImageIndex::Check(Tag("")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ImageIndex::Check(Tag(std::string(4097, 'x'))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ImageIndex::Check(Tag("docker.io/library/app:1")).ok());
  // Names Docker refuses, from a client that skipped the CLI's check.
  for (const char* name : {"a<b>c:1", "x/UPPER:1", "../../x", "caf\xe9:1"}) {
    absl::Status s = ImageIndex::Check(Tag(name));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find("invalid reference format"),
              absl::string_view::npos)
        << s.message();
  }
  v1::ImageTag bad = Tag("app:1");
  bad.mutable_manifest()->set_hash("nothex");
  absl::Status s = ImageIndex::Check(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("image.manifest"), absl::string_view::npos);
}

}  // namespace
}  // namespace stagefarm::scheduler
