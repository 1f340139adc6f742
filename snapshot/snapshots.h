// Unpacked layers on the worker's disk, and the overlayfs mounts that stack
// them into root file systems.
//
// Layout under the root directory:
//   snapshots/<chain id hex>/   one layer, unpacked in overlayfs lower format
//   l/<short id>                a symlink to ../snapshots/<chain id hex>: the
//                               name a mount's lowerdir option uses (the
//                               chain id's first 12 hex digits, one more for
//                               each clash), as Docker's overlay2 driver
//                               keeps l/<id> links; with OverlayMount's
//                               relative paths 127 layers fit one mount
//   tmp/<pid>-XXXXXX/           this process's scratch (upper/work dirs,
//                               mount points), removed when stale
//   empty/                      an empty lower for images without layers
// A snapshot is unpacked into tmp and renamed into place, so a crash never
// leaves a half snapshot under snapshots/. Each chain id is unpacked once
// even when several stages need it at the same time. Thread-safe.
#ifndef STAGEFARM_SNAPSHOT_SNAPSHOTS_H_
#define STAGEFARM_SNAPSHOT_SNAPSHOTS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/blob_store.h"
#include "image/oci.h"

namespace stagefarm::snapshot {

class Snapshotter {
 public:
  // `blobs`/`ns`: where layer blobs are read from.
  static absl::StatusOr<std::unique_ptr<Snapshotter>> Open(
      const std::string& root, BlobStore* blobs, std::string ns);
  ~Snapshotter();

  // Ensures every layer is unpacked; returns, from the bottom layer to the
  // top one, each snapshot's short path (l/<short id>, a symlink to the
  // snapshot directory) to stack with OverlayMount. `diff_ids` parallel to
  // `layers`, each "sha256:<64 hex digits>" (INVALID_ARGUMENT otherwise).
  absl::StatusOr<std::vector<std::string>> Prepare(
      const std::vector<image::Descriptor>& layers,
      const std::vector<std::string>& diff_ids);

  // Moves a finished step's upper directory in as the snapshot of
  // `chain_id` (or discards it if that snapshot exists already).
  absl::Status Commit(const std::string& upper, const std::string& chain_id);

  // The unpacked snapshots: directory name, size on disk (allocated
  // blocks) and when last used (Prepare and Commit touch a snapshot).
  struct Info {
    std::string name;
    int64_t bytes = 0;
    int64_t used = 0;  // unix seconds
  };
  absl::StatusOr<std::vector<Info>> List();
  // Removes a snapshot (moved out of snapshots/ first, so it is there whole
  // or not at all) and its short names. Only while no step of this
  // snapshotter runs: the caller makes sure.
  absl::Status Remove(const std::string& name);

  // A new directory in this process's scratch area.
  absl::StatusOr<std::string> TempDir(absl::string_view prefix);
  const std::string& empty_dir() const { return empty_; }

 private:
  Snapshotter(std::string root, BlobStore* blobs, std::string ns);
  std::string PathFor(const std::string& chain_id) const;
  // The short path l/<id> of the snapshot directory `hex`, made if missing.
  absl::StatusOr<std::string> ShortPath(const std::string& hex);
  void RemoveShortNames(const std::string& hex);
  absl::Status Unpack(const image::Descriptor& layer,
                      const std::string& diff_id, const std::string& chain_id);

  std::string root_, tmp_, empty_;
  BlobStore* blobs_;
  std::string ns_;
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::set<std::string> in_progress_ ABSL_GUARDED_BY(mu_);
  // By name; snapshots never change.
  std::map<std::string, int64_t> sizes_ ABSL_GUARDED_BY(mu_);
};

// A mounted overlayfs, unmounted (and its scratch removed) on destruction.
class OverlayMount {
 public:
  // Read-write: `lowers` bottom to top, a fresh `upper` and `work` dir.
  // Read-only when `upper` is empty. All paths absolute. The options of a
  // mount must fit one page; when absolute lower paths do not, the lowers
  // are given relative to their common directory and the mount made from
  // there (on a thread with a working directory of its own), as containerd's
  // overlay snapshotter does. RESOURCE_EXHAUSTED when even that is too long.
  static absl::StatusOr<std::unique_ptr<OverlayMount>> Mount(
      const std::vector<std::string>& lowers, const std::string& upper,
      const std::string& work, const std::string& target,
      const std::string& empty_dir);
  ~OverlayMount();
  const std::string& path() const { return target_; }
  // Unmounts now; the destructor does nothing afterwards.
  absl::Status Unmount();

 private:
  explicit OverlayMount(std::string target) : target_(std::move(target)) {}
  std::string target_;
  bool mounted_ = true;
};

}  // namespace stagefarm::snapshot

#endif  // STAGEFARM_SNAPSHOT_SNAPSHOTS_H_
