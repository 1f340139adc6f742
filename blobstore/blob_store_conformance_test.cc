// One contract, every BlobStore: this suite runs against MemoryBlobStore,
// RocksDbBlobStore, and RemoteBlobStore on one real stagefarm-cas and on
// three shards of it. A remote store's namespaces are CAS instances (one
// client each), it cannot delete action-cache entries (REAPI has no such
// call), and it does not resume a broken upload from the BlobStore
// interface (CasClient retries whole streams): those tests say so and check
// what the remote store does instead.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>

#include "blobstore/memory_blob_store.h"
#include "blobstore/remote_store.h"
#include "blobstore/rocksdb_blob_store.h"
#include "common/cas_client.h"
#include "tests/cas_process.h"

namespace stagefarm {
namespace {

struct StoreUnderTest {
  std::unique_ptr<BlobStore> store;
  std::string dir;
  // The store to use for namespace `ns`: `store` itself where namespaces are
  // an argument; a client of instance `ns` for a remote CAS.
  std::function<BlobStore*(const std::string& ns)> in;
  bool deletes_actions = true;
  bool resumes_uploads = true;
  std::vector<CasProcess> servers;  // a remote store's CAS processes
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
    sut_ = GetParam()();
    store_ = sut_.store.get();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    sut_.store.reset();
    sut_.in = nullptr;
    sut_.servers.clear();
    if (!sut_.dir.empty()) std::filesystem::remove_all(sut_.dir);
  }
  BlobStore* In(const std::string& ns) {
    return sut_.in ? sut_.in(ns) : store_;
  }
  StoreUnderTest sut_;
  BlobStore* store_ = nullptr;
};

TEST_P(BlobStoreConformance, PutThenGetAndFindMissing) {
  Digest a = Digest::Of("alpha");
  Digest b = Digest::Of("beta");
  ASSERT_TRUE(In("ns")->Put("ns", "alpha").ok());
  auto missing = In("ns")->FindMissing("ns", {a, b, a, Digest::Empty()});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ(missing->size(), 1u);
  EXPECT_EQ((*missing)[0], b);
  auto got = In("ns")->Get("ns", a);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "alpha");
  EXPECT_EQ(In("ns")->Get("ns", b).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreConformance, EmptyBlobIsAlwaysPresent) {
  auto missing = In("any")->FindMissing("any", {Digest::Empty()});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());
  auto got = In("any")->Get("any", Digest::Empty());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "");
}

