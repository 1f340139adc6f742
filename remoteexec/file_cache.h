// The worker's cache of input files for REAPI actions: one read-only file
// per (digest, executable), owned by the worker, hard-linked into each
// action's input root, so an input seen before is neither fetched nor
// copied again. Actions run as an ordinary user without capabilities
// (action_runner.h): they may read the links, replace them in the
// directories they own, but never write through them into the cache.
//
// Layout: DIR/<sha256 hex>-<size>[-x]; DIR/tmp/ holds fetches in progress,
// renamed into place whole (a crash leaves no partial file in the cache).
// Bounded: past `max_bytes` the least recently used files are removed
// (Trim). Thread-safe; two actions fetching the same blob at once both
// fetch it and the later rename wins (the contents are the same).
#ifndef STAGEFARM_REMOTEEXEC_FILE_CACHE_H_
#define STAGEFARM_REMOTEEXEC_FILE_CACHE_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/cas_client.h"
#include "common/digest.h"

namespace stagefarm::remoteexec {

class FileCache {
 public:
  // Opens (or makes) DIR and learns what it holds.
  static absl::StatusOr<std::unique_ptr<FileCache>> Open(std::string dir,
                                                         int64_t max_bytes);

  struct Stats {
    int64_t directories = 0;
    int64_t files = 0;
    int64_t files_fetched = 0;  // not in the cache: read from the CAS
    int64_t bytes_fetched = 0;
  };
  // Writes the tree whose root Directory is `root` into `dest` (which must
  // not exist): directories owned by `uid`:`gid` (mode from the tree, else
  // 0755), symlinks as the tree says, files hard-linked from the cache
  // after fetching those it lacks (small ones in batches, every blob
  // verified). Bad names, names used twice and trees deeper than 1024
  // levels are INVALID_ARGUMENT; blobs the CAS lacks are FAILED_PRECONDITION
  // naming them (MissingBlobs, common/grpc_status.h).
  absl::Status Materialize(CasClient* cas, const Digest& root,
                           const std::string& dest, uid_t uid, gid_t gid,
                           Stats* stats);

  // Removes least recently used files until the cache is within its bound.
  void Trim();
  int64_t bytes() {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }

 private:
  FileCache(std::string dir, int64_t max_bytes)
      : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  std::string PathOf(const Digest& d, bool executable) const;
  // Fetches the blobs into the cache (those already there are skipped).
  absl::Status Fetch(CasClient* cas,
                     const std::map<std::string, std::pair<Digest, bool>>& want,
                     Stats* stats);
  absl::Status Store(const std::string& tmp, const std::string& name,
                     const Digest& d, bool executable);
  void Used(const std::string& name, int64_t size);

  const std::string dir_;
  const int64_t max_bytes_;
  absl::Mutex mu_;
  struct Entry {
    int64_t size = 0;
    uint64_t used = 0;  // a counter: larger is more recent
  };
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace stagefarm::remoteexec

#endif  // STAGEFARM_REMOTEEXEC_FILE_CACHE_H_
