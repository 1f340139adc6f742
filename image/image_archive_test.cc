#include "image/image_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "archives/layer_tar.h"
#include "blobstore/memory_blob_store.h"
#include "common/fs_util.h"
#include "common/sha256.h"
#include "tests/status_code.h"

namespace stagefarm::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kNs[] = "images";

// The regular files of a tar, by name.
std::map<std::string, std::string> ReadTar(const std::string& path) {
  std::map<std::string, std::string> out;
  struct archive* a = archive_read_new();
  archive_read_support_format_all(a);
  archive_read_support_filter_all(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 1 << 16), ARCHIVE_OK)
      << path;
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    std::string data;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) {
      data.append(buf, static_cast<size_t>(n));
    }
    out[archive_entry_pathname(e)] = std::move(data);
  }
  archive_read_free(a);
  return out;
}

void WriteTar(const std::string& path,
              const std::map<std::string, std::string>& files) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& [name, content] : files) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK);
    if (!content.empty()) {
      ASSERT_EQ(archive_write_data(a, content.data(), content.size()),
                static_cast<la_ssize_t>(content.size()));
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

class ImageArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/image_archive.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    scratch_ = base_ + "/scratch";
    out_ = base_ + "/out";
    rootfs_ = base_ + "/rootfs";
    for (const std::string& d : {scratch_, out_, rootfs_}) {
      ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    }
    store_ = std::make_unique<ImageStore>(&blobs_, kNs, base_ + "/index.json");
    other_ = std::make_unique<ImageStore>(&other_blobs_, kNs,
                                          base_ + "/other-index.json");
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }

  // A small root file system: a file, a directory and a symlink.
  void MakeRootfs() {
    ASSERT_TRUE(WriteStringToFile(rootfs_ + "/hello.txt", "hello\n").ok());
    ASSERT_EQ(mkdir((rootfs_ + "/etc").c_str(), 0755), 0);
    ASSERT_TRUE(WriteStringToFile(rootfs_ + "/etc/conf", "k=v\n", 0600).ok());
    ASSERT_EQ(symlink("hello.txt", (rootfs_ + "/link").c_str()), 0);
  }
  Descriptor ImportRootfs() {
    MakeRootfs();
    auto d = ImportImage(store_.get(), rootfs_, scratch_);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : Descriptor{};
  }

  MemoryBlobStore blobs_, other_blobs_;
  std::unique_ptr<ImageStore> store_, other_;
  std::string base_, scratch_, out_, rootfs_;
};

