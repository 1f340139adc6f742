// The storage interface of the content-addressable store.
//
// Blobs are addressed by Digest and live in namespaces (one per tenant, or one
// shared by several instances; see InstancePolicy). A blob is readable in a
// namespace only after a complete, verified write in that namespace.
// Implementations: RocksDbBlobStore (the real one), MemoryBlobStore (for unit
// tests of pure logic). One conformance suite (blob_store_conformance_test.cc)
// runs against both.
//
// Thread safety: implementations are thread-safe. Readers and writers are
// used by one thread at a time.
#ifndef STAGEFARM_BLOBSTORE_BLOB_STORE_H_
#define STAGEFARM_BLOBSTORE_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/digest.h"

namespace stagefarm {

// Streams one blob's bytes from a start offset.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Appends up to `max_bytes` bytes to `out`; returns how many were
  // appended, 0 at the end of the requested range.
  virtual absl::StatusOr<size_t> Read(size_t max_bytes, std::string* out) = 0;
};

// Receives one blob's bytes in order. Bytes are hashed as they arrive; the
// blob becomes readable only when Finish() has verified the digest. A writer
// destroyed without Finish() keeps what it received as a resumable upload
// (when it was opened with an upload key), else discards it.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Bytes accepted so far (the resume point). Equals the digest's size when
  // the blob was already present: the caller can stop sending.
  virtual int64_t committed_bytes() const = 0;
  virtual bool already_complete() const = 0;
  // Appends `data` at `offset`, which must equal committed_bytes().
  // INVALID_ARGUMENT if the offset is wrong or the data runs past the size.
  virtual absl::Status Write(int64_t offset, absl::string_view data) = 0;
  // Verifies size and hash. DATA_LOSS on mismatch (nothing is stored).
  virtual absl::Status Finish() = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // The digests of `digests` not readable in `ns`, in request order,
  // without duplicates. Found blobs count as used for LRU.
  virtual absl::StatusOr<std::vector<Digest>> FindMissing(
      absl::string_view ns, absl::Span<const Digest> digests) = 0;

  // Stores small blobs whose bytes are at hand, verifying each one. Returns
  // one status per item: OK, DATA_LOSS (digest mismatch), RESOURCE_EXHAUSTED.
  virtual std::vector<absl::Status> PutBatch(
      absl::string_view ns,
      absl::Span<const std::pair<Digest, absl::string_view>> blobs) = 0;

  // Reads bytes [offset, offset + limit) of a blob (limit 0: to the end).
  // NOT_FOUND if the blob is not readable in `ns`; OUT_OF_RANGE if
  // offset > size. The reader sees a consistent snapshot even if the blob is
  // evicted while it streams.
  virtual absl::StatusOr<std::unique_ptr<BlobReader>> OpenRead(
      absl::string_view ns, const Digest& digest, int64_t offset,
      int64_t limit) = 0;

  // Starts or resumes writing `digest`. An upload with the same non-empty
  // `upload_key` that was cut off resumes at its committed bytes.
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWrite(
      absl::string_view ns, const Digest& digest,
      absl::string_view upload_key) = 0;

  // Bytes durably received for an upload: the size if the blob is complete,
  // the committed bytes of an interrupted upload, NOT_FOUND if neither.
  virtual absl::StatusOr<int64_t> QueryWrite(absl::string_view ns,
                                             const Digest& digest,
                                             absl::string_view upload_key) = 0;

  // Convenience: whole-blob read and write for small blobs.
  absl::StatusOr<std::string> Get(absl::string_view ns, const Digest& digest);
  absl::Status Put(absl::string_view ns, absl::string_view data);
};

// Per-namespace action-cache storage: raw serialized ActionResult bytes by
// action digest. Completeness checks live in ActionCache, above this.
class ActionCacheStorage {
 public:
  virtual ~ActionCacheStorage() = default;
  virtual absl::StatusOr<std::string> GetAction(absl::string_view ns,
                                                const Digest& action) = 0;
  virtual absl::Status PutAction(absl::string_view ns, const Digest& action,
                                 absl::string_view serialized_result) = 0;
  virtual absl::Status DeleteAction(absl::string_view ns,
                                    const Digest& action) = 0;
};

// Counters an operator wants to see.
struct StoreStats {
  int64_t stored_bytes = 0;
  int64_t blob_count = 0;
  int64_t max_bytes = 0;
  int64_t evicted_blobs = 0;
  int64_t evicted_bytes = 0;
  int64_t action_cache_entries = 0;
  int64_t uploads_in_progress = 0;
  // Writes refused because the store's disk was full (since start).
  int64_t disk_full_errors = 0;
};

}  // namespace stagefarm

#endif  // STAGEFARM_BLOBSTORE_BLOB_STORE_H_
