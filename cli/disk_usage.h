// What the embedded engine's home holds on disk and how to free it:
// `stagefarm system df`, `stagefarm prune`, and the bound STAGEFARM_MAX_BYTES
// keeps after every build. Blobs that a tagged image needs (its index,
// manifests, configs, layers and attestations) are never removed; the rest
// goes least recently used first. Unpacked layers (snapshots) are a cache of
// the blobs and go before them; cache mounts go only with --all.
#ifndef STAGEFARM_CLI_DISK_USAGE_H_
#define STAGEFARM_CLI_DISK_USAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cli/local.h"

namespace stagefarm::cli {

struct DiskUsage {
  int64_t blobs = 0, blob_bytes = 0;
  int64_t kept_blobs = 0, kept_bytes = 0;  // needed by tagged images
  int64_t images = 0;                      // tagged
  int64_t snapshots = 0, snapshot_bytes = 0;
  int64_t cache_mounts = 0, cache_mount_bytes = 0;
  int64_t Total() const {
    return blob_bytes + snapshot_bytes + cache_mount_bytes;
  }
};

// What the local store, the snapshots and the cache mounts use. Needs the
// local store (FAILED_PRECONDITION with --cas or --server).
absl::StatusOr<DiskUsage> MeasureDiskUsage(Local* local);

struct PruneOptions {
  int64_t keep_bytes = 0;  // stop once everything fits in this
  bool all = false;        // cache mounts too
};
struct Pruned {
  int64_t blobs = 0, blob_bytes = 0;
  int64_t snapshots = 0, snapshot_bytes = 0;
  int64_t cache_mounts = 0, cache_mount_bytes = 0;
};

// Frees space: cache mounts (with `all`), then snapshots least recently
// used first, then blobs no tagged image needs, least recently used first,
// until the total is at most `keep_bytes`.
absl::StatusOr<Pruned> Prune(Local* local, const PruneOptions& options);

// STAGEFARM_MAX_BYTES ("" or unset: no bound; a number of bytes, or with a
// K, M, G or T suffix): prunes down to it (cache mounts stay). INVALID_ARGUMENT
// for a malformed value.
absl::StatusOr<Pruned> KeepBound(Local* local);

// This machine's cache mounts (RUN --mount=type=cache) under
// $STAGEFARM_HOME/cache-mounts, most recently used first. The id is the
// one the engine recorded (engine/build_engine.h, cache_mount_ids), or the
// directory's name for one made before ids were recorded.
struct LocalCache {
  std::string id;
  std::string dir;
  int64_t bytes = 0;
  int64_t used = 0;  // Unix seconds: the directory's last change
};
std::vector<LocalCache> ListLocalCaches(Local* local);
// Removes those whose id is in `ids` (all with `all`); returns them.
absl::StatusOr<std::vector<LocalCache>> PruneLocalCaches(
    Local* local, const std::vector<std::string>& ids, bool all);

// "12.3 MB" (powers of 1000, as docker system df prints); `compact`:
// "12.3MB" with three significant digits (image ls, as docker images).
std::string HumanBytes(int64_t bytes, bool compact = false);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_DISK_USAGE_H_
