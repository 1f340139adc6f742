#include "image/image_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "blobstore/memory_blob_store.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "tests/status_code.h"

namespace stagefarm::image {
namespace {

using ::testing::HasSubstr;

constexpr char kNs[] = "images";

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/image_store.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    index_ = dir_ + "/index.json";
    store_ = std::make_unique<ImageStore>(&blobs_, kNs, index_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Stores a layer blob and returns an image config and layers over it.
  Descriptor PutLayer(const std::string& bytes) {
    EXPECT_TRUE(blobs_.Put(kNs, bytes).ok());
    return Descriptor{"application/vnd.oci.image.layer.v1.tar",
                      Digest::Of(bytes)};
  }
  nlohmann::json ConfigFor(const std::vector<std::string>& diff_ids,
                           const std::string& cmd = "sh") {
    nlohmann::json config = EmptyImageConfig();
    config["rootfs"]["diff_ids"] = diff_ids;
    config["config"]["Cmd"] = {cmd};
    return config;
  }
  // An image with one layer; `tag` varies the config and so the digest.
  Descriptor MakeImage(const std::string& tag) {
    Descriptor layer = PutLayer("layer bytes " + tag);
    auto m = store_->PutImage(
        ConfigFor({OciDigest(Digest::Of("diff " + tag))}, tag), {layer});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : Descriptor{};
  }
  std::string IndexText() {
    auto text = ReadFileToString(index_);
    return text.ok() ? *text : "<missing>";
  }

  MemoryBlobStore blobs_;
  std::string dir_, index_;
  std::unique_ptr<ImageStore> store_;
};

// An image whose config names `platform`.
Descriptor MakePlatformImage(ImageStore* store, MemoryBlobStore* blobs,
                             const std::string& platform) {
  std::string layer_bytes = "layer for " + platform;
  EXPECT_TRUE(blobs->Put(kNs, layer_bytes).ok());
  nlohmann::json config = EmptyImageConfig(*platform::Parse(platform));
  config["rootfs"]["diff_ids"] = {OciDigest(Digest::Of("diff " + platform))};
  auto m = store->PutImage(config,
                           {Descriptor{"application/vnd.oci.image.layer.v1.tar",
                                       Digest::Of(layer_bytes)}});
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : Descriptor{};
}

TEST_F(ImageStoreTest, AnIndexGivesEachPlatformItsImage) {
  platform::Platform amd64 = *platform::Parse("linux/amd64");
  platform::Platform arm64 = *platform::Parse("linux/arm64");
  Descriptor a = MakePlatformImage(store_.get(), &blobs_, "linux/amd64");
  Descriptor b = MakePlatformImage(store_.get(), &blobs_, "linux/arm64");
  auto index = store_->PutIndex({{amd64, a}, {arm64, b}});
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->media_type, kMediaTypeIndex);
  ASSERT_TRUE(store_->Tag("multi:1", index->digest).ok());

  auto got_a = store_->Resolve("multi:1", amd64);
  ASSERT_TRUE(got_a.ok()) << got_a.status();
  EXPECT_EQ(got_a->manifest.digest, a.digest);
  auto got_b = store_->Resolve("multi:1", arm64);
  ASSERT_TRUE(got_b.ok()) << got_b.status();
  EXPECT_EQ(got_b->manifest.digest, b.digest);
  EXPECT_EQ(got_b->image.config["architecture"], "arm64");

  auto none = store_->Resolve("multi:1", *platform::Parse("linux/riscv64"));
  EXPECT_EQ(testing::CodeOf(none), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("it has: linux/amd64, linux/arm64"));

