#include "blobstore/rocksdb_blob_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "blobstore/rocksdb_layout.h"
#include "common/log.h"
#include "common/rocksdb_support.h"
#include "common/status_macros.h"
#include "stagefarm/v1/cas.pb.h"

namespace stagefarm {

using rocksdb_layout::ChunkKey;
using rocksdb_layout::DeleteChunks;
using rocksdb_layout::EncodeBlobRecord;
using rocksdb_layout::FromRocks;
using rocksdb_layout::IdKey;
using rocksdb_layout::RawSlice;
using rocksdb_layout::ReadBigEndian64;
using rocksdb_layout::VisibleKey;

// ---------------------------------------------------------------- Store

RocksDbBlobStore::RocksDbBlobStore(const RocksDbBlobStoreOptions& options)
    : options_(options) {}

RocksDbBlobStore::~RocksDbBlobStore() {
  if (db_ == nullptr) return;
  if (options_.flush_on_close_wal_bytes > 0) {
    rocksdb::VectorLogPtr wals;
    uint64_t bytes = 0;
    if (db_->GetSortedWalFiles(wals).ok()) {
      for (const auto& w : wals) bytes += w->SizeFileBytes();
    }
    if (bytes >= static_cast<uint64_t>(options_.flush_on_close_wal_bytes)) {
      (void)db_->Flush(rocksdb::FlushOptions(), handles_);
    }
  }
  if (options_.abandon_compactions_at_close) {
    rocksdb::CancelAllBackgroundWork(db_.get(), /*wait=*/true);
  }
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close().PermitUncheckedError();
}

absl::StatusOr<std::unique_ptr<RocksDbBlobStore>> RocksDbBlobStore::Open(
    const RocksDbBlobStoreOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("data directory: empty path");
  }
  if (options.chunk_bytes == 0) {
    return absl::InvalidArgumentError("chunk_bytes: must be positive");
  }
  std::unique_ptr<RocksDbBlobStore> store(new RocksDbBlobStore(options));

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 4;
  // RocksDB's own log goes to ours, not to a LOG file on the data's disk
  // (common/rocksdb_support.h: a full disk would abort the process); after
  // a full disk, writes resume as soon as there is room.
  db_options.info_log = RocksDbLogger("cas", options.log_errors_only);
  store->recovery_ = std::make_unique<DiskFullRecovery>(options.path);
  db_options.listeners.push_back(store->recovery_->listener());
  // Replaying the log at open is enough; flushing it there costs a table
  // write and fsyncs on every start of a short-lived embedded process.
  db_options.avoid_flush_during_recovery = true;
  // Nor read every table's statistics at open (they only tune compaction).
  db_options.skip_stats_update_on_db_open = true;
  // Tables are opened at open by this many threads per column family; the
  // default (16) starts ~100 short-lived threads for a handful of files.
  db_options.max_file_opening_threads = 1;
  db_options.max_open_files = options.max_open_files;
  // Bound memtable memory across column families: large uploads must not
  // grow the process.
  db_options.db_write_buffer_size = 64 << 20;
  // A log is deleted only once every column family with writes in it has
  // flushed: the small families (records, action cache) fill their
  // memtables slowly and would keep the chunk family's logs, and the disk
  // they take, for days. Past this much log they are flushed too.
  db_options.max_total_wal_size = 64 << 20;

