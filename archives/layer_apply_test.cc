// Applying layers: hostile, corrupt and truncated ones.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "archives/layer_tar.h"
#include "archives/layer_tar_testing.h"

namespace stagefarm::archives {
namespace {

using ::testing::HasSubstr;

// Applies a tar made of `members` into a fresh destination next to a
// directory "outside" (holding a file "victim") and returns the error.
class HostileLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    outside_ = tmp_.Dir("outside");
    WriteFile(outside_ + "/victim", "precious");
    dest_ = tmp_.Dir("dest");
  }

  absl::Status Apply(const std::vector<Member>& members) {
    std::string tar = tmp_.Sub("evil.tar");
    MakeTar(tar, members);
    auto applied = ApplyLayerFile(tar, dest_);
    return applied.status();
  }

  void ExpectVictimUntouched() {
    struct stat st;
    ASSERT_EQ(lstat((outside_ + "/victim").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(ReadFile(outside_ + "/victim"), "precious");
    EXPECT_EQ(GetXattr(outside_, "trusted.overlay.opaque"), "");
  }

  TempDir tmp_;
  std::string outside_;
  std::string dest_;
};

// A layer that unpacks past STAGEFARM_MAX_UNPACK_BYTES (a base image's tar
// bomb) stops there, like an ADD archive or an imported image.
TEST_F(HostileLayerTest, StopsAtTheUnpackBound) {
  setenv("STAGEFARM_MAX_UNPACK_BYTES", "50000", 1);
  absl::Status status = Apply(
      {File("a", std::string(40000, 'a')), File("b", std::string(40000, 'b'))});
  unsetenv("STAGEFARM_MAX_UNPACK_BYTES");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("STAGEFARM_MAX_UNPACK_BYTES"));
  EXPECT_THAT(status.message(), HasSubstr("\"b\""));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, RefusesAbsolutePaths) {
  std::string name = outside_ + "/planted";
  absl::Status status = Apply({File(name, "pwned")});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(name));
  EXPECT_FALSE(Exists(name));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, RefusesDotDot) {
  for (const char* name : {"../evil", "a/../../evil", "./../evil"}) {
    SCOPED_TRACE(name);
    absl::Status status = Apply({File(name, "pwned")});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(),
                HasSubstr(absl::StrCat("layer entry \"", name,
                                       "\" escapes the destination")));
    EXPECT_FALSE(Exists(tmp_.Sub("evil")));
  }
}

TEST_F(HostileLayerTest, RefusesPathsThroughSymlinks) {
  absl::Status status =
      Apply({Symlink("a", outside_), File("a/victim", "pwned")});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"a/victim\""));
  ExpectVictimUntouched();
  // The symlink itself was extracted, and left alone.
  struct stat st;
  ASSERT_EQ(lstat((dest_ + "/a").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));

  TempDir again;
  dest_ = again.Dir("dest");
  status = Apply({Directory("d"), Symlink("d/up", "../../outside"),
                  File("d/up/new", "pwned")});
  EXPECT_THAT(status.message(), HasSubstr("\"d/up/new\""));
  EXPECT_FALSE(Exists(outside_ + "/new"));
}

TEST_F(HostileLayerTest, RefusesWhiteoutsThroughSymlinks) {
  absl::Status status = Apply({Symlink("a", outside_), File("a/.wh.victim")});
  EXPECT_THAT(status.message(), HasSubstr("\"a/.wh.victim\""));
  ExpectVictimUntouched();

  TempDir again;
  dest_ = again.Dir("dest");
  status = Apply({Symlink("a", outside_), File("a/.wh..wh..opq")});
  EXPECT_THAT(status.message(), HasSubstr("\"a/.wh..wh..opq\""));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, RefusesHardLinksOutside) {
  WriteFile(tmp_.Sub("x"), "secret");
  absl::Status status = Apply({Hardlink("h", "../x")});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"h\""));
  EXPECT_FALSE(Exists(dest_ + "/h"));
  struct stat st;
  ASSERT_EQ(stat(tmp_.Sub("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);

  status = Apply({Hardlink("h2", outside_ + "/victim")});
  EXPECT_THAT(status.message(), HasSubstr("\"h2\""));
  status = Apply({Symlink("a", outside_), Hardlink("h3", "a/victim")});
  EXPECT_THAT(status.message(), HasSubstr("\"h3\""));
  EXPECT_FALSE(Exists(dest_ + "/h3"));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, ReplacesSymlinkInsteadOfWritingThroughIt) {
  // A later entry with the same name replaces the symlink itself.
  absl::Status status =
      Apply({Symlink("a", outside_ + "/victim"), File("a", "inside")});
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadFile(dest_ + "/a"), "inside");
  ExpectVictimUntouched();
}

// A layer written uncompressed and compressed later (an intermediate
// stage's layer that ends up in an image) is byte-identical to the layer
// written compressed in the first place, whatever the read sizes.
TEST(LayerTarTest, CorruptOrTruncatedBlobsFail) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool cap = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &cap));
  std::string gz_blob = tmp.Sub("layer.gz");
  std::string zst_blob = tmp.Sub("layer.zst");
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kGzip, std::nullopt, 0}, gz_blob).ok());
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kZstd, std::nullopt, 0}, zst_blob).ok());
  const std::string gz = ReadFile(gz_blob);
  const std::string zst = ReadFile(zst_blob);
  std::string flipped = gz;
  flipped[flipped.size() / 2] ^= 0x55;
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x01;  // the CRC32 in the trailer

  struct Case {
    const char* name;
    std::string bytes;
  };
  std::vector<Case> cases = {
      {"gzip cut in half", gz.substr(0, gz.size() / 2)},
      {"gzip without its trailer", gz.substr(0, gz.size() - 8)},
      {"gzip with a flipped byte", flipped},
      {"gzip with a wrong CRC", bad_crc},
      {"gzip header only", gz.substr(0, 10)},
      {"zstd cut in half", zst.substr(0, zst.size() / 2)},
      {"zstd without its checksum", zst.substr(0, zst.size() - 4)},
      {"not a tar", std::string(2000, 'x')},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto applied =
        ApplyLayer(SourceOf(c.bytes, 4096), tmp.Dir(absl::StrCat("d", i++)));
    EXPECT_FALSE(applied.ok());
  }
  // Corruption of the compressed stream is reported as such.
  auto cut =
      ApplyLayer(SourceOf(gz.substr(0, gz.size() / 2), 4096), tmp.Dir("cut"));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(cut.status().message(), HasSubstr("gzip"));
}

TEST(LayerTarTest, SourceErrorsPropagate) {
  TempDir tmp;
  int calls = 0;
  ByteSource failing = [&calls](std::string* out) -> absl::StatusOr<size_t> {
    if (calls++ > 0) return absl::UnavailableError("network went away");
    out->assign("\x1f\x8b\x08\x00", 4);
    return 4;
  };
  auto applied = ApplyLayer(failing, tmp.Dir("dest"));
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(applied.status().message(), HasSubstr("network went away"));
}

}  // namespace
}  // namespace stagefarm::archives