  auto platforms = store_->Platforms(index->digest);
  ASSERT_TRUE(platforms.ok());
  ASSERT_EQ(platforms->size(), 2u);
  EXPECT_EQ((*platforms)[1].platform, arm64);
  // An index is not an image: loading it as one says so.
  EXPECT_EQ(testing::CodeOf(store_->Load(index->digest)),
            absl::StatusCode::kInvalidArgument);
  // The tag's size counts every platform's blobs once.
  auto records = store_->List();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_GT((*records)[0].size, a.digest.size() + b.digest.size());
}

TEST_F(ImageStoreTest, ASinglePlatformImageIsNotUsedForAnother) {
  Descriptor b = MakePlatformImage(store_.get(), &blobs_, "linux/arm64");
  ASSERT_TRUE(store_->Tag("armonly:1", b.digest).ok());
  EXPECT_TRUE(store_->Resolve("armonly:1", *platform::Parse("arm64")).ok());
  auto other = store_->Resolve("armonly:1", *platform::Parse("s390x"));
  EXPECT_EQ(testing::CodeOf(other), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr("is for linux/arm64, not linux/s390x"));
  // With a puller, the other platform is fetched instead.
  std::string pulled_for;
  store_->SetPuller(
      [&](const std::string& name,
          const platform::Platform& want) -> absl::StatusOr<ResolvedImage> {
        pulled_for = name + " " + want.String();
        return absl::NotFoundError("no registry here");
      });
  EXPECT_FALSE(store_->Resolve("armonly:1", *platform::Parse("s390x")).ok());
  EXPECT_EQ(pulled_for, "armonly:1 linux/s390x");
}

TEST_F(ImageStoreTest, APulledPlatformJoinsTheOnesTheNameHad) {
  Descriptor arm = MakePlatformImage(store_.get(), &blobs_, "linux/arm64");
  Descriptor s390x = MakePlatformImage(store_.get(), &blobs_, "linux/s390x");
  ASSERT_TRUE(store_->Tag("both:1", arm.digest).ok());
  store_->SetPuller(
      [&](const std::string& name,
          const platform::Platform&) -> absl::StatusOr<ResolvedImage> {
        // As the registry client does: tags the name with what it pulled.
        RETURN_IF_ERROR(store_->Tag(name, s390x.digest));
        return store_->Load(s390x.digest);
      });
  auto got = store_->Resolve("both:1", *platform::Parse("s390x"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->manifest.digest, s390x.digest);
  // The name still has arm64 too.
  auto tagged = store_->Tagged("both:1");
  ASSERT_TRUE(tagged.ok());
  auto platforms = store_->Platforms(*tagged);
  ASSERT_TRUE(platforms.ok());
  ASSERT_EQ(platforms->size(), 2u);
  EXPECT_EQ((*platforms)[0].platform.String(), "linux/arm64");
  EXPECT_EQ((*platforms)[1].platform.String(), "linux/s390x");
  auto arm_again = store_->Resolve("both:1", *platform::Parse("arm64"));
  ASSERT_TRUE(arm_again.ok());
  EXPECT_EQ(arm_again->manifest.digest, arm.digest);
}

TEST_F(ImageStoreTest, PutImageThenLoadRoundTrips) {
  Descriptor l1 = PutLayer("first layer");
  Descriptor l2 = PutLayer("second layer");
  std::vector<std::string> diff_ids = {OciDigest(Digest::Of("d1")),
                                       OciDigest(Digest::Of("d2"))};
  nlohmann::json config = ConfigFor(diff_ids, "/bin/app");
  auto m = store_->PutImage(config, {l1, l2});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->media_type, kMediaTypeManifest);

  auto image = store_->Load(m->digest);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, m->digest);
  EXPECT_EQ(Digest::Of(image->manifest_bytes), m->digest);
  ASSERT_EQ(image->image.layers.size(), 2u);
  EXPECT_EQ(image->image.layers[0].digest, l1.digest);
  EXPECT_EQ(image->image.layers[1].digest, l2.digest);
  EXPECT_EQ(image->image.layers[0].media_type, l1.media_type);
  EXPECT_EQ(image->image.diff_ids, diff_ids);
  EXPECT_EQ(image->image.config, config);
  // The config blob is what the manifest points at.
  auto config_bytes = blobs_.Get(kNs, image->config.digest);
  ASSERT_TRUE(config_bytes.ok()) << config_bytes.status();
  EXPECT_EQ(*config_bytes, Serialize(config));
}

TEST_F(ImageStoreTest, PutImageIsDeterministic) {
  Descriptor l = PutLayer("layer");
  nlohmann::json config = ConfigFor({OciDigest(Digest::Of("d"))});
  auto a = store_->PutImage(config, {l});
  auto b = store_->PutImage(config, {l});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->digest, b->digest);
}

