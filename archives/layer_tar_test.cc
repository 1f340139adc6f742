// Writing layers and their round trips through ApplyLayer.
#include "archives/layer_tar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "archives/layer_tar_testing.h"

namespace stagefarm::archives {
namespace {

using ::testing::HasSubstr;

class LayerTarCompressionTest : public ::testing::TestWithParam<Compression> {};

TEST_P(LayerTarCompressionTest, RoundTripKeepsTheTree) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool has_capability = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &has_capability));
  std::string blob = tmp.Sub("layer");

  auto layer = WriteLayer(src, LayerOptions{GetParam(), std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();

  const std::string bytes = ReadFile(blob);
  EXPECT_EQ(layer->digest, Digest::Of(bytes));
  const std::string tar = RawTar(blob);
  EXPECT_EQ(layer->diff_id, "sha256:" + Sha256::HexOf(tar));
  EXPECT_EQ(tar.size() % 512, 0u);
  switch (GetParam()) {
    case Compression::kGzip:
      EXPECT_EQ(layer->media_type, kMediaTypeLayerGzip);
      EXPECT_EQ(bytes.substr(0, 2), "\x1f\x8b");
      break;
    case Compression::kZstd:
      EXPECT_EQ(layer->media_type, kMediaTypeLayerZstd);
      EXPECT_EQ(bytes.substr(0, 4), "\x28\xb5\x2f\xfd");
      break;
    case Compression::kNone:
      EXPECT_EQ(layer->media_type, kMediaTypeLayerTar);
      EXPECT_EQ(bytes, tar);
      break;
  }
  EXPECT_EQ(layer->entries, static_cast<int64_t>(ListTar(blob).size()));

  std::string dest = tmp.Dir("dest");
  auto applied = ApplyLayerFile(blob, dest);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, layer->diff_id);
  EXPECT_EQ(applied->entries, layer->entries);

  auto src_tree = Scan(src);
  EXPECT_EQ(src_tree.size(), 21u);
  EXPECT_EQ(Scan(dest), src_tree);
  EXPECT_EQ(LinkGroups(dest), LinkGroups(src));
  EXPECT_EQ(LinkGroups(dest).size(), 1u);
  if (!has_capability) {
    std::cerr << "note: this filesystem refused security.capability; file "
                 "capabilities are not covered\n";
  }
  EXPECT_EQ(GetXattr(dest + "/cap", "security.capability"),
            has_capability ? CapabilityValue() : "");
  EXPECT_EQ(GetXattr(dest + "/cap", "user.note"), "");
}

TEST_P(LayerTarCompressionTest, SameContentGivesIdenticalBlobs) {
  TempDir tmp;
  bool cap = false;
  std::string one = tmp.Dir("one");
  std::string two = tmp.Dir("two");
  ASSERT_NO_FATAL_FAILURE(BuildTree(one, kBaseTime, &cap));
  // Same contents, every mtime a day later.
  ASSERT_NO_FATAL_FAILURE(BuildTree(two, kBaseTime + 86400, &cap));

  auto write = [&](const std::string& dir, std::optional<int64_t> epoch,
                   const std::string& name) {
    std::string path = tmp.Sub(name);
    auto layer = WriteLayer(dir, LayerOptions{GetParam(), epoch, 0}, path);
    EXPECT_TRUE(layer.ok()) << layer.status();
    return ReadFile(path);
  };
  std::string first = write(one, std::nullopt, "first");
  EXPECT_EQ(write(one, std::nullopt, "again"), first);
  // Without a clamp the mtimes differ, so the blobs do...
  EXPECT_NE(write(two, std::nullopt, "later"), first);
  // ...and with every mtime clamped to an earlier epoch they are the same.
  EXPECT_EQ(write(one, kBaseTime - 1, "clamped_one"),
            write(two, kBaseTime - 1, "clamped_two"));
}

INSTANTIATE_TEST_SUITE_P(AllCompressions, LayerTarCompressionTest,
                         ::testing::Values(Compression::kGzip,
                                           Compression::kZstd,
                                           Compression::kNone),
                         [](const ::testing::TestParamInfo<Compression>& info) {
                           return Suffix(info.param);
                         });

