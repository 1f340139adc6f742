// The sharded CAS client against three real stagefarm-cas processes: blobs
// spread evenly by rendezvous hashing, every blob readable through the
// shards (batches, streams, RemoteBlobStore), a lost shard fails only the
// blobs it held (naming it), and with two replicas nothing fails.
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "blobstore/remote_store.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "gtest/gtest.h"
#include "tests/cas_process.h"

namespace stagefarm {
namespace {

class ShardedCasTest : public ::testing::Test {
 protected:
  void StartShards(int n) {
    dir_ = MakeTempDir("sharded-cas");
    for (int i = 0; i < n; ++i) {
      auto cas = CasProcess::Start(
          CasBinaryPath(), dir_ + "/cas" + std::to_string(i), {"--shard"});
      ASSERT_TRUE(cas.ok()) << cas.status();
      if (!addresses_.empty()) addresses_ += ",";
      addresses_ += cas->address();
      shards_.push_back(std::move(*cas));
    }
  }
  CasClient Client(int replicas) {
    CasTarget t = CasClient::Connect(addresses_);
    t.replicas = replicas;
    return CasClient(t, "team");
  }
  // Blobs each shard holds, asked of the shard alone.
  std::vector<int64_t> Counts() {
    std::vector<int64_t> out;
    for (auto& s : shards_) {
      CasClient one(FarmChannel(s.address()), "team");
      auto stats = one.GetStats();
      out.push_back(stats.ok() ? stats->blob_count() : -1);
    }
    return out;
  }
  static std::vector<std::pair<Digest, std::string>> Blobs(int n,
                                                           const char* tag) {
    std::vector<std::pair<Digest, std::string>> out;
    for (int i = 0; i < n; ++i) {
      std::string data = std::string(tag) + " blob " + std::to_string(i);
      out.emplace_back(Digest::Of(data), data);
    }
    return out;
  }
  void TearDown() override {
    shards_.clear();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::string addresses_;
  std::vector<CasProcess> shards_;
};

TEST_F(ShardedCasTest, SpreadsEvenlyAndReadsBack) {
  StartShards(3);
  CasClient cas = Client(1);
  ASSERT_EQ(cas.shard_count(), 3u);
  auto blobs = Blobs(3000, "even");
  for (size_t i = 0; i < blobs.size(); i += 500) {
    std::vector<std::pair<Digest, std::string>> part(
        blobs.begin() + i, blobs.begin() + std::min(blobs.size(), i + 500));
    auto put = cas.BatchUpdate(part);
    ASSERT_TRUE(put.ok()) << put.status();
    for (const auto& s : *put) ASSERT_TRUE(s.ok()) << s;
  }
  std::vector<int64_t> counts = Counts();
  int64_t total = 0;
  for (int64_t c : counts) {
    total += c;
    // Even: each shard within 15% of a third (1,000).
    EXPECT_GT(c, 850) << "shard holds too few";
    EXPECT_LT(c, 1150) << "shard holds too many";
  }
  EXPECT_EQ(total, 3000) << "each blob on exactly one shard";
  std::vector<Digest> digests;
  for (const auto& b : blobs) digests.push_back(b.first);
  auto missing = cas.FindMissing(digests);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_TRUE(missing->empty());
  auto read = cas.BatchRead(
      std::vector<Digest>(digests.begin(), digests.begin() + 300));
  ASSERT_TRUE(read.ok()) << read.status();
  for (size_t i = 0; i < read->size(); ++i) {
    ASSERT_TRUE((*read)[i].second.ok()) << (*read)[i].second.status();
    EXPECT_EQ(*(*read)[i].second, blobs[i].second);
  }
  // A large blob streams through ByteStream to its shard and back.
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i);
  ASSERT_TRUE(cas.WriteString(big).ok());
  auto back = cas.ReadString(Digest::Of(big));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == big);
  // The action cache is sharded by the action's digest; a result's outputs
  // live on other shards and are checked by the client.
  reapi::ActionResult result;
  result.set_exit_code(7);
  for (int i = 0; i < 20; ++i) {
    auto* f = result.add_output_files();
    f->set_path("out" + std::to_string(i));
    blobs[i].first.ToProto(f->mutable_digest());
  }
  Digest action = Digest::Of("some action");
  ASSERT_TRUE(cas.UpdateActionResult(action, result).ok());
  auto got = cas.GetActionResult(action);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->exit_code(), 7);
  EXPECT_EQ(got->output_files_size(), 20);
  reapi::ActionResult dangling = result;
  Digest::Of("never uploaded")
      .ToProto(dangling.add_output_files()->mutable_digest());
  absl::Status refused =
      cas.UpdateActionResult(Digest::Of("dangling action"), dangling);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
}

