// What a farm's shared cache mounts hold, for `stagefarm cache ls|prune` and
// the workers' size bound: one record in the instance's action cache, for
// the action digest SHA-256("stagefarm.cachemount.index.v1"), whose one
// output file "index.json" is a JSON blob {"caches": [{"id", "root"
// ("HASH/SIZE"), "bytes", "files", "used" (Unix seconds of its last
// publication)}]}. Workers update
// it after they publish a cache (read, change, write: a concurrent update
// may be lost until that cache's next publication, which only delays what
// `ls` shows and the bound sees).
//
// A pruned or evicted cache's pointer (shared_cache_mounts.h) is a record
// without a root: workers empty their copies at their next pull, so the
// cache starts afresh everywhere.
#ifndef STAGEFARM_CACHEMOUNT_CACHE_INDEX_H_
#define STAGEFARM_CACHEMOUNT_CACHE_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "blobstore/remote_store.h"
#include "common/digest.h"

namespace stagefarm::cachemount {

struct CacheInfo {
  std::string id;
  std::string root;  // "HASH/SIZE"
  int64_t bytes = 0;
  int64_t files = 0;
  int64_t used = 0;  // Unix seconds
};

// The index, most recently used first; empty when there is none.
absl::StatusOr<std::vector<CacheInfo>> ListCaches(RemoteBlobStore* store);

// Records `info` (replacing that id's entry); then, with `max_bytes` > 0,
// prunes the least recently used other caches until the rest fit. Returns
// the ids pruned.
absl::StatusOr<std::vector<std::string>> RecordCache(RemoteBlobStore* store,
                                                     const CacheInfo& info,
                                                     int64_t max_bytes);

// Empties caches `ids` on every worker (their pointers become records
// without a root) and drops them from the index. Returns what they held.
absl::StatusOr<std::vector<CacheInfo>> PruneCaches(
    RemoteBlobStore* store, const std::vector<std::string>& ids);

// The pointer record of a pruned cache (no root).
std::string PrunedRecord();

}  // namespace stagefarm::cachemount

#endif  // STAGEFARM_CACHEMOUNT_CACHE_INDEX_H_
