// MemoryBlobStore: an in-memory BlobStore and ActionCacheStorage for unit
// tests of logic built on the interface (never used by a server). It follows
// the same contract as RocksDbBlobStore, checked by the conformance suite,
// without size bounds. Thread-safe (one mutex).
#ifndef STAGEFARM_BLOBSTORE_MEMORY_BLOB_STORE_H_
#define STAGEFARM_BLOBSTORE_MEMORY_BLOB_STORE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/blob_store.h"

namespace stagefarm {

class MemoryBlobStore : public BlobStore, public ActionCacheStorage {
 public:
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

  // Test hook: forgets a blob in every namespace (as eviction would).
  void Evict(const Digest& digest);

 private:
  class Writer;
  using Key = std::pair<std::string, Digest>;

  absl::Mutex mu_;
  std::map<Key, std::shared_ptr<const std::string>> blobs_ ABSL_GUARDED_BY(mu_);
  // Interrupted uploads: namespace + '\0' + key -> (digest, bytes so far).
  std::map<std::string, std::pair<Digest, std::string>> uploads_
      ABSL_GUARDED_BY(mu_);
  std::map<Key, std::string> actions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stagefarm

#endif  // STAGEFARM_BLOBSTORE_MEMORY_BLOB_STORE_H_
