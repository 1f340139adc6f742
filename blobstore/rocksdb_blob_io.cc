#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "blobstore/rocksdb_blob_store.h"
#include "blobstore/rocksdb_layout.h"
#include "common/log.h"
#include "common/rocksdb_support.h"
#include "common/status_macros.h"
#include "stagefarm/v1/cas.pb.h"

// The store's readers and writers: chunked reads from a snapshot, and
// streamed, verified, resumable writes.
namespace stagefarm {

using rocksdb_layout::ChunkKey;
using rocksdb_layout::DeleteChunks;
using rocksdb_layout::EncodeBlobRecord;
using rocksdb_layout::FromRocks;
using rocksdb_layout::IdKey;
using rocksdb_layout::kMaxHashStates;
using rocksdb_layout::RawSlice;
using rocksdb_layout::ReadBigEndian64;
using rocksdb_layout::VisibleKey;

// ---------------------------------------------------------------- Reader

class RocksDbBlobStore::Reader : public BlobReader {
 public:
  Reader(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks,
         const rocksdb::Snapshot* snapshot, uint64_t data_id, int64_t offset,
         int64_t end)
      : db_(db),
        snapshot_(snapshot),
        lower_(IdKey(data_id)),
        upper_(IdKey(data_id + 1)),
        data_id_(data_id),
        pos_(offset),
        end_(end) {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot_;
    upper_slice_ = rocksdb::Slice(upper_);
    ro.iterate_upper_bound = &upper_slice_;
    // Large sequential reads: do not churn the block cache.
    ro.fill_cache = false;
    it_.reset(db_->NewIterator(ro, chunks));
  }
  ~Reader() override {
    it_.reset();
    db_->ReleaseSnapshot(snapshot_);
  }

  absl::StatusOr<size_t> Read(size_t max_bytes, std::string* out) override {
    if (pos_ >= end_ || max_bytes == 0) return 0;
    if (!positioned_) {
      it_->SeekForPrev(ChunkKey(data_id_, static_cast<uint64_t>(pos_)));
      positioned_ = true;
    } else if (it_->Valid() && ChunkEnd() <= pos_) {
      it_->Next();
    }
    RETURN_IF_ERROR(FromRocks(it_->status(), "reading blob chunks"));
    if (!it_->Valid() || it_->key().size() != 16 ||
        ReadBigEndian64(it_->key().data()) != data_id_ || ChunkStart() > pos_ ||
        ChunkEnd() <= pos_) {
      return absl::DataLossError(
          absl::StrCat("blob data missing at offset ", pos_));
    }
    int64_t within = pos_ - ChunkStart();
    size_t n = static_cast<size_t>(std::min<int64_t>(
        {static_cast<int64_t>(max_bytes), ChunkEnd() - pos_, end_ - pos_}));
    out->append(it_->value().data() + within, n);
    pos_ += static_cast<int64_t>(n);
    return n;
  }

 private:
  int64_t ChunkStart() const {
    return static_cast<int64_t>(ReadBigEndian64(it_->key().data() + 8));
  }
  int64_t ChunkEnd() const {
    return ChunkStart() + static_cast<int64_t>(it_->value().size());
  }

  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_;
  std::string lower_;
  std::string upper_;
  rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
  uint64_t data_id_;
  int64_t pos_;
  int64_t end_;
  bool positioned_ = false;
};

// ---------------------------------------------------------------- Writer

class RocksDbBlobStore::Writer : public BlobWriter {
 public:
  // A writer for a blob that is already readable in the namespace.
  Writer(RocksDbBlobStore* store, const Digest& digest)
      : store_(store),
        digest_(digest),
        committed_(digest.size()),
        complete_(true) {}