  // One block cache for all column families bounds read memory.
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(64 << 20);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.data_block_index_type =
      rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  std::shared_ptr<rocksdb::TableFactory> table_factory(
      rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::ColumnFamilyOptions small;
  small.table_factory = table_factory;
  small.write_buffer_size = 16 << 20;
  if (options.memtable_bloom) {
    small.memtable_whole_key_filtering = true;
    small.memtable_prefix_bloom_size_ratio = 0.02;
  }

  // Chunk tables: every chunk is its own data block (a block is cut as soon
  // as it holds anything). With the default 4 KiB target a small blob's
  // chunk shared a block with the next 1 MiB chunk, so reading a 300-byte
  // step result read, checksummed and copied a megabyte.
  rocksdb::BlockBasedTableOptions chunk_table = table;
  chunk_table.block_size = 1;
  chunk_table.block_size_deviation = 0;
  rocksdb::ColumnFamilyOptions chunks;
  chunks.table_factory.reset(rocksdb::NewBlockBasedTableFactory(chunk_table));
  chunks.write_buffer_size = 16 << 20;
  chunks.max_write_buffer_number = 3;
  chunks.compression = rocksdb::kNoCompression;
  // Chunk keys grow with the data id, so flushed files rarely overlap and
  // compaction mostly moves files instead of rewriting content. Plain table
  // files (XXH3 block checksums) read back twice as fast here as integrated
  // BlobDB, whose blob records use CRC32C, which Debian's librocksdb computes
  // in software (measured: ~1.2 GB/s against ~0.6 GB/s for ByteStream reads).
  chunks.level_compaction_dynamic_level_bytes = true;
  chunks.target_file_size_base = 256 << 20;
  chunks.max_bytes_for_level_base = 1024 << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, small},
      {"meta", small},
      {"chunks", chunks},
      {"visible", small},
      {"uploads", small},
      {"ac", small},
  };
  rocksdb::DB* db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, options.path, cfs, &store->handles_, &db);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "opening the CAS database in ", options.path, ": ", s.ToString()));
  }
  store->db_.reset(db);
  store->meta_ = store->handles_[1];
  store->chunks_ = store->handles_[2];
  store->visible_ = store->handles_[3];
  store->uploads_cf_ = store->handles_[4];
  store->ac_ = store->handles_[5];
  store->chunk_options_ =
      std::make_unique<rocksdb::Options>(db->GetOptions(store->chunks_));
  // Chunk tables of large uploads are written here and moved into the
  // database when added; any left here were cut short by a crash and never
  // added (their upload resumes from what the database holds).
  store->tables_dir_ = options.path + "/incoming";
  std::error_code ec;
  std::filesystem::remove_all(store->tables_dir_, ec);
  if (!std::filesystem::create_directories(store->tables_dir_, ec) && ec) {
    return absl::UnavailableError(
        absl::StrCat("creating ", store->tables_dir_, ": ", ec.message()));
  }
  // Recovered logs are replayed, not flushed, at open (see
  // avoid_flush_during_recovery); short-lived processes would let them pile
  // up, so past a few they are flushed into tables once.
  rocksdb::VectorLogPtr wals;
  if (db->GetSortedWalFiles(wals).ok() && wals.size() > 4) {
    rocksdb::FlushOptions fo;
    (void)db->Flush(fo, store->handles_);
  }
  RETURN_IF_ERROR(store->Load());
  return store;
}

