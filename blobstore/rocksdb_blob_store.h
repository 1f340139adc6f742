// RocksDbBlobStore: the CAS's durable storage, one RocksDB database.
//
// Column families (keys and values in docs/ARCHITECTURE.md):
//   meta:    one BlobRecord per stored content, by raw SHA-256
//   chunks:  content bytes by data id and offset
//   visible: which namespaces may read which content
//   uploads: uploads in progress, by data id
//   ac:      action results by namespace and action digest
//
// A blob's content is stored once whatever the number of namespaces that
// may see it. Writes go to a fresh data id; the meta and visible records that
// make it readable are written in one atomic batch only after the digest is
// verified, so a crash at any point leaves either the whole blob or nothing
// readable. Interrupted uploads are kept for resumption (bounded by a TTL).
//
// Size bound: logical content bytes above max_bytes evict least recently used
// blobs (reads and FindMissing hits count as use).
//
// Thread safety: thread-safe. Index and commits are serialized by one mutex;
// hashing and chunk writes of concurrent uploads run in parallel.
#ifndef STAGEFARM_BLOBSTORE_ROCKSDB_BLOB_STORE_H_
#define STAGEFARM_BLOBSTORE_ROCKSDB_BLOB_STORE_H_

#include <rocksdb/status.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/blob_store.h"
#include "common/clock.h"
#include "common/rocksdb_support.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
struct Options;
class SstFileWriter;
class WriteBatch;
}  // namespace rocksdb

namespace stagefarm {

struct RocksDbBlobStoreOptions {
  std::string path;
  // 0: unbounded.
  int64_t max_bytes = 0;
  Clock* clock = SystemClock::Get();
  // A blob's last-access time is persisted at most this often.
  int64_t atime_granularity_micros = 60'000'000;
  // Interrupted uploads older than this are discarded.
  int64_t upload_ttl_micros = 24LL * 3600 * 1'000'000;
  // Size of stored chunks; incoming writes are buffered up to this.
  size_t chunk_bytes = 1 << 20;
  // Streamed blobs of at least this size skip the write-ahead log and the
  // memtable: their chunks are written to a table file of their own, which
  // is added to the database whole (synced) before the blob becomes
  // visible, or when the upload stops, so that it can resume. One disk
  // write a byte, no flush, no compaction to move them; crash safety is
  // unchanged (a table file not yet added is removed at the next open).
  int64_t wal_bypass_bytes = 16 << 20;
  // fsync the write-ahead log when a blob becomes visible (power-loss
  // durability). Without it a killed process loses nothing, a lost machine
  // may lose the last seconds.
  bool sync_commits = false;
  // Table files kept open (RocksDB's max_open_files). -1, for servers, opens
  // every table at start and keeps it open. A short-lived process sets a
  // bound: only that many are opened at start (a quarter of it), the rest
  // when first read, so starting does not grow with the number of tables.
  int max_open_files = -1;
  // When the write-ahead logs hold at least this many bytes at close, the
  // memtables are flushed into tables first, so that the next open does not
  // replay them (0: never). For short-lived processes: a build that wrote
  // layers pays once, instead of every later command at its start.
  int64_t flush_on_close_wal_bytes = 0;
  // Only RocksDB's errors reach the log, not its warnings (the CLI, whose
  // log is the user's terminal).
  bool log_errors_only = false;
  // At close, stop compactions in progress instead of waiting for them to
  // finish. RocksDB 7.8 rewrites every table that reaches the last level
  // once more, only to zero its sequence numbers; a short-lived command
  // would otherwise wait for that at exit. Nothing is lost: an interrupted
  // compaction is discarded and runs again in a later process.
  bool abandon_compactions_at_close = false;
  // Bloom filters over the small column families' memtables (faster misses
  // in a busy server; each costs 320 KiB to set up at every open).
  bool memtable_bloom = true;
  // Bytes each namespace may hold (0: no limit): the size of every blob
  // visible in it counts, even content another namespace also holds. When
  // set, the store counts bytes per namespace (a scan of the visibility
  // records at open) and refuses writes past the quota with
  // RESOURCE_EXHAUSTED. Unset: no counting.
  std::function<int64_t(absl::string_view ns)> namespace_quota;
};

class RocksDbBlobStore : public BlobStore, public ActionCacheStorage {
 public:
  static absl::StatusOr<std::unique_ptr<RocksDbBlobStore>> Open(
      const RocksDbBlobStoreOptions& options);
  ~RocksDbBlobStore() override;

  absl::StatusOr<std::vector<Digest>> FindMissing(
      absl::string_view ns, absl::Span<const Digest> digests) override;
  std::vector<absl::Status> PutBatch(
      absl::string_view ns,
      absl::Span<const std::pair<Digest, absl::string_view>> blobs) override;
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenRead(absl::string_view ns,
                                                       const Digest& digest,
                                                       int64_t offset,
                                                       int64_t limit) override;
  absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWrite(
      absl::string_view ns, const Digest& digest,
      absl::string_view upload_key) override;
  absl::StatusOr<int64_t> QueryWrite(absl::string_view ns, const Digest& digest,
                                     absl::string_view upload_key) override;

  absl::StatusOr<std::string> GetAction(absl::string_view ns,
                                        const Digest& action) override;
  absl::Status PutAction(absl::string_view ns, const Digest& action,
                         absl::string_view serialized_result) override;
  absl::Status DeleteAction(absl::string_view ns,
                            const Digest& action) override;

  StoreStats Stats();

