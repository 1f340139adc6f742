// One contract, every BlobStore: this suite runs against MemoryBlobStore and
// RocksDbBlobStore.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>

#include "blobstore/memory_blob_store.h"
#include "blobstore/rocksdb_blob_store.h"

namespace stagefarm {
namespace {

struct StoreUnderTest {
  std::unique_ptr<BlobStore> store;
  std::string dir;
};

using Factory = std::function<StoreUnderTest()>;

std::string TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/store-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  return tmpl;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

class BlobStoreConformance : public ::testing::TestWithParam<Factory> {
 protected:
  void SetUp() override {
    auto sut = GetParam()();
    store_ = std::move(sut.store);
    dir_ = sut.dir;
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<BlobStore> store_;
  std::string dir_;
};

TEST_P(BlobStoreConformance, PutThenGetAndFindMissing) {
  Digest a = Digest::Of("alpha");
  Digest b = Digest::Of("beta");
  ASSERT_TRUE(store_->Put("ns", "alpha").ok());
  auto missing = store_->FindMissing("ns", {a, b, a, Digest::Empty()});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ(missing->size(), 1u);
  EXPECT_EQ((*missing)[0], b);
  auto got = store_->Get("ns", a);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "alpha");
  EXPECT_EQ(store_->Get("ns", b).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreConformance, EmptyBlobIsAlwaysPresent) {
  auto missing = store_->FindMissing("any", {Digest::Empty()});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
  auto got = store_->Get("any", Digest::Empty());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "");
}

TEST_P(BlobStoreConformance, MismatchedPutIsDataLossAndStoresNothing) {
  Digest claimed = Digest::Of("expected");
  std::pair<Digest, absl::string_view> item(claimed, "different");
  auto results = store_->PutBatch("ns", absl::MakeConstSpan(&item, 1));
  EXPECT_EQ(results[0].code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->Get("ns", claimed).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreConformance, NamespacesAreSeparate) {
  ASSERT_TRUE(store_->Put("team-a", "secret").ok());
  Digest d = Digest::Of("secret");
  EXPECT_EQ(store_->Get("team-b", d).status().code(),
            absl::StatusCode::kNotFound);
  auto missing = store_->FindMissing("team-b", {d});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->size(), 1u);
  // Writing the same content in team-b makes it readable there too.
  ASSERT_TRUE(store_->Put("team-b", "secret").ok());
  EXPECT_TRUE(store_->Get("team-b", d).ok());
}

TEST_P(BlobStoreConformance, StreamingWriteVerifiesAndCommits) {
  std::string data = RandomBytes(3 << 20, 1);
  Digest d = Digest::Of(data);
  auto writer = store_->OpenWrite("ns", d, "upload-1");
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (size_t off = 0; off < data.size(); off += 100000) {
    ASSERT_TRUE((*writer)
                    ->Write(static_cast<int64_t>(off),
                            absl::string_view(data).substr(off, 100000))
                    .ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  auto got = store_->Get("ns", d);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == data);
  EXPECT_EQ(*store_->QueryWrite("ns", d, "upload-1"), d.size());
}

TEST_P(BlobStoreConformance, StreamingWriteWithWrongDataIsDataLoss) {
  std::string data = RandomBytes(2 << 20, 2);
  Digest d = Digest::Of(data);
  data[12345] ^= 1;
  auto writer = store_->OpenWrite("ns", d, "");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write(0, data).ok());
  EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kDataLoss);
  writer->reset();
  EXPECT_EQ(store_->Get("ns", d).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreConformance, WrongOffsetAndOversizeAreInvalidArgument) {
  Digest d = Digest::Of("0123456789");
  auto writer = store_->OpenWrite("ns", d, "");
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Write(3, "345").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*writer)->Write(0, "0123456789ABC").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(BlobStoreConformance, InterruptedUploadResumes) {
  std::string data = RandomBytes(5 << 20, 3);
  Digest d = Digest::Of(data);
  {
    auto writer = store_->OpenWrite("ns", d, "u-42");
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(
        (*writer)->Write(0, absl::string_view(data).substr(0, 2 << 20)).ok());
    // Dropped without Finish: the connection was cut.
  }
  EXPECT_EQ(store_->Get("ns", d).status().code(), absl::StatusCode::kNotFound);
  auto committed = store_->QueryWrite("ns", d, "u-42");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, 2 << 20);
  auto writer = store_->OpenWrite("ns", d, "u-42");
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->committed_bytes(), 2 << 20);
  ASSERT_TRUE(
      (*writer)->Write(2 << 20, absl::string_view(data).substr(2 << 20)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  auto got = store_->Get("ns", d);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == data);
}

TEST_P(BlobStoreConformance, ExistingBlobWriteIsAlreadyComplete) {
  ASSERT_TRUE(store_->Put("ns", "present").ok());
  auto writer = store_->OpenWrite("ns", Digest::Of("present"), "x");
  ASSERT_TRUE(writer.ok());
  EXPECT_TRUE((*writer)->already_complete());
  EXPECT_EQ((*writer)->committed_bytes(), 7);
}

TEST_P(BlobStoreConformance, ReadOffsetAndLimit) {
  std::string data = RandomBytes(3 << 20, 4);
  Digest d = Digest::Of(data);
  auto writer = store_->OpenWrite("ns", d, "");
  ASSERT_TRUE((*writer)->Write(0, data).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  for (auto [off, lim] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 10}, {(1 << 20) - 5, 10}, {(2 << 20) + 7, 0}, {d.size(), 0}}) {
    auto reader = store_->OpenRead("ns", d, off, lim);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::string out;
    while (true) {
      auto n = (*reader)->Read(65536, &out);
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n == 0) break;
    }
    size_t want = lim == 0 ? data.size() - off : lim;
    EXPECT_TRUE(out == data.substr(off, want)) << off << "+" << lim;
  }
  EXPECT_EQ(store_->OpenRead("ns", d, d.size() + 1, 0).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_P(BlobStoreConformance, ActionCacheStorage) {
  auto* ac = dynamic_cast<ActionCacheStorage*>(store_.get());
  ASSERT_NE(ac, nullptr);
  Digest action = Digest::Of("action");
  EXPECT_EQ(ac->GetAction("ns", action).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(ac->PutAction("ns", action, "result").ok());
  EXPECT_EQ(*ac->GetAction("ns", action), "result");
  EXPECT_EQ(ac->GetAction("other", action).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(ac->DeleteAction("ns", action).ok());
  EXPECT_EQ(ac->GetAction("ns", action).status().code(),
            absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, BlobStoreConformance,
    ::testing::Values(
        Factory([] {
          return StoreUnderTest{std::make_unique<MemoryBlobStore>(), ""};
        }),
        Factory([] {
          std::string dir = TempDir();
          RocksDbBlobStoreOptions options;
          options.path = dir + "/db";
          auto store = RocksDbBlobStore::Open(options);
          EXPECT_TRUE(store.ok()) << store.status();
          return StoreUnderTest{std::move(*store), dir};
        })),
    [](const ::testing::TestParamInfo<Factory>& info) {
      return info.index == 0 ? std::string("Memory") : std::string("RocksDb");
    });

}  // namespace
}  // namespace stagefarm