absl::Status RocksDbBlobStore::Load() {
  absl::MutexLock lock(&mu_);
  uint64_t max_id = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      v1::BlobRecord record;
      if (it->key().size() != Sha256::kRawSize ||
          !record.ParseFromArray(it->value().data(),
                                 static_cast<int>(it->value().size()))) {
        return absl::DataLossError("CAS database: unreadable blob record");
      }
      Sha256::Raw raw;
      std::memcpy(raw.data(), it->key().data(), raw.size());
      AddEntryLocked(raw, record.size_bytes(), record.data_id(),
                     record.last_access_micros());
      max_id = std::max(max_id, record.data_id());
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "loading blob records"));
  }
  if (options_.namespace_quota) {
    // Bytes per namespace, for the quotas.
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), visible_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() < Sha256::kRawSize) continue;
      Sha256::Raw raw;
      std::memcpy(raw.data(), it->key().data(), raw.size());
      auto e = index_.find(raw);
      if (e == index_.end()) continue;
      ns_bytes_[std::string(it->key().data() + raw.size(),
                            it->key().size() - raw.size())] += e->second.size;
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "counting bytes per namespace"));
  }
  {
    // The highest chunk key, without reading a (1 MiB) chunk: the tables'
    // largest keys from their metadata, and the memtable recovered from the
    // log. A range tombstone's end may exceed every live key by one id,
    // which only skips an id.
    rocksdb::ColumnFamilyMetaData md;
    db_->GetColumnFamilyMetaData(chunks_, &md);
    for (const auto& level : md.levels) {
      for (const auto& file : level.files) {
        if (file.largestkey.size() >= 8) {
          max_id = std::max(max_id, ReadBigEndian64(file.largestkey.data()));
        }
      }
    }
    rocksdb::ReadOptions memtable_only;
    memtable_only.read_tier = rocksdb::kMemtableTier;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(memtable_only, chunks_));
    it->SeekToLast();
    if (it->Valid() && it->key().size() == 16) {
      max_id = std::max(max_id, ReadBigEndian64(it->key().data()));
    }
  }
  {
    // Interrupted uploads: keep resumable ones within the TTL.
    int64_t now = options_.clock->NowMicros();
    rocksdb::WriteBatch discard;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), uploads_cf_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 8) continue;
      uint64_t id = ReadBigEndian64(it->key().data());
      max_id = std::max(max_id, id);
      v1::UploadRecord record;
      bool ok = record.ParseFromArray(it->value().data(),
                                      static_cast<int>(it->value().size()));
      absl::StatusOr<Digest> digest =
          ok ? Digest::Parse(record.hash(), record.size_bytes())
             : absl::StatusOr<Digest>(absl::DataLossError("bad record"));
      if (!ok || !digest.ok() || record.upload_key().empty() ||
          now - record.started_micros() > options_.upload_ttl_micros) {
        DeleteChunks(&discard, chunks_, id);
        discard.Delete(uploads_cf_, it->key());
        continue;
      }
      // What is durable is the contiguous run of chunks from offset 0 (chunks
      // of large uploads bypass the log, so the record cannot know it).
      int64_t durable = 0;
      {
        std::string upper = IdKey(id + 1);
        rocksdb::Slice upper_slice(upper);
        rocksdb::ReadOptions ro;
        ro.iterate_upper_bound = &upper_slice;
        ro.fill_cache = false;
        std::unique_ptr<rocksdb::Iterator> chunk(db_->NewIterator(ro, chunks_));
        for (chunk->Seek(IdKey(id)); chunk->Valid(); chunk->Next()) {
          if (chunk->key().size() != 16 ||
              static_cast<int64_t>(ReadBigEndian64(chunk->key().data() + 8)) !=
                  durable) {
            break;
          }
          durable += static_cast<int64_t>(chunk->value().size());
        }
      }
      // Anything past a gap can never be used: drop it.
      discard.DeleteRange(chunks_, ChunkKey(id, static_cast<uint64_t>(durable)),
                          IdKey(id + 1));
      uploads_[record.upload_key()] = Upload{id, *digest, durable, false};
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "loading uploads"));
    RETURN_IF_ERROR(Write(&discard, false));
    last_upload_gc_ = now;
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), ac_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++ac_entries_;
  }
  next_data_id_ = max_id + 1;
  EvictLocked();
  return absl::OkStatus();
}

absl::Status RocksDbBlobStore::RoomFor(uint64_t bytes) {
  // Refused before RocksDB sees a full disk (common/rocksdb_support.h).
  rocksdb::Status room = recovery_->CheckRoom(db_.get(), handles_, bytes);
  if (room.ok()) return absl::OkStatus();
  ++disk_full_errors_;
  return FromRocks(room, "writing to the CAS database");
}

absl::Status RocksDbBlobStore::Write(rocksdb::WriteBatch* batch, bool sync) {
  RETURN_IF_ERROR(RoomFor(batch->GetDataSize()));
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return Checked([&] { return db_->Write(wo, batch); },
                 "writing to the CAS database");
}