TEST_F(ImageStoreTest, LoadOfUnknownManifestIsNotFound) {
  EXPECT_EQ(store_->Load(Digest::Of("no such manifest")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ImageStoreTest, LoadRejectsAManifestWhoseConfigDisagrees) {
  Descriptor l = PutLayer("layer");
  // The config lists no diff_ids for the manifest's one layer.
  nlohmann::json config = ConfigFor({});
  std::string config_bytes = Serialize(config);
  ASSERT_TRUE(blobs_.Put(kNs, config_bytes).ok());
  std::string manifest = Serialize(MakeManifest(
      Descriptor{kMediaTypeConfig, Digest::Of(config_bytes)}, {l}));
  ASSERT_TRUE(blobs_.Put(kNs, manifest).ok());
  EXPECT_EQ(store_->Load(Digest::Of(manifest)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ImageStoreTest, TagThenResolveByShortAndLongName) {
  Descriptor m = MakeImage("a");
  ASSERT_TRUE(store_->Tag("app", m.digest).ok());
  for (const char* name :
       {"app", "app:latest", "docker.io/library/app", "docker.io/app:latest"}) {
    auto image = store_->Resolve(name);
    ASSERT_TRUE(image.ok()) << name << ": " << image.status();
    EXPECT_EQ(image->name, "app:latest") << name;
    EXPECT_EQ(image->manifest.digest, m.digest) << name;
  }
}

TEST_F(ImageStoreTest, TagReplacesAnEarlierTag) {
  Descriptor a = MakeImage("a");
  Descriptor b = MakeImage("b");
  ASSERT_NE(a.digest, b.digest);
  ASSERT_TRUE(store_->Tag("app:1", a.digest).ok());
  ASSERT_TRUE(store_->Tag("app:1", b.digest).ok());
  auto image = store_->Resolve("app:1");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, b.digest);
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
}

TEST_F(ImageStoreTest, ResolveOfUnknownNameSaysHowToImport) {
  auto image = store_->Resolve("nothing:here");
  ASSERT_EQ(image.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(image.status().message(), HasSubstr("stagefarm image import"));
  EXPECT_THAT(image.status().message(), HasSubstr("nothing:here"));
}

TEST_F(ImageStoreTest, ResolveOfAnotherTagIsNotFound) {
  ASSERT_TRUE(store_->Tag("app:1", MakeImage("a").digest).ok());
  EXPECT_EQ(store_->Resolve("app:2").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Resolve("app").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ImageStoreTest, RemoveForgetsTheName) {
  Descriptor m = MakeImage("a");
  ASSERT_TRUE(store_->Tag("app:1", m.digest).ok());
  ASSERT_TRUE(store_->Tag("other:1", m.digest).ok());
  ASSERT_TRUE(store_->Remove("docker.io/library/app:1").ok());
  EXPECT_EQ(store_->Resolve("app:1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Resolve("other:1").ok());
  EXPECT_EQ(store_->Remove("app:1").code(), absl::StatusCode::kNotFound);
}

TEST_F(ImageStoreTest, ListShowsEveryTag) {
  Descriptor a = MakeImage("a");
  Descriptor b = MakeImage("b");
  ASSERT_TRUE(store_->Tag("one", a.digest).ok());
  ASSERT_TRUE(store_->Tag("two:2", b.digest).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  std::map<std::string, ImageRecord> by_name;
  for (const ImageRecord& r : *list) by_name[r.name] = r;
  ASSERT_TRUE(by_name.count("one:latest"));
  ASSERT_TRUE(by_name.count("two:2"));
  EXPECT_EQ(by_name["one:latest"].manifest, a.digest);
  EXPECT_EQ(by_name["two:2"].manifest, b.digest);
  // size: manifest + config + layers.
  auto image = store_->Load(a.digest);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(by_name["one:latest"].size,
            a.digest.size() + image->config.digest.size() +
                image->image.layers[0].digest.size());
  EXPECT_FALSE(by_name["two:2"].created.empty());
}

TEST_F(ImageStoreTest, TagsPersistAcrossInstances) {
  Descriptor a = MakeImage("a");
  ASSERT_TRUE(store_->Tag("app:1", a.digest).ok());
  ImageStore again(&blobs_, kNs, index_);
  auto image = again.Resolve("app:1");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, a.digest);
}

TEST_F(ImageStoreTest, ListOfAMissingIndexIsEmpty) {
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->empty());
}

TEST_F(ImageStoreTest, CorruptIndexIsAnErrorNotACrash) {
  Descriptor a = MakeImage("a");
  ASSERT_TRUE(WriteStringToFile(index_, "{\"app:1\": garbage \x01\xff").ok());
  for (absl::StatusCode code : {store_->List().status().code(),
                                store_->Resolve("app:1").status().code(),
                                store_->Tag("app:2", a.digest).code(),
                                store_->Remove("app:1").code()}) {
    EXPECT_TRUE(code == absl::StatusCode::kDataLoss ||
                code == absl::StatusCode::kInvalidArgument)
        << code;
  }
  // A failed Tag must not replace the damaged index with a new one.
  EXPECT_EQ(IndexText(), "{\"app:1\": garbage \x01\xff");
}

TEST_F(ImageStoreTest, IndexThatIsNotAnObjectIsDataLoss) {
  ASSERT_TRUE(WriteStringToFile(index_, "[1, 2, 3]").ok());
  EXPECT_EQ(store_->List().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ImageStoreTest, MalformedIndexEntryIsDataLoss) {
  ASSERT_TRUE(WriteStringToFile(index_, R"({"app:1": {"manifest": 42}})").ok());
  EXPECT_EQ(store_->List().status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(
      WriteStringToFile(
          index_, R"({"app:1": {"manifest": "sha256:zz", "manifest_size": 1}})")
          .ok());
  EXPECT_EQ(testing::CodeOf(store_->List()),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ImageStoreTest, TaggingAMissingManifestFailsAndKeepsTheIndex) {
  Descriptor a = MakeImage("a");
  ASSERT_TRUE(store_->Tag("app:1", a.digest).ok());
  std::string before = IndexText();
  absl::Status s = store_->Tag("app:1", Digest::Of("not stored"));
  EXPECT_EQ(testing::CodeOf(s), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  s = store_->Tag("new:1", Digest::Of("not stored"));
  EXPECT_EQ(testing::CodeOf(s), absl::StatusCode::kNotFound);
  EXPECT_EQ(IndexText(), before);
  auto image = store_->Resolve("app:1");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, a.digest);
}

TEST_F(ImageStoreTest, TagRejectsAnInvalidName) {
  Descriptor a = MakeImage("a");
  EXPECT_EQ(store_->Tag("bad name", a.digest).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Tag("", a.digest).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IndexText(), "<missing>");
}

TEST_F(ImageStoreTest, ANameThatIsNotUtf8IsRefusedNotStoredChanged) {
  Descriptor a = MakeImage("a");
  absl::Status s = store_->Tag("caf\xe9:1", a.digest);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("caf\\xe9"));
  EXPECT_THAT(s.message(), HasSubstr("invalid reference format"));
  EXPECT_EQ(IndexText(), "<missing>");
  // The store still works, and writes names beyond ASCII that are UTF-8.
  ASSERT_TRUE(store_->Tag("app:1", a.digest).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "app:1");
}

TEST_F(ImageStoreTest, AnEntryWithFieldsOfOtherTypesIsAnErrorNotACrash) {
  Descriptor a = MakeImage("a");
  std::string good =
      absl::StrCat(R"({"app:1": {"manifest": ")", OciDigest(a.digest),
                   R"(", "manifest_size": )", a.digest.size());
  ASSERT_TRUE(WriteStringToFile(index_, good + R"(, "size": "big"}})").ok());
  auto list = store_->List();
  EXPECT_EQ(testing::CodeOf(list), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(list.status().message(), HasSubstr("size"));
  ASSERT_TRUE(WriteStringToFile(index_, good + R"(, "created": 7}})").ok());
  list = store_->List();
  EXPECT_EQ(testing::CodeOf(list), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(list.status().message(), HasSubstr("created"));
  ASSERT_TRUE(WriteStringToFile(index_, good + "}}").ok());
  list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ((*list)[0].manifest, a.digest);
}

TEST_F(ImageStoreTest, ResolveOfATagWhoseBlobsWereEvictedNamesTheImage) {
  Descriptor a = MakeImage("a");
  ASSERT_TRUE(store_->Tag("app:1", a.digest).ok());
  blobs_.Evict(a.digest);
  auto image = store_->Resolve("app:1");
  ASSERT_EQ(image.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(image.status().message(), HasSubstr("app:1"));
}

}  // namespace
}  // namespace stagefarm::image
