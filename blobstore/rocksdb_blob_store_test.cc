// RocksDbBlobStore behaviour beyond the shared contract: persistence across
// reopen, resumption after a restart, LRU eviction under a size bound.
#include "blobstore/rocksdb_blob_store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include "tests/status_code.h"

namespace stagefarm {
namespace {

class RocksDbBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/rocks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    options_.path = dir_ + "/db";
    options_.clock = &clock_;
    options_.atime_granularity_micros = 0;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    store_.reset();
    auto store = RocksDbBlobStore::Open(options_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // `size` bytes of `fill`, every `step`th byte its offset's low bits.
  // Starts an upload of `data` under `key`, sends its first `n` bytes and
  // drops the writer (the client went away).
  void Interrupt(const std::string& key, absl::string_view data, size_t n) {
    auto writer = store_->OpenWrite("ns", Digest::Of(data), key);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(0, data.substr(0, n)).ok());
  }
  static std::string Patterned(size_t size, char fill, size_t step) {
    std::string data(size, fill);
    for (size_t i = 0; i < size; i += step) data[i] = static_cast<char>(i);
    return data;
  }

  std::string dir_;
  FakeClock clock_;
  RocksDbBlobStoreOptions options_;
  std::unique_ptr<RocksDbBlobStore> store_;
};

TEST_F(RocksDbBlobStoreTest, BlobsSurviveReopen) {
  Open();
  ASSERT_TRUE(store_->Put("ns", "durable").ok());
  Open();
  auto got = store_->Get("ns", Digest::Of("durable"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "durable");
  EXPECT_EQ(store_->Stats().blob_count, 1);
  EXPECT_EQ(store_->Stats().stored_bytes, 7);
}

TEST_F(RocksDbBlobStoreTest, ContentIsStoredOnceAcrossNamespaces) {
  Open();
  ASSERT_TRUE(store_->Put("a", "shared content").ok());
  ASSERT_TRUE(store_->Put("b", "shared content").ok());
  EXPECT_EQ(store_->Stats().blob_count, 1);
  EXPECT_EQ(store_->Stats().stored_bytes, 14);
}

TEST_F(RocksDbBlobStoreTest, NamespaceQuotaRefusesWhatDoesNotFit) {
  // "small" may hold 100 bytes; "big" has no quota.
  options_.namespace_quota = [](absl::string_view ns) -> int64_t {
    return ns == "small" ? 100 : 0;
  };
  options_.max_bytes = 1000;
  Open();
  std::string sixty(60, 'a'), fifty(50, 'b'), thirty(30, 'c');
  ASSERT_TRUE(store_->Put("small", sixty).ok());
  // The same content again costs nothing.
  ASSERT_TRUE(store_->Put("small", sixty).ok());
  absl::Status over = store_->Put("small", fifty);
  EXPECT_TRUE(absl::IsResourceExhausted(over)) << over;
  EXPECT_NE(over.message().find("may hold 100"), std::string::npos) << over;
  EXPECT_EQ(testing::CodeOf(store_->Get("small", Digest::Of(fifty))),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(store_->Put("big", fifty).ok());
  // Content another namespace holds still counts when it becomes visible.
  EXPECT_TRUE(absl::IsResourceExhausted(store_->Put("small", fifty)));
  // Streamed writes are refused at open, before any byte is sent.
  auto writer = store_->OpenWrite("small", Digest::Of(fifty), "");
  EXPECT_TRUE(absl::IsResourceExhausted(writer.status())) << writer.status();
  // Batches: each blob that fits goes in, the rest are refused.
  std::vector<std::pair<Digest, absl::string_view>> batch = {
      {Digest::Of(thirty), thirty}, {Digest::Of(fifty), fifty}};
  std::vector<absl::Status> results = store_->PutBatch("small", batch);
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_TRUE(absl::IsResourceExhausted(results[1])) << results[1];
  // The count survives a restart (rebuilt from the visibility records).
  Open();
  EXPECT_TRUE(absl::IsResourceExhausted(store_->Put("small", fifty)));
  ASSERT_TRUE(store_->Put("small", std::string(10, 'd')).ok());
  // Eviction frees quota: fill the store so "small"'s old blobs go.
  clock_.AdvanceMicros(10000000);
  for (int i = 0; i < 9; ++i) {
    clock_.AdvanceMicros(1000000);
    ASSERT_TRUE(
        store_->Put("big", std::string(100, static_cast<char>('e' + i))).ok());
  }
  EXPECT_TRUE(store_->Put("small", fifty).ok());
}

TEST_F(RocksDbBlobStoreTest, UploadResumesAfterRestartWithRehash) {
  std::string data = Patterned(3 << 20, 'x', 4099);
  Digest d = Digest::Of(data);
  Open();
  Interrupt("resume-me", data, 1500000);
  Open();  // The server restarted: hash state must be rebuilt from disk.
  EXPECT_EQ(*store_->QueryWrite("ns", d, "resume-me"), 1500000);
  auto writer = store_->OpenWrite("ns", d, "resume-me");
  ASSERT_TRUE(writer.ok());
  ASSERT_EQ((*writer)->committed_bytes(), 1500000);
  ASSERT_TRUE(
      (*writer)->Write(1500000, absl::string_view(data).substr(1500000)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  EXPECT_TRUE(*store_->Get("ns", d) == data);
  EXPECT_EQ(store_->Stats().uploads_in_progress, 0);
}

TEST_F(RocksDbBlobStoreTest, LogBypassingUploadsCommitAndResume) {
  options_.wal_bypass_bytes = 1 << 20;
  std::string data = Patterned(5 << 20, 'w', 997);
  Digest d = Digest::Of(data);
  Open();
  Interrupt("big", data, 3 << 20);
  Open();
  auto writer = store_->OpenWrite("ns", d, "big");
  ASSERT_TRUE(writer.ok());
  int64_t resume = (*writer)->committed_bytes();
  EXPECT_EQ(resume, 3 << 20);
  ASSERT_TRUE(
      (*writer)->Write(resume, absl::string_view(data).substr(resume)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  Open();
  auto got = store_->Get("ns", d);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == data);
}

// Large uploads write their chunks to a table file of their own under
// incoming/, added to the database when the upload commits or stops. No
// file stays there: not after a commit, a digest mismatch or an
// interruption, and one left by a crash is removed at the next open.
TEST_F(RocksDbBlobStoreTest, ChunkTablesOfLargeUploadsLeaveNothingBehind) {
  options_.wal_bypass_bytes = 1 << 20;
  std::string incoming = options_.path + "/incoming";
  auto files_in = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(incoming)) {
      (void)e;
      ++n;
    }
    return n;
  };
  std::string data = Patterned(3 << 20, 'c', 1021);
  Digest d = Digest::Of(data);
  Open();
  {
    // Interrupted: the chunks so far are added, and the upload resumes.
    auto writer = store_->OpenWrite("ns", d, "cut");
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(
        (*writer)->Write(0, absl::string_view(data).substr(0, 1500000)).ok());
    EXPECT_EQ(files_in(), 1);
  }
  EXPECT_EQ(files_in(), 0);
  EXPECT_EQ(*store_->QueryWrite("ns", d, "cut"), 1500000);
  {
    // The wrong content for its digest: nothing is stored.
    std::string wrong = data;
    wrong[2500000] ^= 1;
    auto writer = store_->OpenWrite("ns", d, "wrong");
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(0, wrong).ok());
    EXPECT_EQ((*writer)->Finish().code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_EQ(files_in(), 0);
  EXPECT_EQ(store_->Get("ns", d).status().code(), absl::StatusCode::kNotFound);

  // A table file a crash left behind is removed when the store opens.
  store_.reset();
  { std::ofstream(incoming + "/7.sst") << "cut short"; }
  Open();
  EXPECT_EQ(files_in(), 0);
  auto writer = store_->OpenWrite("ns", d, "cut");
  ASSERT_TRUE(writer.ok());
  ASSERT_EQ((*writer)->committed_bytes(), 1500000);
  ASSERT_TRUE(
      (*writer)->Write(1500000, absl::string_view(data).substr(1500000)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  EXPECT_EQ(files_in(), 0);
  Open();
  auto got = store_->Get("ns", d);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == data);
}

// The options of the embedded, short-lived store: tables opened lazily,
// memtables flushed at close, compactions abandoned, no memtable bloom. New
// data ids must still never reuse an id whose chunks are on disk, whether
// those chunks sit in tables or in the memtable recovered from the log.
TEST_F(RocksDbBlobStoreTest, ShortLivedOptionsKeepDataIdsUnique) {
  options_.max_open_files = 16;
  options_.flush_on_close_wal_bytes = 1;
  options_.abandon_compactions_at_close = true;
  options_.memtable_bloom = false;
  options_.wal_bypass_bytes = 1 << 20;
  std::string big = Patterned(3 << 20, 'b', 1013);
  Digest d = Digest::Of(big);
  std::vector<std::string> smalls;
  for (int round = 0; round < 3; ++round) {
    Open();
    // An interrupted upload in the first round, blobs in every round.
    if (round == 0) {
      auto writer = store_->OpenWrite("ns", d, "interrupted");
      ASSERT_TRUE(writer.ok());
      ASSERT_TRUE(
          (*writer)->Write(0, absl::string_view(big).substr(0, 2 << 20)).ok());
    }
    for (int i = 0; i < 20; ++i) {
      smalls.push_back("blob " + std::to_string(round) + "/" +
                       std::to_string(i) + std::string(i * 100, 's'));
      ASSERT_TRUE(store_->Put("ns", smalls.back()).ok());
    }
  }
  Open();
  auto writer = store_->OpenWrite("ns", d, "interrupted");
  ASSERT_TRUE(writer.ok());
  int64_t resume = (*writer)->committed_bytes();
  EXPECT_EQ(resume, 2 << 20);
  ASSERT_TRUE(
      (*writer)->Write(resume, absl::string_view(big).substr(resume)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();
  Open();
  auto got = store_->Get("ns", d);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == big);
  for (const std::string& s : smalls) {
    auto small = store_->Get("ns", Digest::Of(s));
    ASSERT_TRUE(small.ok()) << small.status();
    EXPECT_EQ(*small, s);
  }
}

TEST_F(RocksDbBlobStoreTest, QueryWriteSeesProgressOfAnActiveWriter) {
  Open();
  std::string data(4 << 20, 'p');
  Digest d = Digest::Of(data);
  auto writer = store_->OpenWrite("ns", d, "live");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(
      (*writer)->Write(0, absl::string_view(data).substr(0, 3 << 20)).ok());
  EXPECT_EQ(*store_->QueryWrite("ns", d, "live"), 3 << 20);
}

TEST_F(RocksDbBlobStoreTest, EmptyInterruptedUploadIsForgotten) {
  Open();
  Digest d = Digest::Of("never sent");
  { auto writer = store_->OpenWrite("ns", d, "nothing"); }
  EXPECT_EQ(store_->Stats().uploads_in_progress, 0);
  EXPECT_EQ(store_->QueryWrite("ns", d, "nothing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RocksDbBlobStoreTest, HugeReadLimitDoesNotOverflow) {
  Open();
  ASSERT_TRUE(store_->Put("ns", "0123456789").ok());
  auto reader = store_->OpenRead("ns", Digest::Of("0123456789"), 4,
                                 std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(reader.ok());
  std::string out;
  while (*(*reader)->Read(100, &out) > 0) {
  }
  EXPECT_EQ(out, "456789");
}

TEST_F(RocksDbBlobStoreTest, UnkeyedInterruptedUploadLeavesNothing) {
  Open();
  std::string data(2 << 20, 'q');
  Digest d = Digest::Of(data);
  {
    auto writer = store_->OpenWrite("ns", d, "");
    ASSERT_TRUE(
        (*writer)->Write(0, absl::string_view(data).substr(0, 1 << 20)).ok());
  }
  Open();
  EXPECT_EQ(store_->QueryWrite("ns", d, "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Stats().stored_bytes, 0);
}

TEST_F(RocksDbBlobStoreTest, ExpiredUploadsAreDiscardedOnOpen) {
  Open();
  std::string data(2 << 20, 'e');
  Digest d = Digest::Of(data);
  {
    auto writer = store_->OpenWrite("ns", d, "old");
    ASSERT_TRUE(
        (*writer)->Write(0, absl::string_view(data).substr(0, 1 << 20)).ok());
  }
  clock_.AdvanceMicros(options_.upload_ttl_micros + 1);
  Open();
  EXPECT_EQ(store_->QueryWrite("ns", d, "old").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RocksDbBlobStoreTest, PruneKeepsWhatItIsToldAndGoesOldestFirst) {
  Open();  // unbounded
  std::string a(1000, 'a'), b(1000, 'b'), c(1000, 'c'), d(1000, 'd');
  for (const std::string* x : {&a, &b, &c, &d}) {
    ASSERT_TRUE(store_->Put("ns", *x).ok());
    clock_.AdvanceMicros(10);
  }
  auto pinned = [&](const Digest& dg) { return dg == Digest::Of(a); };
  RocksDbBlobStore::PruneResult m = store_->Measure(pinned);
  EXPECT_EQ(m.blobs, 1);
  EXPECT_EQ(m.bytes, 1000);
  // Down to 2000 bytes: `a` is the oldest but kept, so `b` and `c` go.
  RocksDbBlobStore::PruneResult r = store_->Prune(2000, pinned);
  EXPECT_EQ(r.blobs, 2);
  EXPECT_EQ(r.bytes, 2000);
  auto missing = store_->FindMissing(
      "ns", {Digest::Of(a), Digest::Of(b), Digest::Of(c), Digest::Of(d)});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(*missing, (std::vector<Digest>{Digest::Of(b), Digest::Of(c)}));
  // Everything that is not kept, and the kept blob survives a reopen.
  r = store_->Prune(0, pinned);
  EXPECT_EQ(r.blobs, 1);
  Open();
  EXPECT_TRUE(store_->Get("ns", Digest::Of(a)).ok());
  EXPECT_EQ(store_->Get("ns", Digest::Of(d)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Stats().stored_bytes, 1000);
  // Prune never takes a kept blob, even with nothing else left.
  r = store_->Prune(0, pinned);
  EXPECT_EQ(r.blobs, 0);
  EXPECT_TRUE(store_->Get("ns", Digest::Of(a)).ok());
}

TEST_F(RocksDbBlobStoreTest, EvictsLeastRecentlyUsedFirst) {
  options_.max_bytes = 3000;
  Open();
  std::string a(1000, 'a'), b(1000, 'b'), c(1000, 'c'), d(1000, 'd');
  ASSERT_TRUE(store_->Put("ns", a).ok());
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Put("ns", b).ok());
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Put("ns", c).ok());
  clock_.AdvanceMicros(10);
  // Reading `a` makes `b` the least recently used.
  ASSERT_TRUE(store_->Get("ns", Digest::Of(a)).ok());
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Put("ns", d).ok());
  auto missing = store_->FindMissing(
      "ns", {Digest::Of(a), Digest::Of(b), Digest::Of(c), Digest::Of(d)});
  ASSERT_TRUE(missing.ok());
  ASSERT_EQ(missing->size(), 1u);
  EXPECT_EQ((*missing)[0], Digest::Of(b));
  StoreStats stats = store_->Stats();
  EXPECT_EQ(stats.stored_bytes, 3000);
  EXPECT_EQ(stats.evicted_blobs, 1);
  EXPECT_EQ(stats.evicted_bytes, 1000);
  // FindMissing counted as use of a, c and d; make the order d < c < a.
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Get("ns", Digest::Of(c)).ok());
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Get("ns", Digest::Of(a)).ok());
  // The order survives a restart (atime is persisted).
  Open();
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Put("ns", std::string(1000, 'e')).ok());
  EXPECT_EQ(store_->Get("ns", Digest::Of(d)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Get("ns", Digest::Of(c)).ok());
  EXPECT_TRUE(store_->Get("ns", Digest::Of(a)).ok());
}

// The eviction order is exact least-recently-used (ties by digest) over
// more blobs than one fill of the store's eviction queue, with uses between
// evictions, blobs kept by Prune, equal times and a clock that goes back
// (before the queue is filled, and after):
// checked against a plain ordered model of every blob's last use.
TEST_F(RocksDbBlobStoreTest, EvictionOrderMatchesAnExactModel) {
  Open();  // unbounded: Prune evicts
  constexpr int kBlobs = 10000;
  std::vector<std::string> blobs;
  std::map<Sha256::Raw, int64_t> used;  // the model: last use a blob
  for (int i = 0; i < kBlobs; ++i) {
    blobs.push_back("blob " + std::to_string(i));
    if (i % 3 != 0) clock_.AdvanceMicros(1);         // some share a time
    if (i == kBlobs / 2) clock_.AdvanceMicros(-50);  // the clock goes back
    ASSERT_TRUE(store_->Put("ns", blobs.back()).ok());
    used[Digest::Of(blobs.back()).raw()] = clock_.NowMicros();
  }
  auto kept = [](const Digest& d) { return d.raw()[0] % 7 == 0; };
  // Evicts the model's oldest blobs not kept down to `bound` bytes.
  auto model_prune = [&](int64_t bound) {
    std::set<std::pair<int64_t, Sha256::Raw>> order;
    int64_t bytes = 0;
    for (const auto& [raw, t] : used) order.emplace(t, raw);
    for (const std::string& b : blobs) {
      if (used.count(Digest::Of(b).raw()) != 0) bytes += b.size();
    }
    std::map<Sha256::Raw, int64_t> sizes;
    for (const std::string& b : blobs) sizes[Digest::Of(b).raw()] = b.size();
    for (const auto& [t, raw] : order) {
      if (bytes <= bound) break;
      if (kept(Digest::FromRaw(raw, sizes[raw]))) continue;
      bytes -= sizes[raw];
      used.erase(raw);
    }
  };
  uint32_t seed = 12345;
  auto random = [&seed] { return seed = seed * 1103515245 + 12345, seed >> 8; };
  int64_t stored = store_->Stats().stored_bytes;
  for (int round = 0; round < 6; ++round) {
    if (round == 2) {
      // New blobs stored while the clock is behind every use so far: the
      // oldest now, so the next to go.
      clock_.AdvanceMicros(-1'000'000);
      for (int i = 0; i < 50; ++i) {
        blobs.push_back("late blob " + std::to_string(i));
        ASSERT_TRUE(store_->Put("ns", blobs.back()).ok());
        used[Digest::Of(blobs.back()).raw()] = clock_.NowMicros();
      }
      clock_.AdvanceMicros(2'000'000);
    }
    // Uses of random blobs still stored, some at the same time.
    for (int i = 0; i < 800; ++i) {
      const std::string& b = blobs[random() % blobs.size()];
      auto it = used.find(Digest::Of(b).raw());
      if (it == used.end()) continue;
      if (random() % 2 == 0) clock_.AdvanceMicros(1);
      ASSERT_TRUE(store_->Get("ns", Digest::Of(b)).ok());
      it->second = clock_.NowMicros();
    }
    stored = stored * 3 / 4;
    model_prune(stored);
    store_->Prune(stored, kept);
    size_t left = 0;
    for (const std::string& b : blobs) {
      bool in_model = used.count(Digest::Of(b).raw()) != 0;
      left += in_model;
      ASSERT_EQ(store_->Get("ns", Digest::Of(b)).ok(), in_model)
          << "round " << round << ": " << b;
      if (in_model) used[Digest::Of(b).raw()] = clock_.NowMicros();
      clock_.AdvanceMicros(random() % 2);
    }
    ASSERT_GT(left, 0u);
    stored = store_->Stats().stored_bytes;
  }
}

TEST_F(RocksDbBlobStoreTest, ReaderKeepsItsSnapshotThroughEviction) {
  options_.max_bytes = 4 << 20;
  Open();
  std::string big(3 << 20, 'z');
  Digest d = Digest::Of(big);
  ASSERT_TRUE(store_->Put("ns", big).ok());
  auto reader = store_->OpenRead("ns", d, 0, 0);
  ASSERT_TRUE(reader.ok());
  clock_.AdvanceMicros(10);
  ASSERT_TRUE(store_->Put("ns", std::string(3 << 20, 'y')).ok());
  EXPECT_EQ(store_->Get("ns", d).status().code(), absl::StatusCode::kNotFound);
  std::string out;
  while (*(*reader)->Read(1 << 20, &out) > 0) {
  }
  EXPECT_TRUE(out == big);
}

TEST_F(RocksDbBlobStoreTest, BlobLargerThanTheBoundIsResourceExhausted) {
  options_.max_bytes = 100;
  Open();
  auto writer = store_->OpenWrite("ns", Digest::Of(std::string(101, 'x')), "");
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->Put("ns", std::string(101, 'x')).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace stagefarm