absl::Status RocksDbBlobStore::Checked(
    const std::function<rocksdb::Status()>& op, absl::string_view what) {
  rocksdb::Status s = op();
  if (s.ok() || !IsDiskFull(s)) return FromRocks(s, what);
  // After a write fails for want of space RocksDB refuses every write
  // until it has recovered, which it tries at its own pace (seconds). Try
  // at once, at most every 100 ms: writes work again as soon as there is
  // room. A failed write left nothing behind (the batch is all or none).
  ++disk_full_errors_;
  if (recovery_->TryResume(db_.get())) s = op();
  return FromRocks(s, what);
}

std::string RocksDbBlobStore::UploadMapKey(absl::string_view ns,
                                           absl::string_view upload_key) const {
  return absl::StrCat(ns, std::string(1, '\0'), upload_key);
}

bool RocksDbBlobStore::IsVisible(absl::string_view ns, const Digest& digest) {
  std::string value;
  return db_
      ->Get(rocksdb::ReadOptions(), visible_, VisibleKey(digest.raw(), ns),
            &value)
      .ok();
}

void RocksDbBlobStore::TouchLocked(const Sha256::Raw& key, Entry& entry,
                                   rocksdb::WriteBatch* batch) {
  int64_t now = options_.clock->NowMicros();
  if (now <= entry.atime) return;
  entry.atime = now;
  NoteAgeLocked({now, key});
  if (now - entry.persisted_atime >= options_.atime_granularity_micros) {
    entry.persisted_atime = now;
    batch->Put(meta_, RawSlice(key),
               EncodeBlobRecord(entry.size, entry.data_id, now));
  }
}

absl::Status RocksDbBlobStore::CheckQuotaLocked(absl::string_view ns,
                                                int64_t add) {
  if (!options_.namespace_quota) return absl::OkStatus();
  int64_t quota = options_.namespace_quota(ns);
  if (quota <= 0) return absl::OkStatus();
  auto it = ns_bytes_.find(ns);
  int64_t held = it == ns_bytes_.end() ? 0 : it->second;
  if (held + add <= quota) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "storage quota: this instance holds ", held, " bytes and may hold ",
      quota, " (its tenant's max_bytes); ", add, " more bytes do not fit"));
}

void RocksDbBlobStore::EvictLocked() {
  if (options_.max_bytes <= 0) return;
  (void)EvictDownToLocked(options_.max_bytes, nullptr);
}

void RocksDbBlobStore::AddEntryLocked(const Sha256::Raw& key, int64_t size,
                                      uint64_t data_id, int64_t atime) {
  Entry& e = index_[key];
  e.size = size;
  e.data_id = data_id;
  e.atime = e.persisted_atime = atime;
  stored_bytes_ += size;
  NoteAgeLocked({atime, key});
}

void RocksDbBlobStore::NoteAgeLocked(const AgeKey& age) {
  // The queue's first pair is its newest.
  if (!evict_queue_.empty() && age < evict_queue_.front()) {
    evict_queue_.clear();
  }
}

void RocksDbBlobStore::RefillEvictQueueLocked(const AgeKey* after) {
  // The oldest `want` entries by a bounded max-heap: memory for those only.
  const size_t want = std::max<size_t>(4096, index_.size() / 64);
  std::vector<AgeKey> heap;
  heap.reserve(std::min(want, index_.size()));
  for (const auto& [raw, entry] : index_) {
    AgeKey age{entry.atime, raw};
    if (after != nullptr && !(*after < age)) continue;
    if (heap.size() < want) {
      heap.push_back(age);
      std::push_heap(heap.begin(), heap.end());
    } else if (age < heap.front()) {
      std::pop_heap(heap.begin(), heap.end());
      heap.back() = age;
      std::push_heap(heap.begin(), heap.end());
    }
  }
  std::sort(heap.begin(), heap.end(), std::greater<AgeKey>());
  evict_queue_ = std::move(heap);
}

