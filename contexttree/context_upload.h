// Build-context upload for builds on a farm: walks a context directory with
// its .dockerignore applied, hashes the files (a stat cache skips files whose
// metadata has not changed since they were last hashed), builds the REAPI
// Merkle tree of the context, and uploads only the blobs the CAS is missing.
//
// The tree holds names, contents, unix modes and symlink targets: never
// mtimes, owners or host paths, so two checkouts of the same sources give
// the same root digest. Sockets, FIFOs and device files are skipped (a
// context cannot carry them; they are counted).
#ifndef STAGEFARM_CONTEXTTREE_CONTEXT_UPLOAD_H_
#define STAGEFARM_CONTEXTTREE_CONTEXT_UPLOAD_H_

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/cas_client.h"
#include "common/digest.h"
#include "common/sha256.h"
#include "frontend/dockerfile/dockerignore.h"

namespace stagefarm::contexttree {

// Content digests of files by relative path, valid while the file's device,
// inode, size, mode, mtime and ctime are unchanged. Stored as one file,
// replaced atomically.
class StatCache {
 public:
  // An empty cache when `path` is missing or not a valid cache file.
  static StatCache Load(const std::string& path);
  absl::Status Save(const std::string& path) const;

  std::optional<Digest> Lookup(const std::string& rel,
                               const struct stat& st) const;
  // Remembers `digest` for `rel`. Entries whose ctime is not older than
  // `trust_before_ns` are not kept: the file may have changed within the
  // timestamp's granularity after it was hashed.
  void Record(const std::string& rel, const struct stat& st,
              const Digest& digest, int64_t trust_before_ns);
  // Drops entries not looked up or recorded since the last Load.
  void DropUnused();
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t dev = 0, ino = 0;
    int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
    uint32_t mode = 0;
    Sha256::Raw hash{};
    mutable bool used = false;
  };
  static Entry EntryOf(const struct stat& st);
  absl::flat_hash_map<std::string, Entry> entries_;
};

struct ContextTree {
  Digest root;  // of the root Directory message
  // Every Directory message (serialized) and every file's content, each
  // digest once: what an upload may have to send.
  std::vector<std::pair<Digest, std::string>> directories;
  std::vector<std::pair<Digest, std::string>> files;  // digest, host path
  int64_t file_count = 0;  // regular files in the tree
  int64_t dir_count = 0;   // directories, the root included
  int64_t symlink_count = 0;
  int64_t skipped_special = 0;  // sockets, FIFOs, devices
  int64_t total_bytes = 0;      // of regular files
  int64_t files_hashed = 0;     // stat cache misses
};

// Walks `dir`. `ignore` may be null. `cache` may be null (every file is
// hashed). Files changed within `racy_window_ns` before the walk are hashed
// but not remembered (they may change again within their timestamps'
// granularity).
absl::StatusOr<ContextTree> BuildContextTree(
    const std::string& dir, const dockerfile::DockerignoreMatcher* ignore,
    StatCache* cache, int64_t racy_window_ns = 2'000'000'000);

struct UploadStats {
  int64_t digests_checked = 0;
  int64_t blobs_uploaded = 0;
  int64_t bytes_uploaded = 0;
};

// Asks the CAS which of the tree's blobs it lacks and sends those: small
// ones in batches, large ones streamed. A file that changed since it was
// hashed fails the upload with DATA_LOSS naming it.
absl::StatusOr<UploadStats> UploadMissing(const ContextTree& tree,
                                          CasClient* cas);

}  // namespace stagefarm::contexttree

#endif  // STAGEFARM_CONTEXTTREE_CONTEXT_UPLOAD_H_
