// RUN --mount=type=cache shared by a farm's workers. Each cache (per CAS
// instance, so per tenant) is a REAPI tree in the CAS, and the action
// cache holds which tree is its latest: the entry for the action digest
// SHA-256("stagefarm.cachemount.v1\n" + id) has one output file, "root",
// the tree's root Directory.
//
// Pull (before a step): when the latest tree is not the one this worker
// last pulled or published, it is merged into the local directory (files
// the worker lacks or holds with other content are fetched; nothing else
// is touched). Push (after the step): the directory is hashed (a stat
// cache skips unchanged files) and only blobs the CAS lacks are sent;
// when another worker published meanwhile, the paths it added that this
// copy lacks are merged in first, so files both added survive (a path both
// wrote keeps this step's version); then the entry points at the new tree.
// After a publication the instance's index (cache_index.h) records the
// cache, and past the bound the least recently published caches are pruned:
// a worker that pulls a pruned cache empties its copy.
// sharing=locked steps hold the cache through the scheduler (Lock), so
// their read-modify-writes never interleave across workers. A tree
// is published only once all its blobs are stored: a worker that dies
// mid-step publishes nothing, and readers never see a half-written cache.
//
// Thread-safe; steps using the same cache on one worker sync one at a time.
#ifndef STAGEFARM_CACHEMOUNT_SHARED_CACHE_MOUNTS_H_
#define STAGEFARM_CACHEMOUNT_SHARED_CACHE_MOUNTS_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/remote_store.h"
#include "common/digest.h"
#include "engine/cache_sync.h"

namespace stagefarm::cachemount {

// The action digest under which cache `id`'s latest tree is recorded.
Digest PointerKey(const std::string& id);

class SharedCacheMounts : public engine::CacheMountSync {
 public:
  // `store`: the instance's CAS (blobs and action cache); `state_dir`: where
  // this worker keeps what it last synced of each cache and its stat cache.
  // `max_bytes` (0: none) bounds what the instance's shared caches hold
  // together: past it, the least recently published are pruned
  // (cache_index.h).
  SharedCacheMounts(RemoteBlobStore* store, std::string state_dir,
                    int64_t max_bytes = 0)
      : store_(store),
        state_dir_(std::move(state_dir)),
        max_bytes_(max_bytes) {}

  absl::Status Pull(const std::string& id, const std::string& dir) override;
  absl::Status Push(const std::string& id, const std::string& dir) override;

 private:
  absl::Mutex* LockFor(const std::string& id);
  // The latest tree's root (none when nothing was published), or that
  // the cache was pruned.
  struct Pointer {
    std::optional<Digest> root;
    bool pruned = false;
  };
  absl::StatusOr<Pointer> Latest(const std::string& id);
  std::string StatePath(const std::string& id, absl::string_view what) const;
  std::optional<Digest> Synced(const std::string& id) const;
  void SetSynced(const std::string& id, const Digest& root) const;

  RemoteBlobStore* store_;
  const std::string state_dir_;
  const int64_t max_bytes_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<absl::Mutex>> locks_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace stagefarm::cachemount

#endif  // STAGEFARM_CACHEMOUNT_SHARED_CACHE_MOUNTS_H_