RocksDbBlobStore::PruneResult RocksDbBlobStore::EvictDownToLocked(
    int64_t bound, const std::function<bool(const Digest&)>* keep) {
  PruneResult result;
  std::vector<AgeKey> kept;  // oldest first
  AgeKey last{};
  bool consumed = false;
  while (stored_bytes_ > bound) {
    if (evict_queue_.empty()) {
      // Past what this call already looked at (the kept ones).
      RefillEvictQueueLocked(consumed ? &last : nullptr);
      if (evict_queue_.empty()) break;
    }
    AgeKey age = evict_queue_.back();
    evict_queue_.pop_back();
    last = age;
    consumed = true;
    const Sha256::Raw& raw = age.second;
    auto it = index_.find(raw);
    if (it == index_.end() || it->second.atime != age.first) continue;
    if (keep != nullptr && (*keep)(Digest::FromRaw(raw, it->second.size))) {
      kept.push_back(age);
      continue;
    }
    rocksdb::WriteBatch batch;
    batch.Delete(meta_, RawSlice(raw));
    DeleteChunks(&batch, chunks_, it->second.data_id);
    // Every namespace's visibility record of this content.
    std::string lower(reinterpret_cast<const char*>(raw.data()), raw.size());
    std::unique_ptr<rocksdb::Iterator> vis(
        db_->NewIterator(rocksdb::ReadOptions(), visible_));
    std::vector<std::string> namespaces;
    for (vis->Seek(lower); vis->Valid() && vis->key().starts_with(lower);
         vis->Next()) {
      batch.Delete(visible_, vis->key());
      if (options_.namespace_quota) {
        namespaces.emplace_back(vis->key().data() + raw.size(),
                                vis->key().size() - raw.size());
      }
    }
    if (!Write(&batch, false).ok()) {
      // Keep the index consistent with the database; try again later.
      evict_queue_.push_back(age);
      break;
    }
    for (const std::string& ns : namespaces) {
      ns_bytes_[ns] -= it->second.size;
    }
    stored_bytes_ -= it->second.size;
    evicted_bytes_ += it->second.size;
    ++evicted_blobs_;
    ++result.blobs;
    result.bytes += it->second.size;
    index_.erase(it);
  }
  // The kept ones are older than all the queue holds: back at its end.
  evict_queue_.insert(evict_queue_.end(), kept.rbegin(), kept.rend());
  return result;
}

RocksDbBlobStore::PruneResult RocksDbBlobStore::Measure(
    const std::function<bool(const Digest&)>& which) {
  absl::MutexLock lock(&mu_);
  PruneResult r;
  for (const auto& [raw, entry] : index_) {
    if (!which(Digest::FromRaw(raw, entry.size))) continue;
    ++r.blobs;
    r.bytes += entry.size;
  }
  return r;
}

RocksDbBlobStore::PruneResult RocksDbBlobStore::Prune(
    int64_t keep_bytes, const std::function<bool(const Digest&)>& keep) {
  absl::MutexLock lock(&mu_);
  return EvictDownToLocked(std::max<int64_t>(0, keep_bytes), &keep);
}