TEST_F(ImageArchiveTest, ImportOfARootfsDirGivesOneLayer) {
  Descriptor m = ImportRootfs();
  auto image = store_->Load(m.digest);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->image.layers.size(), 1u);
  ASSERT_EQ(image->image.diff_ids.size(), 1u);
  EXPECT_EQ(image->image.config.value("os", ""), "linux");
  // The scratch directory is left empty.
  EXPECT_TRUE(ListDir(scratch_).empty());

  // The layer holds the tree, and its diff_id matches the config.
  std::string unpacked = base_ + "/unpacked";
  ASSERT_EQ(mkdir(unpacked.c_str(), 0755), 0);
  auto reader = blobs_.OpenRead(kNs, image->image.layers[0].digest, 0, 0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto applied = archives::ApplyLayer(
      [&](std::string* out) { return (*reader)->Read(1 << 20, out); },
      unpacked);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, image->image.diff_ids[0]);
  EXPECT_EQ(*ReadFileToString(unpacked + "/hello.txt"), "hello\n");
  EXPECT_EQ(*ReadFileToString(unpacked + "/etc/conf"), "k=v\n");
  struct stat st;
  ASSERT_EQ(lstat((unpacked + "/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(ImageArchiveTest, ImportOfTheSameRootfsIsReproducible) {
  MakeRootfs();
  auto a = ImportImage(store_.get(), rootfs_, scratch_);
  auto b = ImportImage(other_.get(), rootfs_, scratch_);
  ASSERT_TRUE(a.ok() && b.ok());
  auto ia = store_->Load(a->digest);
  auto ib = other_->Load(b->digest);
  ASSERT_TRUE(ia.ok() && ib.ok());
  EXPECT_EQ(ia->image.layers[0].digest, ib->image.layers[0].digest);
  EXPECT_EQ(ia->image.diff_ids, ib->image.diff_ids);
}

TEST_F(ImageArchiveTest, DockerExportHasManifestIndexLayoutAndBlobs) {
  Descriptor m = ImportRootfs();
  auto image = store_->Load(m.digest);
  ASSERT_TRUE(image.ok()) << image.status();
  std::string path = out_ + "/img.tar";
  absl::Status s = ExportImage(store_.get(), m.digest, {"app:1"},
                               ArchiveFormat::kDocker, path);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(ListDir(out_), ElementsAre("img.tar"));  // no temp file left

  std::map<std::string, std::string> files = ReadTar(path);
  ASSERT_TRUE(files.count("manifest.json"));
  ASSERT_TRUE(files.count("index.json"));
  ASSERT_TRUE(files.count("oci-layout"));

  std::vector<Digest> expected = {m.digest, image->config.digest,
                                  image->image.layers[0].digest};
  for (const Digest& d : expected) {
    EXPECT_TRUE(files.count("blobs/sha256/" + d.hash())) << d.hash();
  }
  int blobs = 0;
  for (const auto& [name, content] : files) {
    if (!absl::StartsWith(name, "blobs/sha256/")) continue;
    ++blobs;
    EXPECT_EQ(Sha256::HexOf(content), name.substr(13)) << name;
  }
  EXPECT_EQ(blobs, 3);

  auto dm = ParseJson(files["manifest.json"], "manifest.json");
  ASSERT_TRUE(dm.ok()) << dm.status();
  ASSERT_TRUE(dm->is_array() && dm->size() == 1u) << dm->dump();
  EXPECT_EQ((*dm)[0]["Config"], "blobs/sha256/" + image->config.digest.hash());
  EXPECT_EQ((*dm)[0]["RepoTags"], nlohmann::json::array({"app:1"}));
  EXPECT_EQ((*dm)[0]["Layers"],
            nlohmann::json::array(
                {"blobs/sha256/" + image->image.layers[0].digest.hash()}));

  auto index = ParseJson(files["index.json"], "index.json");
  ASSERT_TRUE(index.ok()) << index.status();
  const nlohmann::json& entry = (*index)["manifests"][0];
  EXPECT_EQ(entry["digest"], OciDigest(m.digest));
  EXPECT_EQ(entry["size"], m.digest.size());
  EXPECT_EQ(entry["annotations"]["io.containerd.image.name"], "app:1");
  EXPECT_EQ(entry["annotations"]["org.opencontainers.image.ref.name"], "1");
  auto layout = ParseJson(files["oci-layout"], "oci-layout");
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ((*layout)["imageLayoutVersion"], "1.0.0");
}

TEST_F(ImageArchiveTest, OciExportHasNoDockerManifest) {
  Descriptor m = ImportRootfs();
  std::string path = out_ + "/img.tar";
  ASSERT_TRUE(
      ExportImage(store_.get(), m.digest, {"app:1"}, ArchiveFormat::kOci, path)
          .ok());
  std::map<std::string, std::string> files = ReadTar(path);
  EXPECT_FALSE(files.count("manifest.json"));
  EXPECT_TRUE(files.count("index.json"));
  EXPECT_TRUE(files.count("oci-layout"));
  EXPECT_TRUE(files.count("blobs/sha256/" + m.digest.hash()));
  for (const auto& [name, content] : files) {
    if (!absl::StartsWith(name, "blobs/sha256/")) continue;
    EXPECT_EQ(Sha256::HexOf(content), name.substr(13)) << name;
  }
}

TEST_F(ImageArchiveTest, DockerArchiveRoundTripGivesTheSameManifest) {
  Descriptor m = ImportRootfs();
  auto original = store_->Load(m.digest);
  ASSERT_TRUE(original.ok());
  std::string path = out_ + "/img.tar";
  ASSERT_TRUE(ExportImage(store_.get(), m.digest, {"app:1"},
                          ArchiveFormat::kDocker, path)
                  .ok());
  auto imported = ImportImage(other_.get(), path, scratch_);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->digest, m.digest);
  auto image = other_->Load(imported->digest);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->config.digest, original->config.digest);
  ASSERT_EQ(image->image.layers.size(), 1u);
  EXPECT_EQ(image->image.layers[0].digest, original->image.layers[0].digest);
  EXPECT_EQ(image->image.layers[0].media_type,
            original->image.layers[0].media_type);
  EXPECT_TRUE(ListDir(scratch_).empty());
}