TEST(LayerTarTest, EntriesAreSortedWithNumericOwnersOnly) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool has_capability = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &has_capability));
  std::string blob = tmp.Sub("layer.tar");
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kNone, std::nullopt, 0}, blob).ok());

  std::vector<TarEntry> entries = ListTar(blob);
  // Each directory's names in byte order, a directory before its contents.
  EXPECT_THAT(Names(entries),
              ::testing::ElementsAre(
                  "Zebra", "a/", "a/b/", "a/b/c/", "a/b/c/deep", "a/file.txt",
                  "a/hard2", "a-b", "big", "blockdev", kUtf8Name, "cap",
                  "chardev", "dangling", "empty", "fifo", "hard1", "link",
                  kLongName, "sgid-dir/", "suid"));
  for (const TarEntry& e : entries) {
    SCOPED_TRACE(e.name);
    EXPECT_EQ(e.uname, "");
    EXPECT_EQ(e.gname, "");
    EXPECT_FALSE(e.atime_set);
    EXPECT_FALSE(e.ctime_set);
    EXPECT_EQ(e.mtime_nsec, 0);
    if (e.name == "cap" && has_capability) {
      EXPECT_THAT(e.xattrs, ::testing::ElementsAre("security.capability"));
    } else {
      EXPECT_THAT(e.xattrs, ::testing::IsEmpty());
    }
    if (e.name == "hard1") {
      // The first path in walk order holds the data; later ones link to it.
      EXPECT_EQ(e.hardlink, "a/hard2");
      EXPECT_EQ(e.size, 0);
    }
    if (e.name == "big") {
      EXPECT_EQ(e.uid, 3000000);
      EXPECT_EQ(e.gid, 3000001);
      EXPECT_EQ(e.size, 3 << 20);
    }
    if (e.name == "suid") {
      EXPECT_EQ(e.perm, 04755u);
    }
    if (e.name == "link") {
      EXPECT_EQ(e.type, static_cast<mode_t>(AE_IFLNK));
      EXPECT_EQ(e.symlink, "a/file.txt");
      EXPECT_EQ(e.uid, 1234);
      EXPECT_EQ(e.gid, 5678);
    }
  }
}

TEST(LayerTarTest, ClampsOnlyNewerMtimes) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  WriteFile(src + "/old", "old");
  WriteFile(src + "/new", "new");
  SetMtime(src + "/old", 1000);
  SetMtime(src + "/new", 2000000000);
  std::string blob = tmp.Sub("layer");
  ASSERT_TRUE(WriteLayer(src, {Compression::kGzip, 1500000000, 0}, blob).ok());
  std::vector<TarEntry> entries = ListTar(blob);
  ASSERT_EQ(Names(entries), (std::vector<std::string>{"new", "old"}));
  EXPECT_EQ(entries[0].mtime, 1500000000);
  EXPECT_EQ(entries[1].mtime, 1000);
}