absl::StatusOr<std::vector<Digest>> RocksDbBlobStore::FindMissing(
    absl::string_view ns, absl::Span<const Digest> digests) {
  std::vector<Digest> unique;
  absl::flat_hash_set<Digest> seen;
  for (const Digest& d : digests) {
    if (d.is_empty_blob()) continue;
    if (seen.insert(d).second) unique.push_back(d);
  }
  std::vector<std::string> keys;
  keys.reserve(unique.size());
  for (const Digest& d : unique) keys.push_back(VisibleKey(d.raw(), ns));
  std::vector<rocksdb::Slice> key_slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  std::vector<Digest> missing;
  rocksdb::WriteBatch touch;
  {
    // Visibility and the index are read under one lock so that eviction and
    // commits (also under it) cannot interleave; the access-time update is
    // written before the lock is released so it can never resurrect a blob
    // evicted in between.
    absl::MutexLock lock(&mu_);
    if (!keys.empty()) {
      db_->MultiGet(rocksdb::ReadOptions(), visible_, keys.size(),
                    key_slices.data(), values.data(), statuses.data());
    }
    for (size_t i = 0; i < unique.size(); ++i) {
      if (!statuses[i].ok() && !statuses[i].IsNotFound()) {
        return FromRocks(statuses[i], "FindMissing lookup");
      }
      auto it = index_.find(unique[i].raw());
      if (!statuses[i].ok() || it == index_.end() ||
          it->second.size != unique[i].size()) {
        missing.push_back(unique[i]);
        continue;
      }
      TouchLocked(unique[i].raw(), it->second, &touch);
    }
    if (touch.Count() > 0) Write(&touch, false).IgnoreError();
  }
  return missing;
}

std::vector<absl::Status> RocksDbBlobStore::PutBatch(
    absl::string_view ns,
    absl::Span<const std::pair<Digest, absl::string_view>> blobs) {
  std::vector<absl::Status> results(blobs.size());
  // Verify outside the lock: hashing is the expensive part.
  for (size_t i = 0; i < blobs.size(); ++i) {
    const auto& [digest, data] = blobs[i];
    if (options_.max_bytes > 0 && digest.size() > options_.max_bytes) {
      results[i] = absl::ResourceExhaustedError(absl::StrCat(
          "blob of ", digest.size(), " bytes exceeds the store's size limit"));
      continue;
    }
    Digest actual = Digest::Of(data);
    if (actual != digest) {
      results[i] = absl::DataLossError(
          absl::StrCat("data hashes to ", actual.ToString(), ", not ",
                       digest.ToString(), "; nothing stored"));
    }
  }
  rocksdb::WriteBatch batch;
  int64_t now = options_.clock->NowMicros();
  absl::MutexLock lock(&mu_);
  struct Added {
    Sha256::Raw raw;
    int64_t size;
    uint64_t data_id;
  };
  std::vector<Added> added;
  absl::flat_hash_set<Sha256::Raw> in_batch;
  int64_t counted = 0;  // bytes this namespace gains (with a quota)
  absl::flat_hash_set<Sha256::Raw> counted_raw;
  for (size_t i = 0; i < blobs.size(); ++i) {
    const auto& [digest, data] = blobs[i];
    if (!results[i].ok() || digest.is_empty_blob()) continue;
    const Sha256::Raw& raw = digest.raw();
    if (options_.namespace_quota && !counted_raw.contains(raw) &&
        !IsVisible(ns, digest)) {
      results[i] = CheckQuotaLocked(ns, counted + digest.size());
      if (!results[i].ok()) continue;
      counted += digest.size();
      counted_raw.insert(raw);
    }
    batch.Put(visible_, VisibleKey(raw, ns), rocksdb::Slice());
    auto it = index_.find(raw);
    if (it != index_.end()) {
      TouchLocked(raw, it->second, &batch);
      continue;
    }
    if (!in_batch.insert(raw).second) continue;
    uint64_t id = NewDataId();
    for (size_t off = 0; off < data.size(); off += options_.chunk_bytes) {
      absl::string_view part = data.substr(off, options_.chunk_bytes);
      batch.Put(chunks_, ChunkKey(id, off),
                rocksdb::Slice(part.data(), part.size()));
    }
    batch.Put(meta_, RawSlice(raw), EncodeBlobRecord(digest.size(), id, now));
    added.push_back({raw, digest.size(), id});
  }
  if (batch.Count() == 0) return results;
  absl::Status s = Write(&batch, options_.sync_commits);
  if (!s.ok()) {
    for (size_t i = 0; i < blobs.size(); ++i) {
      if (results[i].ok() && !blobs[i].first.is_empty_blob()) results[i] = s;
    }
    return results;
  }
  if (counted > 0) ns_bytes_[std::string(ns)] += counted;
  for (const Added& a : added) {
    AddEntryLocked(a.raw, a.size, a.data_id, now);
  }
  EvictLocked();
  return results;
}