TEST_F(ShardedCasTest, FindMissingTakesMoreDigestsThanARequestMay) {
  // stagefarm-cas takes 100,000 digests a request; the client asks in
  // parts, whatever the caller gives it.
  StartShards(2);
  CasClient cas = Client(1);
  auto blobs = Blobs(1000, "present");
  auto put = cas.BatchUpdate(blobs);
  ASSERT_TRUE(put.ok()) << put.status();
  std::vector<Digest> digests;
  for (const auto& b : blobs) digests.push_back(b.first);
  for (int i = 0; i < 250000; ++i) {
    digests.push_back(Digest::Of("absent " + std::to_string(i)));
  }
  auto missing = cas.FindMissing(digests);
  ASSERT_TRUE(missing.ok()) << missing.status();
  ASSERT_EQ(missing->size(), 250000u);
  EXPECT_EQ((*missing)[0], digests[1000]);
  EXPECT_EQ(missing->back(), digests.back());
}

TEST_F(ShardedCasTest, LosingAShardFailsOnlyItsBlobsNamingIt) {
  StartShards(3);
  CasClient cas = Client(1);
  auto blobs = Blobs(300, "loss");
  auto put = cas.BatchUpdate(blobs);
  ASSERT_TRUE(put.ok()) << put.status();
  std::string lost = shards_[1].address();
  shards_[1].Kill9();
  int ok = 0, failed = 0;
  for (const auto& [digest, data] : blobs) {
    auto read = cas.ReadString(digest);
    bool on_lost = cas.shard_address(cas.ShardsFor(digest)[0]) == lost;
    if (read.ok()) {
      EXPECT_FALSE(on_lost);
      EXPECT_EQ(*read, data);
      ++ok;
    } else {
      EXPECT_TRUE(on_lost) << read.status();
      EXPECT_TRUE(absl::IsUnavailable(read.status())) << read.status();
      EXPECT_NE(read.status().message().find("CAS shard " + lost),
                std::string::npos)
          << read.status();
      ++failed;
    }
  }
  EXPECT_GT(ok, 150);
  EXPECT_GT(failed, 50);
  auto missing =
      cas.FindMissing({blobs[0].first, blobs[1].first, blobs[2].first,
                       blobs[3].first, blobs[4].first, blobs[5].first});
  // Some of these six are on the lost shard: the call says which shard.
  if (!missing.ok()) {
    EXPECT_NE(missing.status().message().find(lost), std::string::npos);
  }
}

TEST_F(ShardedCasTest, TwoReplicasSurviveALostShard) {
  StartShards(3);
  CasClient cas = Client(2);
  auto blobs = Blobs(600, "replicated");
  auto put = cas.BatchUpdate(blobs);
  ASSERT_TRUE(put.ok()) << put.status();
  for (const auto& s : *put) ASSERT_TRUE(s.ok()) << s;
  std::string big(2 << 20, 'r');
  ASSERT_TRUE(cas.WriteString(big).ok());
  std::vector<int64_t> counts = Counts();
  EXPECT_EQ(counts[0] + counts[1] + counts[2], 2 * 601)
      << "each blob on exactly two shards";
  reapi::ActionResult result;
  result.set_exit_code(3);
  Digest action = Digest::Of("replicated action");
  ASSERT_TRUE(cas.UpdateActionResult(action, result).ok());

  shards_[0].Kill9();
  for (const auto& [digest, data] : blobs) {
    auto read = cas.ReadString(digest);
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(*read, data);
  }
  std::vector<Digest> digests;
  for (const auto& b : blobs) digests.push_back(b.first);
  auto missing = cas.FindMissing(digests);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_TRUE(missing->empty());
  auto batch = cas.BatchRead(digests);
  ASSERT_TRUE(batch.ok()) << batch.status();
  for (const auto& [d, data] : *batch) EXPECT_TRUE(data.ok()) << data.status();
  auto back = cas.ReadString(Digest::Of(big));
  ASSERT_TRUE(back.ok()) << back.status();
  auto got = cas.GetActionResult(action);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->exit_code(), 3);
  // New blobs still go in (to the shards that are up), streamed ones too,
  // and through the store interface the build engine uses.
  auto more = cas.BatchUpdate(Blobs(50, "after the loss"));
  ASSERT_TRUE(more.ok()) << more.status();
  for (const auto& s : *more) EXPECT_TRUE(s.ok()) << s;
  std::string big2(3 << 20, 's');
  EXPECT_TRUE(cas.WriteString(big2).ok());
  CasTarget t = CasClient::Connect(addresses_);
  t.replicas = 2;
  RemoteBlobStore store(std::make_shared<CasClient>(t, "team"));
  std::string big3(5 << 20, 't');
  Digest d3 = Digest::Of(big3);
  auto writer = store.OpenWrite("", d3, "");
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (size_t off = 0; off < big3.size(); off += 1 << 20) {
    ASSERT_TRUE((*writer)
                    ->Write(static_cast<int64_t>(off),
                            absl::string_view(big3).substr(off, 1 << 20))
                    .ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  auto got3 = store.Get("", d3);
  ASSERT_TRUE(got3.ok()) << got3.status();
  EXPECT_TRUE(*got3 == big3);
}

}  // namespace
}  // namespace stagefarm
