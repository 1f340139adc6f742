#include "common/digest.h"

#include <gtest/gtest.h>

namespace stagefarm {
namespace {

TEST(DigestTest, EmptyBlobIsWellKnown) {
  EXPECT_EQ(Digest::Empty().hash(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest::Empty().size(), 0);
  EXPECT_TRUE(Digest::Of("").is_empty_blob());
  EXPECT_FALSE(Digest::Of("a").is_empty_blob());
}

TEST(DigestTest, OfHashesContent) {
  Digest d = Digest::Of("abc");
  EXPECT_EQ(d.hash(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.ToString(), d.hash() + "/3");
}

TEST(DigestTest, ParseNormalizesUppercase) {
  auto d = Digest::Parse(
      "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", 3);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Digest::Of("abc"));
  EXPECT_EQ(d->hash(), Digest::Of("abc").hash());
}

TEST(DigestTest, ParseRejectsBadInputNamingTheField) {
  auto short_hash = Digest::Parse("abcd", 1, "requests[2].digest");
  EXPECT_EQ(short_hash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(short_hash.status().message().find("requests[2].digest.hash"),
            std::string::npos);

  std::string non_hex(64, 'g');
  auto bad = Digest::Parse(non_hex, 1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not hexadecimal"), std::string::npos);

  auto negative = Digest::Parse(Digest::Of("x").hash(), -1);
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("size_bytes"), std::string::npos);

  auto sha1 = Digest::Parse(std::string(40, 'a'), 1);
  EXPECT_NE(sha1.status().message().find("digest function"), std::string::npos);
}

TEST(DigestTest, ProtoRoundTrip) {
  Digest d = Digest::Of("hello");
  auto back = Digest::FromProto(d.ToProto());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, d);
}

}  // namespace
}  // namespace stagefarm