absl::StatusOr<std::unique_ptr<BlobReader>> RocksDbBlobStore::OpenRead(
    absl::string_view ns, const Digest& digest, int64_t offset, int64_t limit) {
  if (offset < 0 || offset > digest.size()) {
    return absl::OutOfRangeError(absl::StrCat("read_offset ", offset,
                                              " is outside the blob of ",
                                              digest.size(), " bytes"));
  }
  if (limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("read_limit: negative (", limit, ")"));
  }
  int64_t end = (limit == 0 || limit > digest.size() - offset) ? digest.size()
                                                               : offset + limit;
  if (digest.is_empty_blob()) {
    return NewReader(db_.get(), chunks_, db_->GetSnapshot(), 0, 0, 0);
  }
  const rocksdb::Snapshot* snapshot = nullptr;
  uint64_t data_id = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(digest.raw());
    if (!IsVisible(ns, digest)) it = index_.end();
    if (it == index_.end() || it->second.size != digest.size()) {
      return absl::NotFoundError(
          absl::StrCat("blob ", digest.ToString(), " not found"));
    }
    data_id = it->second.data_id;
    // Taken under the lock so eviction cannot slip in between.
    snapshot = db_->GetSnapshot();
    rocksdb::WriteBatch touch;
    TouchLocked(digest.raw(), it->second, &touch);
    if (touch.Count() > 0) Write(&touch, false).IgnoreError();
  }
  return NewReader(db_.get(), chunks_, snapshot, data_id, offset, end);
}

void RocksDbBlobStore::DiscardExpiredUploadsLocked() {
  int64_t now = options_.clock->NowMicros();
  if (now - last_upload_gc_ < 60'000'000) return;
  last_upload_gc_ = now;
  rocksdb::WriteBatch batch;
  std::vector<std::string> expired;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), uploads_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    v1::UploadRecord record;
    if (it->key().size() != 8 ||
        !record.ParseFromArray(it->value().data(),
                               static_cast<int>(it->value().size()))) {
      continue;
    }
    auto up = uploads_.find(record.upload_key());
    bool active = up != uploads_.end() && up->second.active;
    if (!active && !record.upload_key().empty() &&
        now - record.started_micros() > options_.upload_ttl_micros) {
      uint64_t id = ReadBigEndian64(it->key().data());
      DeleteChunks(&batch, chunks_, id);
      batch.Delete(uploads_cf_, it->key());
      hash_states_.erase(id);
      expired.push_back(record.upload_key());
    }
  }
  if (batch.Count() > 0 && Write(&batch, false).ok()) {
    for (const auto& key : expired) uploads_.erase(key);
  }
}