TEST_P(BlobStoreConformance, MismatchedPutIsDataLossAndStoresNothing) {
  Digest claimed = Digest::Of("expected");
  std::pair<Digest, absl::string_view> item(claimed, "different");
  auto results = In("ns")->PutBatch("ns", absl::MakeConstSpan(&item, 1));
  EXPECT_EQ(results[0].code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(In("ns")->Get("ns", claimed).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreConformance, NamespacesAreSeparate) {
  ASSERT_TRUE(In("team-a")->Put("team-a", "secret").ok());
  Digest d = Digest::Of("secret");
  EXPECT_EQ(In("team-b")->Get("team-b", d).status().code(),
            absl::StatusCode::kNotFound);
  auto missing = In("team-b")->FindMissing("team-b", {d});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->size(), 1u);
  // Writing the same content in team-b makes it readable there too.
  ASSERT_TRUE(In("team-b")->Put("team-b", "secret").ok());
  EXPECT_TRUE(In("team-b")->Get("team-b", d).ok());
}

TEST_P(BlobStoreConformance, StreamingWriteVerifiesAndCommits) {
  std::string data = RandomBytes(3 << 20, 1);
  Digest d = Digest::Of(data);
  auto writer = In("ns")->OpenWrite("ns", d, "upload-1");
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (size_t off = 0; off < data.size(); off += 100000) {
    ASSERT_TRUE((*writer)
                    ->Write(static_cast<int64_t>(off),
                            absl::string_view(data).substr(off, 100000))
                    .ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  auto got = In("ns")->Get("ns", d);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == data);
  EXPECT_EQ(*In("ns")->QueryWrite("ns", d, "upload-1"), d.size());
}

TEST_P(BlobStoreConformance, StreamingWriteWithWrongDataIsDataLoss) {
  std::string data = RandomBytes(2 << 20, 2);
  Digest d = Digest::Of(data);
  data[12345] ^= 1;
  auto writer = In("ns")->OpenWrite("ns", d, "");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Write(0, data).ok());
  EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kDataLoss);
  writer->reset();
  EXPECT_EQ(In("ns")->Get("ns", d).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(BlobStoreConformance, WrongOffsetAndOversizeAreInvalidArgument) {
  Digest d = Digest::Of("0123456789");
  auto writer = In("ns")->OpenWrite("ns", d, "");
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Write(3, "345").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*writer)->Write(0, "0123456789ABC").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(BlobStoreConformance, InterruptedUploadResumes) {
  std::string data = RandomBytes(5 << 20, 3);
  Digest d = Digest::Of(data);
  if (!sut_.resumes_uploads) {
    // Nothing of a broken upload is visible; it starts again from 0.
    {
      auto writer = In("ns")->OpenWrite("ns", d, "u-42");
      ASSERT_TRUE(writer.ok());
      ASSERT_TRUE(
          (*writer)->Write(0, absl::string_view(data).substr(0, 2 << 20)).ok());
    }
    EXPECT_EQ(In("ns")->Get("ns", d).status().code(),
              absl::StatusCode::kNotFound);
    auto writer = In("ns")->OpenWrite("ns", d, "u-42");
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->committed_bytes(), 0);
    ASSERT_TRUE((*writer)->Write(0, data).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
    writer->reset();
    EXPECT_TRUE(*In("ns")->Get("ns", d) == data);
    return;
  }
  {
    auto writer = In("ns")->OpenWrite("ns", d, "u-42");
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(
        (*writer)->Write(0, absl::string_view(data).substr(0, 2 << 20)).ok());
    // Dropped without Finish: the connection was cut.
  }
  EXPECT_EQ(In("ns")->Get("ns", d).status().code(),
            absl::StatusCode::kNotFound);
  auto committed = In("ns")->QueryWrite("ns", d, "u-42");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, 2 << 20);
  auto writer = In("ns")->OpenWrite("ns", d, "u-42");
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->committed_bytes(), 2 << 20);
  ASSERT_TRUE(
      (*writer)->Write(2 << 20, absl::string_view(data).substr(2 << 20)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  auto got = In("ns")->Get("ns", d);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == data);
}

TEST_P(BlobStoreConformance, ExistingBlobWriteIsAlreadyComplete) {
  ASSERT_TRUE(In("ns")->Put("ns", "present").ok());
  auto writer = In("ns")->OpenWrite("ns", Digest::Of("present"), "x");
  ASSERT_TRUE(writer.ok());
  EXPECT_TRUE((*writer)->already_complete());
  EXPECT_EQ((*writer)->committed_bytes(), 7);
}

TEST_P(BlobStoreConformance, ReadOffsetAndLimit) {
  std::string data = RandomBytes(3 << 20, 4);
  Digest d = Digest::Of(data);
  auto writer = In("ns")->OpenWrite("ns", d, "");
  ASSERT_TRUE((*writer)->Write(0, data).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  for (auto [off, lim] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 10}, {(1 << 20) - 5, 10}, {(2 << 20) + 7, 0}, {d.size(), 0}}) {
    auto reader = In("ns")->OpenRead("ns", d, off, lim);
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
  EXPECT_EQ(In("ns")->OpenRead("ns", d, d.size() + 1, 0).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_P(BlobStoreConformance, ActionCacheStorage) {
  auto* ac = dynamic_cast<ActionCacheStorage*>(In("ns"));
  auto* other = dynamic_cast<ActionCacheStorage*>(In("other"));
  ASSERT_NE(ac, nullptr);
  ASSERT_NE(other, nullptr);
  Digest action = Digest::Of("action");
  EXPECT_EQ(ac->GetAction("ns", action).status().code(),
            absl::StatusCode::kNotFound);
  // A serialized ActionResult (a remote CAS parses it): exit code 3.
  std::string result("\x20\x03", 2);
  ASSERT_TRUE(ac->PutAction("ns", action, result).ok());
  EXPECT_EQ(*ac->GetAction("ns", action), result);
  EXPECT_EQ(other->GetAction("other", action).status().code(),
            absl::StatusCode::kNotFound);
  if (!sut_.deletes_actions) {
    EXPECT_EQ(ac->DeleteAction("ns", action).code(),
              absl::StatusCode::kUnimplemented);
    return;
  }
  ASSERT_TRUE(ac->DeleteAction("ns", action).ok());
  EXPECT_EQ(ac->GetAction("ns", action).status().code(),
            absl::StatusCode::kNotFound);
}

// RemoteBlobStore on `shards` real stagefarm-cas processes (a
// comma-separated --cas list when there are several); one client per
// namespace, whose instance name is the namespace.
StoreUnderTest Remote(int shards) {
  StoreUnderTest sut;
  sut.dir = TempDir();
  std::string addresses;
  for (int i = 0; i < shards; ++i) {
    auto cas =
        CasProcess::Start(CasBinaryPath(), sut.dir + "/cas" + std::to_string(i),
                          shards > 1 ? std::vector<std::string>{"--shard"}
                                     : std::vector<std::string>{});
    EXPECT_TRUE(cas.ok()) << cas.status();
    if (!cas.ok()) return sut;
    addresses += (i ? "," : "") + cas->address();
    sut.servers.push_back(std::move(*cas));
  }
  auto stores =
      std::make_shared<std::map<std::string, std::unique_ptr<BlobStore>>>();
  auto target = std::make_shared<CasTarget>(CasClient::Connect(addresses));
  sut.in = [stores, target](const std::string& ns) {
    std::unique_ptr<BlobStore>& s = (*stores)[ns];
    if (s == nullptr) {
      s = std::make_unique<RemoteBlobStore>(
          std::make_shared<CasClient>(*target, ns));
    }
    return s.get();
  };
  sut.store = std::make_unique<RemoteBlobStore>(
      std::make_shared<CasClient>(*target, "ns"));
  sut.deletes_actions = false;
  sut.resumes_uploads = false;
  return sut;
}

const char* const kStoreNames[] = {"Memory", "RocksDb", "Remote",
                                   "RemoteSharded"};

INSTANTIATE_TEST_SUITE_P(
    Stores, BlobStoreConformance,
    ::testing::Values(Factory([] {
                        StoreUnderTest sut;
                        sut.store = std::make_unique<MemoryBlobStore>();
                        return sut;
                      }),
                      Factory([] {
                        std::string dir = TempDir();
                        RocksDbBlobStoreOptions options;
                        options.path = dir + "/db";
                        auto store = RocksDbBlobStore::Open(options);
                        EXPECT_TRUE(store.ok()) << store.status();
                        StoreUnderTest sut;
                        sut.store = std::move(*store);
                        sut.dir = dir;
                        return sut;
                      }),
                      Factory([] { return Remote(1); }),
                      Factory([] { return Remote(3); })),
    [](const ::testing::TestParamInfo<Factory>& info) {
      return std::string(kStoreNames[info.index]);
    });

}  // namespace
}  // namespace stagefarm