  Writer(RocksDbBlobStore* store, std::string ns, const Digest& digest,
         std::string upload_map_key, uint64_t data_id, int64_t committed,
         std::unique_ptr<Sha256> hash)
      : store_(store),
        ns_(std::move(ns)),
        digest_(digest),
        upload_map_key_(std::move(upload_map_key)),
        data_id_(data_id),
        committed_(committed),
        flushed_(committed),
        hash_(std::move(hash)),
        bypass_wal_(digest.size() >= store->options_.wal_bypass_bytes) {
    record_.set_upload_key(upload_map_key_);
    record_.set_hash(digest_.hash());
    record_.set_size_bytes(digest_.size());
    record_.set_committed_bytes(committed);
    record_.set_started_micros(store_->options_.clock->NowMicros());
  }

  ~Writer() override {
    if (complete_ || done_) return;
    bool resumable = !upload_map_key_.empty() && !failed_ && committed_ > 0;
    if (resumable && FlushBuffer().ok() && AddTable().ok()) {
      absl::MutexLock lock(&store_->mu_);
      auto it = store_->uploads_.find(upload_map_key_);
      if (it != store_->uploads_.end()) {
        it->second.active = false;
        it->second.committed = flushed_;
      } else {
        store_->uploads_[upload_map_key_] =
            Upload{data_id_, digest_, flushed_, false};
      }
      if (store_->hash_states_.size() >= kMaxHashStates) {
        store_->hash_states_.erase(store_->hash_states_.begin());
      }
      store_->hash_states_[data_id_] = {flushed_, std::move(hash_)};
      return;
    }
    Discard();
  }

  int64_t committed_bytes() const override { return committed_; }
  bool already_complete() const override { return complete_; }