TEST_F(ImageArchiveTest, OciArchiveRoundTripGivesTheSameManifest) {
  Descriptor m = ImportRootfs();
  std::string path = out_ + "/img.tar";
  ASSERT_TRUE(
      ExportImage(store_.get(), m.digest, {}, ArchiveFormat::kOci, path).ok());
  auto imported = ImportImage(other_.get(), path, scratch_);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->digest, m.digest);
  EXPECT_TRUE(other_->Load(imported->digest).ok());
}

TEST_F(ImageArchiveTest, AnIndexRoundTripsWithEveryPlatform) {
  Descriptor m = ImportRootfs();
  auto image = store_->Load(m.digest);
  ASSERT_TRUE(image.ok());
  // The same layer under an arm64 config: a second platform's image.
  nlohmann::json config = image->image.config;
  SetConfigPlatform(&config, *platform::Parse("linux/arm64"));
  auto arm = store_->PutImage(config, image->image.layers);
  ASSERT_TRUE(arm.ok());
  auto index = store_->PutIndex({{*platform::Parse("linux/amd64"), m},
                                 {*platform::Parse("arm64"), *arm}});
  ASSERT_TRUE(index.ok());
  std::string path = out_ + "/multi.tar";
  absl::Status docker = ExportImage(store_.get(), index->digest, {"m:1"},
                                    ArchiveFormat::kDocker, path);
  EXPECT_EQ(docker.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(docker.message().find("linux/amd64, linux/arm64"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_TRUE(ExportImage(store_.get(), index->digest, {"m:1"},
                          ArchiveFormat::kOci, path)
                  .ok());
  auto imported = ImportImage(other_.get(), path, scratch_);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->digest, index->digest);
  EXPECT_EQ(imported->media_type, kMediaTypeIndex);
  auto arm_image =
      other_->LoadFor(imported->digest, *platform::Parse("linux/arm64"));
  ASSERT_TRUE(arm_image.ok()) << arm_image.status();
  EXPECT_EQ(arm_image->manifest.digest, arm->digest);
  EXPECT_TRUE(
      other_->LoadFor(imported->digest, *platform::Parse("linux/amd64")).ok());
}

TEST_F(ImageArchiveTest, TamperedOciBlobIsRejected) {
  Descriptor m = ImportRootfs();
  auto image = store_->Load(m.digest);
  ASSERT_TRUE(image.ok());
  std::string path = out_ + "/img.tar";
  ASSERT_TRUE(
      ExportImage(store_.get(), m.digest, {}, ArchiveFormat::kOci, path).ok());
  std::map<std::string, std::string> files = ReadTar(path);
  std::string& layer =
      files["blobs/sha256/" + image->image.layers[0].digest.hash()];
  ASSERT_FALSE(layer.empty());
  layer[layer.size() / 2] ^= 0x01;
  std::string tampered = out_ + "/tampered.tar";
  WriteTar(tampered, files);
  auto imported = ImportImage(other_.get(), tampered, scratch_);
  EXPECT_EQ(imported.status().code(), absl::StatusCode::kDataLoss)
      << imported.status();
  // Nothing of the layer reached the store.
  auto missing = other_blobs_.FindMissing(kNs, {image->image.layers[0].digest});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->size(), 1u);
}

TEST_F(ImageArchiveTest, ImportOfGarbageIsAnError) {
  std::string garbage = base_ + "/garbage.tar";
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>(i * 7 + 3));
  ASSERT_TRUE(WriteStringToFile(garbage, bytes).ok());
  auto imported = ImportImage(store_.get(), garbage, scratch_);
  EXPECT_EQ(testing::CodeOf(imported), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ListDir(scratch_).empty());
}