absl::StatusOr<std::unique_ptr<BlobWriter>> RocksDbBlobStore::OpenWrite(
    absl::string_view ns, const Digest& digest, absl::string_view upload_key) {
  if (digest.is_empty_blob()) {
    return NewWriter(digest);
  }
  if (options_.max_bytes > 0 && digest.size() > options_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob of ", digest.size(), " bytes exceeds the store's size limit of ",
        options_.max_bytes));
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(digest.raw());
    if (it != index_.end() && it->second.size == digest.size() &&
        IsVisible(ns, digest)) {
      rocksdb::WriteBatch touch;
      TouchLocked(digest.raw(), it->second, &touch);
      if (touch.Count() > 0) Write(&touch, false).IgnoreError();
      return NewWriter(digest);
    }
    // Refuse at once what the quota cannot take (checked again at commit).
    if (options_.namespace_quota && !IsVisible(ns, digest)) {
      RETURN_IF_ERROR(CheckQuotaLocked(ns, digest.size()));
    }
  }
  std::string map_key = upload_key.empty() ? "" : UploadMapKey(ns, upload_key);
  uint64_t data_id = 0;
  int64_t committed = 0;
  std::unique_ptr<Sha256> hash;
  {
    absl::MutexLock lock(&mu_);
    DiscardExpiredUploadsLocked();
    auto it = map_key.empty() ? uploads_.end() : uploads_.find(map_key);
    if (it != uploads_.end()) {
      if (it->second.active) {
        return absl::AbortedError(absl::StrCat(
            "upload \"", upload_key, "\" is being written by another stream"));
      }
      if (it->second.digest != digest) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resource_name: upload \"", upload_key, "\" was started for ",
            it->second.digest.ToString(), ", not ", digest.ToString()));
      }
      it->second.active = true;
      data_id = it->second.data_id;
      committed = it->second.committed;
      auto state = hash_states_.find(data_id);
      if (state != hash_states_.end() && state->second.first == committed) {
        hash = std::move(state->second.second);
      }
      hash_states_.erase(data_id);
    } else {
      data_id = NewDataId();
      if (!map_key.empty()) {
        uploads_[map_key] = Upload{data_id, digest, 0, true};
      }
    }
  }
  if (hash == nullptr) {
    // Resuming after a restart: hash what is already stored.
    hash = std::make_unique<Sha256>();
    if (committed > 0) {
      std::unique_ptr<BlobReader> reader = NewReader(
          db_.get(), chunks_, db_->GetSnapshot(), data_id, 0, committed);
      std::string buf;
      while (true) {
        buf.clear();
        absl::StatusOr<size_t> n = reader->Read(options_.chunk_bytes, &buf);
        if (!n.ok() || *n == 0) {
          if (!n.ok()) committed = 0;  // Unreadable: start over.
          break;
        }
        hash->Update(buf);
      }
      if (committed == 0) {
        // The stored prefix cannot be read back: drop it and start over
        // under a fresh data id, so no stale chunk can mix in.
        hash->Reset();
        rocksdb::WriteBatch drop;
        DeleteChunks(&drop, chunks_, data_id);
        drop.Delete(uploads_cf_, IdKey(data_id));
        Write(&drop, false).IgnoreError();
        absl::MutexLock lock(&mu_);
        data_id = NewDataId();
        auto it = uploads_.find(map_key);
        if (it != uploads_.end()) {
          it->second.data_id = data_id;
          it->second.committed = 0;
        }
      }
    }
  }
  return NewWriter(std::string(ns), digest, map_key, data_id, committed,
                   std::move(hash));
}

absl::StatusOr<int64_t> RocksDbBlobStore::QueryWrite(
    absl::string_view ns, const Digest& digest, absl::string_view upload_key) {
  if (digest.is_empty_blob()) return 0;
  absl::MutexLock lock(&mu_);
  if (index_.contains(digest.raw()) && IsVisible(ns, digest))
    return digest.size();
  auto it = uploads_.find(UploadMapKey(ns, upload_key));
  if (it == uploads_.end() || it->second.digest != digest) {
    return absl::NotFoundError(
        absl::StrCat("no upload \"", upload_key, "\" for ", digest.ToString()));
  }
  return it->second.committed;
}

StoreStats RocksDbBlobStore::Stats() {
  absl::MutexLock lock(&mu_);
  StoreStats stats;
  stats.stored_bytes = stored_bytes_;
  stats.blob_count = static_cast<int64_t>(index_.size());
  stats.max_bytes = options_.max_bytes;
  stats.evicted_blobs = evicted_blobs_;
  stats.evicted_bytes = evicted_bytes_;
  stats.action_cache_entries = ac_entries_;
  stats.uploads_in_progress = static_cast<int64_t>(uploads_.size());
  stats.disk_full_errors = disk_full_errors_.load();
  return stats;
}

}  // namespace stagefarm