  absl::Status Write(int64_t offset, absl::string_view data) override {
    if (complete_ || done_) {
      if (data.empty()) return absl::OkStatus();
      return absl::FailedPreconditionError(
          absl::StrCat("blob ", digest_.ToString(), " is already complete"));
    }
    if (offset != committed_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "write_offset: expected ", committed_, ", got ", offset));
    }
    if (static_cast<int64_t>(data.size()) > digest_.size() - committed_) {
      failed_ = true;
      return absl::InvalidArgumentError(absl::StrCat(
          "data: ", committed_ + static_cast<int64_t>(data.size()),
          " bytes would exceed the digest's size ", digest_.size()));
    }
    hash_->Update(data);
    committed_ += static_cast<int64_t>(data.size());
    size_t chunk = store_->options_.chunk_bytes;
    if (buffer_.empty() && data.size() >= chunk) {
      // Large writes go straight through without a copy into the buffer.
      while (data.size() >= chunk) {
        RETURN_IF_ERROR(WriteChunk(data.substr(0, chunk)));
        data.remove_prefix(chunk);
      }
    }
    while (!data.empty()) {
      size_t take = std::min(chunk - buffer_.size(), data.size());
      buffer_.append(data.data(), take);
      data.remove_prefix(take);
      if (buffer_.size() >= chunk) RETURN_IF_ERROR(FlushBuffer());
    }
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    if (complete_) return absl::OkStatus();
    if (done_) return absl::FailedPreconditionError("upload already finished");
    if (committed_ != digest_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("finish_write after ", committed_,
                       " bytes; the digest's size is ", digest_.size()));
    }
    done_ = true;
    Digest actual = Digest::FromRaw(hash_->Final(), committed_);
    if (actual != digest_) {
      Discard();
      return absl::DataLossError(
          absl::StrCat("uploaded data hashes to ", actual.hash(), ", not ",
                       digest_.hash(), "; nothing stored"));
    }
    return Commit();
  }

 private:
  absl::Status WriteChunk(absl::string_view data) {
    absl::Status s = bypass_wal_ ? WriteToTable(data) : WriteLogged(data);
    if (!s.ok()) {
      failed_ = true;
      return s;
    }
    flushed_ += static_cast<int64_t>(data.size());
    if (!upload_map_key_.empty()) {
      absl::MutexLock lock(&store_->mu_);
      auto it = store_->uploads_.find(upload_map_key_);
      if (it != store_->uploads_.end()) it->second.committed = flushed_;
    }
    return absl::OkStatus();
  }

  // A chunk and the upload's progress, through the log, in one batch.
  absl::Status WriteLogged(absl::string_view data) {
    rocksdb::WriteBatch batch;
    batch.Put(store_->chunks_, ChunkKey(data_id_, flushed_),
              rocksdb::Slice(data.data(), data.size()));
    record_.set_committed_bytes(flushed_ + static_cast<int64_t>(data.size()));
    batch.Put(store_->uploads_cf_, IdKey(data_id_),
              record_.SerializeAsString());
    return store_->Write(&batch, false);
  }

  // A chunk of a large blob, appended to this upload's chunk table.
  absl::Status WriteToTable(absl::string_view data) {
    if (!record_written_) {
      // The upload record goes through the log first, so a crash always
      // leaves a record that lets the next start discard or resume the data.
      rocksdb::WriteBatch record;
      record.Put(store_->uploads_cf_, IdKey(data_id_),
                 record_.SerializeAsString());
      RETURN_IF_ERROR(store_->Write(&record, false));
      record_written_ = true;
    }
    RETURN_IF_ERROR(store_->RoomFor(data.size()));
    if (table_ == nullptr) {
      ASSIGN_OR_RETURN(table_, store_->NewChunkTable(&table_path_));
    }
    return FromRocks(table_->Put(ChunkKey(data_id_, flushed_),
                                 rocksdb::Slice(data.data(), data.size())),
                     "writing a chunk table");
  }

  // Finishes the chunk table, if any, and adds it to the database: its
  // chunks are durable and readable from then on.
  absl::Status AddTable() {
    if (table_ == nullptr) return absl::OkStatus();
    absl::Status s = FromRocks(table_->Finish(), "finishing a chunk table");
    table_.reset();
    if (s.ok()) s = store_->AddChunkTable(table_path_);
    std::remove(table_path_.c_str());  // moved when added; else unused
    if (!s.ok()) failed_ = true;
    return s;
  }

  absl::Status FlushBuffer() {
    if (buffer_.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(WriteChunk(buffer_));
    buffer_.clear();
    return absl::OkStatus();
  }

  void ForgetUpload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_->mu_) {
    if (!upload_map_key_.empty()) store_->uploads_.erase(upload_map_key_);
    store_->hash_states_.erase(data_id_);
  }

  void Discard() {
    if (table_ != nullptr) {
      table_.reset();
      std::remove(table_path_.c_str());
    }
    rocksdb::WriteBatch batch;
    DeleteChunks(&batch, store_->chunks_, data_id_);
    batch.Delete(store_->uploads_cf_, IdKey(data_id_));
    // Best effort: on failure the upload record remains and the next start
    // (or the TTL) discards it.
    store_->Write(&batch, false).IgnoreError();
    absl::MutexLock lock(&store_->mu_);
    ForgetUpload();
  }

  absl::Status Commit() {
    if (bypass_wal_) {
      // Chunks written without the log must be in the database, synced,
      // before anything points at them.
      absl::Status added = FlushBuffer();
      if (added.ok()) added = AddTable();
      if (!added.ok()) {
        Discard();
        return added;
      }
    }
    rocksdb::WriteBatch batch;
    const Sha256::Raw& raw = digest_.raw();
    int64_t now = store_->options_.clock->NowMicros();
    absl::MutexLock lock(&store_->mu_);
    bool counted = false;  // this namespace's bytes grow by the blob
    if (store_->options_.namespace_quota && !store_->IsVisible(ns_, digest_)) {
      absl::Status quota = store_->CheckQuotaLocked(ns_, digest_.size());
      if (!quota.ok()) {
        DeleteChunks(&batch, store_->chunks_, data_id_);
        batch.Delete(store_->uploads_cf_, IdKey(data_id_));
        store_->Write(&batch, false).IgnoreError();
        ForgetUpload();
        failed_ = true;
        return quota;
      }
      counted = true;
    }
    auto existing = store_->index_.find(raw);
    if (existing != store_->index_.end()) {
      // Another upload stored the same content first: keep that copy.
      DeleteChunks(&batch, store_->chunks_, data_id_);
    } else {
      if (!buffer_.empty()) {
        batch.Put(store_->chunks_, ChunkKey(data_id_, flushed_), buffer_);
      }
      batch.Put(store_->meta_, RawSlice(raw),
                EncodeBlobRecord(digest_.size(), data_id_, now));
    }
    batch.Delete(store_->uploads_cf_, IdKey(data_id_));
    batch.Put(store_->visible_, VisibleKey(raw, ns_), rocksdb::Slice());
    absl::Status s = store_->Write(&batch, store_->options_.sync_commits);
    ForgetUpload();
    if (!s.ok()) {
      failed_ = true;
      return s;
    }
    if (counted) store_->ns_bytes_[ns_] += digest_.size();
    if (existing != store_->index_.end()) {
      rocksdb::WriteBatch touch;
      store_->TouchLocked(raw, existing->second, &touch);
      store_->Write(&touch, false).IgnoreError();
    } else {
      store_->AddEntryLocked(raw, digest_.size(), data_id_, now);
      store_->EvictLocked();
    }
    return absl::OkStatus();
  }

  RocksDbBlobStore* store_;
  std::string ns_;
  Digest digest_;
  std::string upload_map_key_;
  uint64_t data_id_ = 0;
  int64_t committed_ = 0;  // bytes accepted
  int64_t flushed_ = 0;    // bytes written to RocksDB
  std::unique_ptr<Sha256> hash_;
  std::string buffer_;
  v1::UploadRecord record_;
  bool complete_ = false;
  bool done_ = false;
  bool failed_ = false;
  bool bypass_wal_ = false;
  bool record_written_ = false;
  // Large blobs: the chunk table being written (see wal_bypass_bytes).
  std::unique_ptr<rocksdb::SstFileWriter> table_;
  std::string table_path_;
};