TEST_F(ImageArchiveTest, ImportOfAMissingPathIsNotFound) {
  EXPECT_EQ(
      ImportImage(store_.get(), base_ + "/nope", scratch_).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(ImageArchiveTest, ArchiveEntryOutsideIsRefused) {
  std::string evil = out_ + "/evil.tar";
  WriteTar(evil, {{"../escaped", "x"}, {"oci-layout", "{}"}});
  auto imported = ImportImage(store_.get(), evil, scratch_);
  EXPECT_EQ(testing::CodeOf(imported), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(base_ + "/escaped"));
  EXPECT_FALSE(std::filesystem::exists(scratch_ + "/escaped"));
}

// A hostile rootfs tarball stops at STAGEFARM_MAX_UNPACK_BYTES, as an ADD
// archive does (the same extractor), leaving nothing behind.
TEST_F(ImageArchiveTest, ImportStopsAtTheUnpackBound) {
  std::string big = out_ + "/big.tar";
  WriteTar(big,
           {{"a", std::string(40000, 'a')}, {"b", std::string(40000, 'b')}});
  setenv("STAGEFARM_MAX_UNPACK_BYTES", "50000", 1);
  auto imported = ImportImage(store_.get(), big, scratch_);
  unsetenv("STAGEFARM_MAX_UNPACK_BYTES");
  ASSERT_EQ(testing::CodeOf(imported), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(imported.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(imported.status().message().find("STAGEFARM_MAX_UNPACK_BYTES"),
            std::string::npos)
      << imported.status();
  EXPECT_TRUE(ListDir(scratch_).empty());
  // Under the bound the same archive imports.
  setenv("STAGEFARM_MAX_UNPACK_BYTES", "100000", 1);
  auto ok = ImportImage(store_.get(), big, scratch_);
  unsetenv("STAGEFARM_MAX_UNPACK_BYTES");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(ImageArchiveTest, ExportToAMissingDirectoryFailsLeavingNothing) {
  Descriptor m = ImportRootfs();
  std::string dir = base_ + "/no/such/dir";
  absl::Status s = ExportImage(store_.get(), m.digest, {"app:1"},
                               ArchiveFormat::kDocker, dir + "/img.tar");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(std::filesystem::exists(base_ + "/no"));
}

TEST_F(ImageArchiveTest, FailedExportLeavesNoPartialOrTempFile) {
  Descriptor m = ImportRootfs();
  auto image = store_->Load(m.digest);
  ASSERT_TRUE(image.ok());
  // The manifest and config load, but the layer blob is gone mid-export.
  blobs_.Evict(image->image.layers[0].digest);
  absl::Status s = ExportImage(store_.get(), m.digest, {"app:1"},
                               ArchiveFormat::kDocker, out_ + "/img.tar");
  EXPECT_EQ(testing::CodeOf(s), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ListDir(out_).empty());
}

// A docker-archive and an OCI archive of one image of `layers` layers.
struct DeepArchive {
  std::map<std::string, std::string> docker, oci;
  std::vector<Digest> layer_digests;
};
DeepArchive MakeDeepArchive(int layers) {
  DeepArchive out;
  nlohmann::json config = EmptyImageConfig();
  nlohmann::json docker_layers = nlohmann::json::array();
  std::vector<Descriptor> descriptors;
  for (int i = 0; i < layers; ++i) {
    std::string bytes = absl::StrCat("layer ", i);
    Digest d = Digest::Of(bytes);
    out.layer_digests.push_back(d);
    descriptors.push_back(Descriptor{archives::kMediaTypeLayerTar, d});
    config["rootfs"]["diff_ids"].push_back(OciDigest(d));
    std::string path = absl::StrCat("blobs/sha256/", d.hash());
    out.docker[path] = bytes;
    out.oci[path] = bytes;
    docker_layers.push_back(path);
  }
  std::string config_bytes = Serialize(config);
  Digest cd = Digest::Of(config_bytes);
  std::string config_path = absl::StrCat("blobs/sha256/", cd.hash());
  out.docker[config_path] = config_bytes;
  out.docker["manifest.json"] =
      Serialize(nlohmann::json::array({{{"Config", config_path},
                                        {"RepoTags", {"deep:1"}},
                                        {"Layers", docker_layers}}}));
  std::string manifest =
      Serialize(MakeManifest(Descriptor{kMediaTypeConfig, cd}, descriptors));
  Digest md = Digest::Of(manifest);
  out.oci[config_path] = config_bytes;
  out.oci[absl::StrCat("blobs/sha256/", md.hash())] = manifest;
  out.oci["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
  out.oci["index.json"] = Serialize(nlohmann::json{
      {"schemaVersion", 2},
      {"manifests", {DescriptorJson(Descriptor{kMediaTypeManifest, md})}}});
  return out;
}

TEST_F(ImageArchiveTest, MoreThan127LayersIsRefusedBeforeAnyLayerIsStored) {
  DeepArchive deep = MakeDeepArchive(130);
  for (const auto* files : {&deep.docker, &deep.oci}) {
    std::string path = out_ + "/deep.tar";
    WriteTar(path, *files);
    auto imported = ImportImage(store_.get(), path, scratch_);
    EXPECT_EQ(testing::CodeOf(imported), absl::StatusCode::kResourceExhausted)
        << imported.status();
    EXPECT_THAT(std::string(imported.status().message()),
                HasSubstr("max depth exceeded"));
    EXPECT_THAT(std::string(imported.status().message()),
                HasSubstr("has 130 layers, more than the 127"));
    auto missing = blobs_.FindMissing(kNs, deep.layer_digests);
    ASSERT_TRUE(missing.ok());
    EXPECT_EQ(missing->size(), deep.layer_digests.size());
  }
  // The bound itself is imported, from either format.
  DeepArchive deepest = MakeDeepArchive(kMaxImageLayers);
  for (const auto* files : {&deepest.docker, &deepest.oci}) {
    std::string path = out_ + "/deepest.tar";
    WriteTar(path, *files);
    auto imported = ImportImage(store_.get(), path, scratch_);
    ASSERT_TRUE(imported.ok()) << imported.status();
    auto image = store_->Load(imported->digest);
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->image.layers.size(), static_cast<size_t>(kMaxImageLayers));
  }
}

TEST_F(ImageArchiveTest, OddTypesInAnOciLayoutAreNamed) {
  DeepArchive image = MakeDeepArchive(1);
  auto parsed = ParseJson(image.oci["index.json"], "index.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  nlohmann::json index = *parsed;
  index["manifests"][0]["size"] = "12";
  image.oci["index.json"] = Serialize(index);
  std::string path = out_ + "/odd.tar";
  WriteTar(path, image.oci);
  auto imported = ImportImage(store_.get(), path, scratch_);
  EXPECT_EQ(testing::CodeOf(imported), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(imported.status().message()),
              HasSubstr("field \"size\" is a string, not a integer"));

  // A manifest whose mediaType is a number (index.json names it anew).
  image = MakeDeepArchive(1);
  std::string manifest_path;
  for (const auto& [name, bytes] : image.oci) {
    if (absl::StrContains(bytes, "\"layers\"")) manifest_path = name;
  }
  ASSERT_FALSE(manifest_path.empty());
  auto manifest = ParseJson(image.oci[manifest_path], "manifest");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  (*manifest)["mediaType"] = 5;
  std::string odd = Serialize(*manifest);
  image.oci.erase(manifest_path);
  Digest md = Digest::Of(odd);
  image.oci[absl::StrCat("blobs/sha256/", md.hash())] = odd;
  image.oci["index.json"] = Serialize(nlohmann::json{
      {"schemaVersion", 2},
      {"manifests", {DescriptorJson(Descriptor{kMediaTypeManifest, md})}}});
  WriteTar(path, image.oci);
  imported = ImportImage(store_.get(), path, scratch_);
  EXPECT_EQ(testing::CodeOf(imported), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(imported.status().message()),
              HasSubstr("field \"mediaType\" is a number, not a string"));
}

TEST_F(ImageArchiveTest, ExportOfAnUnknownManifestFails) {
  absl::Status s = ExportImage(store_.get(), Digest::Of("nothing"), {"app:1"},
                               ArchiveFormat::kOci, out_ + "/img.tar");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ListDir(out_).empty());
}

}  // namespace
}  // namespace stagefarm::image