TEST(LayerTarTest, WhiteoutsAndOpaqueDirectoriesRoundTrip) {
  TempDir tmp;
  std::string upper = tmp.Dir("upper");
  ASSERT_EQ(mknod((upper + "/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
  MakeDir(upper + "/keep", 0755);
  WriteFile(upper + "/keep/file", "kept");
  ASSERT_EQ(mknod((upper + "/keep/removed").c_str(), S_IFCHR, makedev(0, 0)),
            0);
  MakeDir(upper + "/opq", 0750);
  ASSERT_EQ(
      lsetxattr((upper + "/opq").c_str(), "trusted.overlay.opaque", "y", 1, 0),
      0);
  WriteFile(upper + "/opq/new", "new");
  SetMtime(upper + "/keep", kBaseTime);
  SetMtime(upper + "/opq", kBaseTime + 1);

  std::string blob = tmp.Sub("layer");
  auto layer = WriteLayer(upper, {Compression::kGzip, std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();
  std::vector<TarEntry> entries = ListTar(blob);
  EXPECT_THAT(Names(entries),
              ::testing::ElementsAre(".wh.gone", "keep/", "keep/file",
                                     "keep/.wh.removed", "opq/",
                                     "opq/.wh..wh..opq", "opq/new"));
  EXPECT_EQ(layer->entries, 7);
  for (const TarEntry& e : entries) {
    SCOPED_TRACE(e.name);
    EXPECT_THAT(e.xattrs, ::testing::IsEmpty());  // no trusted.overlay.*
    if (absl::StrContains(e.name, ".wh.")) {
      EXPECT_EQ(e.type, static_cast<mode_t>(AE_IFREG));
      EXPECT_EQ(e.size, 0);
    }
  }

  std::string dest = tmp.Dir("dest");
  auto applied = ApplyLayerFile(blob, dest);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, layer->diff_id);
  EXPECT_EQ(applied->entries, 7);
  for (const char* whiteout : {"/gone", "/keep/removed"}) {
    struct stat st;
    ASSERT_EQ(lstat((dest + whiteout).c_str(), &st), 0) << whiteout;
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << whiteout;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << whiteout;
  }
  EXPECT_FALSE(Exists(dest + "/.wh.gone"));
  EXPECT_FALSE(Exists(dest + "/keep/.wh.removed"));
  EXPECT_FALSE(Exists(dest + "/opq/.wh..wh..opq"));
  EXPECT_EQ(GetXattr(dest + "/opq", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(GetXattr(dest + "/keep", "trusted.overlay.opaque"), "");
  EXPECT_EQ(ReadFile(dest + "/opq/new"), "new");
  // Directory times survive whiteouts created inside them later.
  auto upper_tree = Scan(upper);
  auto dest_tree = Scan(dest);
  EXPECT_EQ(dest_tree["keep"], upper_tree["keep"]);
  EXPECT_EQ(dest_tree["opq"], upper_tree["opq"]);
}

TEST(LayerTarTest, EmptyDirectoryGivesEmptyLayer) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  std::string blob = tmp.Sub("layer.tar");
  auto layer = WriteLayer(src, {Compression::kNone, std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->entries, 0);
  // Just the end-of-archive marker, no 10 KiB block padding.
  EXPECT_EQ(ReadFile(blob), std::string(1024, '\0'));
  EXPECT_EQ(layer->diff_id, "sha256:" + layer->digest.hash());

  auto applied = ApplyLayerFile(blob, tmp.Dir("dest"));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->entries, 0);
  EXPECT_EQ(applied->diff_id, layer->diff_id);
}

TEST(LayerTarTest, AppliesFromTinyChunksAndForeignGzip) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool cap = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &cap));
  std::string blob = tmp.Sub("layer");
  auto layer = WriteLayer(src, {Compression::kNone, std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();
  const std::string tar = ReadFile(blob);

  // Two gzip members made by zlib, split mid-entry, served in small pieces
  // of varying size and in large ones.
  const size_t split = tar.size() / 2 + 7;
  const std::string gz = Gzip(tar.substr(0, split)) + Gzip(tar.substr(split));
  for (size_t chunk : {size_t{0}, size_t{1} << 20}) {
    SCOPED_TRACE(chunk);
    std::string dest = tmp.Dir(absl::StrCat("dest", chunk));
    auto applied = ApplyLayer(SourceOf(gz, chunk), dest);
    ASSERT_TRUE(applied.ok()) << applied.status();
    EXPECT_EQ(applied->diff_id, layer->diff_id);
    EXPECT_EQ(Scan(dest), Scan(src));
  }

  std::string zstd_blob = tmp.Sub("layer.zst");
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kZstd, std::nullopt, 0}, zstd_blob).ok());
  std::string dest = tmp.Dir("dest_zstd");
  auto applied = ApplyLayer(SourceOf(ReadFile(zstd_blob), 0), dest);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, layer->diff_id);
}

TEST(LayerTarTest, CompressingATarLaterGivesTheSameBlob) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool cap = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &cap));
  // Big enough for several 1 MiB gzip members.
  std::string big(3 << 20, 0);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7 % 251);
  WriteFile(src + "/big", big);
  std::string plain = tmp.Sub("plain");
  auto tar = WriteLayer(src, {Compression::kNone, std::nullopt, 0}, plain);
  ASSERT_TRUE(tar.ok()) << tar.status();
  const std::string tar_bytes = ReadFile(plain);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(Suffix(c));
    std::string direct = tmp.Sub(absl::StrCat("direct", Suffix(c)));
    auto want = WriteLayer(src, {c, std::nullopt, 0}, direct);
    ASSERT_TRUE(want.ok()) << want.status();
    for (size_t chunk : {size_t{0}, size_t{1} << 20}) {
      std::string later = tmp.Sub(absl::StrCat("later", Suffix(c), chunk));
      auto got = CompressLayer(SourceOf(tar_bytes, chunk), {c, std::nullopt, 0},
                               later);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->digest, want->digest);
      EXPECT_EQ(got->diff_id, tar->diff_id);
      EXPECT_EQ(got->media_type, want->media_type);
      EXPECT_TRUE(ReadFile(later) == ReadFile(direct));
    }
  }
  // A failing source fails the compression.
  auto failing = [](std::string*) -> absl::StatusOr<size_t> {
    return absl::DataLossError("source broke");
  };
  EXPECT_EQ(CompressLayer(failing, {Compression::kGzip, std::nullopt, 0},
                          tmp.Sub("broken"))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(LayerTarTest, RejectsBadArguments) {
  TempDir tmp;
  auto missing = WriteLayer(tmp.Sub("missing"), {}, tmp.Sub("out"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(tmp.Sub("missing")));

  std::string src = tmp.Dir("src");
  WriteFile(src + "/f", "x");
  std::string blob = tmp.Sub("layer");
  ASSERT_TRUE(WriteLayer(src, {}, blob).ok());
  std::string full = tmp.Dir("full");
  WriteFile(full + "/already", "here");
  EXPECT_EQ(ApplyLayerFile(blob, full).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ApplyLayerFile(tmp.Sub("nope"), tmp.Dir("d")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace stagefarm::archives