  // Removes least recently used blobs for which `keep` is false until the
  // store holds `keep_bytes` or less (or only kept blobs are left): what
  // `stagefarm prune` and the embedded store's bound do, keeping the blobs
  // of tagged images. Action results whose outputs go become misses (the
  // action cache's completeness rule).
  struct PruneResult {
    int64_t blobs = 0;
    int64_t bytes = 0;
  };
  PruneResult Prune(int64_t keep_bytes,
                    const std::function<bool(const Digest&)>& keep);
  // Calls `fn` with each action result (serialized) of namespace `ns`.
  absl::Status ForEachAction(
      absl::string_view ns,
      const std::function<void(absl::string_view result)>& fn);
  // How many stored blobs, and bytes, `which` picks.
  PruneResult Measure(const std::function<bool(const Digest&)>& which);

 private:
  class Writer;
  class Reader;
  friend class Writer;
  // Readers and writers (rocksdb_blob_io.cc).
  static std::unique_ptr<BlobReader> NewReader(
      rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks,
      const rocksdb::Snapshot* snapshot, uint64_t data_id, int64_t offset,
      int64_t end);
  // For a blob already readable in the namespace.
  std::unique_ptr<BlobWriter> NewWriter(const Digest& digest);
  std::unique_ptr<BlobWriter> NewWriter(std::string ns, const Digest& digest,
                                        std::string upload_map_key,
                                        uint64_t data_id, int64_t committed,
                                        std::unique_ptr<Sha256> hash);

  struct Entry {
    int64_t size = 0;
    uint64_t data_id = 0;
    int64_t atime = 0;  // in memory, exact
    int64_t persisted_atime = 0;
  };
  struct Upload {
    uint64_t data_id = 0;
    Digest digest;
    int64_t committed = 0;
    bool active = false;
  };

  explicit RocksDbBlobStore(const RocksDbBlobStoreOptions& options);
  absl::Status Load();

  bool IsVisible(absl::string_view ns, const Digest& digest);
  // Marks use; persists atime when it moved past the granularity.
  void TouchLocked(const Sha256::Raw& key, Entry& entry,
                   rocksdb::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PruneResult EvictDownToLocked(int64_t bound,
                                const std::function<bool(const Digest&)>* keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Write(rocksdb::WriteBatch* batch, bool sync);
  // OK when the volume has room for `bytes` more (the one check before
  // anything is written: batches and chunk tables).
  absl::Status RoomFor(uint64_t bytes);
  // Chunk tables of large uploads (rocksdb_blob_io.cc): a new file in
  // tables_dir_, and adding a finished one to the chunk column family.
  absl::StatusOr<std::unique_ptr<rocksdb::SstFileWriter>> NewChunkTable(
      std::string* path);
  absl::Status AddChunkTable(const std::string& path);
  std::string tables_dir_;
  std::unique_ptr<rocksdb::Options> chunk_options_;
  std::atomic<uint64_t> next_table_{0};
  // Runs a write; when it fails for want of disk space, asks RocksDB to
  // recover at once and tries again (see the definition).
  absl::Status Checked(const std::function<rocksdb::Status()>& op,
                       absl::string_view what);
  std::atomic<int64_t> disk_full_errors_{0};
  std::unique_ptr<DiskFullRecovery> recovery_;
  uint64_t NewDataId() { return next_data_id_.fetch_add(1); }
  std::string UploadMapKey(absl::string_view ns,
                           absl::string_view upload_key) const;
  void DiscardExpiredUploadsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RocksDbBlobStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* chunks_ = nullptr;
  rocksdb::ColumnFamilyHandle* visible_ = nullptr;
  rocksdb::ColumnFamilyHandle* uploads_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* ac_ = nullptr;
  std::atomic<uint64_t> next_data_id_{1};

  absl::Mutex mu_;
  absl::flat_hash_map<Sha256::Raw, Entry> index_ ABSL_GUARDED_BY(mu_);
  // Eviction order without a tree node a blob: the oldest (atime, key)
  // pairs of index_, newest first, so the next to evict is at the back.
  // Every entry of index_ it does not hold is newer than all it holds;
  // pairs whose blob was used or removed since are stale and skipped.
  // Refilled by one scan of index_ when empty (a fraction of the blobs at
  // a time), cleared when a use would break that order (a clock that went
  // back).
  using AgeKey = std::pair<int64_t, Sha256::Raw>;
  std::vector<AgeKey> evict_queue_ ABSL_GUARDED_BY(mu_);
  // A new blob in index_, in stored_bytes_ and the eviction order.
  void AddEntryLocked(const Sha256::Raw& key, int64_t size, uint64_t data_id,
                      int64_t atime) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps evict_queue_'s promise for a blob now aged `age`.
  void NoteAgeLocked(const AgeKey& age) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills evict_queue_ with the oldest entries newer than `after` (all of
  // them when null).
  void RefillEvictQueueLocked(const AgeKey* after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t stored_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evicted_blobs_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t evicted_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t ac_entries_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes visible per namespace (only with options_.namespace_quota).
  absl::flat_hash_map<std::string, int64_t> ns_bytes_ ABSL_GUARDED_BY(mu_);
  // OK if `ns` may take `add` more bytes.
  absl::Status CheckQuotaLocked(absl::string_view ns, int64_t add)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Resumable uploads by namespace + '\0' + upload key.
  absl::flat_hash_map<std::string, Upload> uploads_ ABSL_GUARDED_BY(mu_);
  // Hash state of interrupted uploads, so resuming needs no re-read.
  std::map<uint64_t, std::pair<int64_t, std::unique_ptr<Sha256>>> hash_states_
      ABSL_GUARDED_BY(mu_);
  int64_t last_upload_gc_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace stagefarm

#endif  // STAGEFARM_BLOBSTORE_ROCKSDB_BLOB_STORE_H_