absl::StatusOr<std::unique_ptr<rocksdb::SstFileWriter>>
RocksDbBlobStore::NewChunkTable(std::string* path) {
  *path = absl::StrCat(tables_dir_, "/", next_table_.fetch_add(1), ".sst");
  // The page cache keeps what was just written: a blob is often read back
  // soon after it is stored (a layer pulled by the next step).
  rocksdb::EnvOptions env;
  // Written back to disk as it grows, so adding it (which syncs it) does
  // not wait for the whole blob to be written out at the end.
  env.bytes_per_sync = 4 << 20;
  auto table =
      std::make_unique<rocksdb::SstFileWriter>(env, *chunk_options_, chunks_,
                                               /*invalidate_page_cache=*/false);
  RETURN_IF_ERROR(FromRocks(table->Open(*path), "creating a chunk table"));
  return table;
}

absl::Status RocksDbBlobStore::AddChunkTable(const std::string& path) {
  rocksdb::IngestExternalFileOptions ingest;
  // Linked into the database, not copied; synced before it is recorded.
  ingest.move_files = true;
  return Checked(
      [&] { return db_->IngestExternalFile(chunks_, {path}, ingest); },
      "adding a chunk table");
}

std::unique_ptr<BlobReader> RocksDbBlobStore::NewReader(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks,
    const rocksdb::Snapshot* snapshot, uint64_t data_id, int64_t offset,
    int64_t end) {
  return std::make_unique<Reader>(db, chunks, snapshot, data_id, offset, end);
}

std::unique_ptr<BlobWriter> RocksDbBlobStore::NewWriter(const Digest& digest) {
  return std::make_unique<Writer>(this, digest);
}

std::unique_ptr<BlobWriter> RocksDbBlobStore::NewWriter(
    std::string ns, const Digest& digest, std::string upload_map_key,
    uint64_t data_id, int64_t committed, std::unique_ptr<Sha256> hash) {
  return std::make_unique<Writer>(this, std::move(ns), digest,
                                  std::move(upload_map_key), data_id, committed,
                                  std::move(hash));
}

}  // namespace stagefarm
