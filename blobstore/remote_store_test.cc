// RemoteBlobStore against the real stagefarm-cas: the BlobStore and
// ActionCacheStorage contracts the build engine relies on.
#include "blobstore/remote_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "blobstore/action_cache.h"
#include "tests/cas_process.h"
#include "tests/status_code.h"

namespace stagefarm {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

class RemoteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("remote-store");
    auto cas = CasProcess::Start(CasBinaryPath(), dir_ + "/cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_.emplace(std::move(*cas));
    channel_ = CasClient::Connect(cas_->address()).channels[0];
    store_ = std::make_unique<RemoteBlobStore>(
        std::make_shared<CasClient>(channel_, "team-a"));
  }
  void TearDown() override {
    store_.reset();
    cas_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::optional<CasProcess> cas_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<RemoteBlobStore> store_;
};

TEST_F(RemoteStoreTest, SmallAndLargeBlobsRoundTrip) {
  std::string small = "alpha";
  std::string large = RandomBytes(5 << 20, 1);  // over the batch limit
  Digest ds = Digest::Of(small), dl = Digest::Of(large);
  auto missing = store_->FindMissing("", {ds, dl});
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->size(), 2u);
  std::vector<std::pair<Digest, absl::string_view>> blobs = {{ds, small},
                                                             {dl, large}};
  for (const absl::Status& s : store_->PutBatch("", blobs)) {
    EXPECT_TRUE(s.ok()) << s;
  }
  EXPECT_TRUE(store_->FindMissing("", {ds, dl})->empty());
  EXPECT_EQ(*store_->Get("", ds), small);
  auto back = store_->Get("", dl);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == large);
  // A wrong digest in a batch is refused and stores nothing.
  Digest liar = Digest::Of("something else");
  std::vector<std::pair<Digest, absl::string_view>> bad = {{liar, "lie"}};
  EXPECT_EQ(testing::CodeOf(store_->PutBatch("", bad)[0]),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->FindMissing("", {liar})->size(), 1u);
}

TEST_F(RemoteStoreTest, StreamingWriteAndRangedRead) {
  std::string data = RandomBytes(3 << 20, 2);
  Digest d = Digest::Of(data);
  auto w = store_->OpenWrite("", d, "");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_FALSE((*w)->already_complete());
  EXPECT_EQ((*w)->Write(5, "x").code(), absl::StatusCode::kInvalidArgument);
  for (size_t off = 0; off < data.size(); off += 700000) {
    ASSERT_TRUE((*w)->Write(static_cast<int64_t>(off),
                            absl::string_view(data).substr(off, 700000))
                    .ok());
  }
  ASSERT_TRUE((*w)->Finish().ok());
  auto again = store_->OpenWrite("", d, "");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->already_complete());
  EXPECT_EQ(*store_->QueryWrite("", d, ""), d.size());

  auto r = store_->OpenRead("", d, 1000, 2 << 20);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string got;
  while (true) {
    auto n = (*r)->Read(333333, &got);
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
  }
  EXPECT_TRUE(got == data.substr(1000, 2 << 20));
  // The empty blob reads as nothing; a missing blob is NOT_FOUND at open.
  auto empty = store_->OpenRead("", Digest::Empty(), 0, 0);
  ASSERT_TRUE(empty.ok()) << empty.status();
  std::string none;
  EXPECT_EQ(*(*empty)->Read(10, &none), 0u);
  EXPECT_EQ(store_->OpenRead("", Digest::Of("absent"), 0, 0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RemoteStoreTest, WrongStreamedDataStoresNothing) {
  std::string data = RandomBytes(100000, 3);
  Digest d = Digest::Of(data);
  auto w = store_->OpenWrite("", d, "");
  ASSERT_TRUE(w.ok());
  std::string wrong = data;
  wrong[500] ^= 1;
  ASSERT_TRUE((*w)->Write(0, wrong).ok());
  EXPECT_EQ(testing::CodeOf((*w)->Finish()), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->FindMissing("", {d})->size(), 1u);
}

TEST_F(RemoteStoreTest, ActionCacheThroughTheServerAndInstancesAreSeparate) {
  ActionCache ac(store_.get(), store_.get());
  ASSERT_TRUE(store_->Put("", "step result").ok());
  reapi::ActionResult result;
  auto* f = result.add_output_files();
  f->set_path("step.json");
  Digest::Of("step result").ToProto(f->mutable_digest());
  Digest action = Digest::Of("action");
  ASSERT_TRUE(ac.Update("", action, result).ok());
  auto got = ac.Get("", action, {});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->output_files(0).path(), "step.json");
  EXPECT_EQ(store_->DeleteAction("", action).code(),
            absl::StatusCode::kUnimplemented);
  // Another instance sees neither the entry nor the blob.
  RemoteBlobStore other(std::make_shared<CasClient>(channel_, "team-b"));
  EXPECT_EQ(other.GetAction("", action).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(other.FindMissing("", {Digest::Of("step result")})->size(), 1u);
}

}  // namespace
}  // namespace stagefarm
