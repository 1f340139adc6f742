// The one way a tar archive from outside (an `ADD` archive, an imported
// image or rootfs, an image layer) is written to disk, and the one bound on
// how much it may unpack to.
//
// ExtractArchive refuses members that would land outside the destination
// (absolute names, "..", hard links out), keeps libarchive's secure
// symlink and ".." checks on, and stops with RESOURCE_EXHAUSTED once the
// archive has unpacked more than MaxUnpackBytes(). Image layers go through
// ApplyLayer (worker/layer_tar.h), which adds whiteouts and an fd-based
// walk of parent directories, and is bounded by the same MaxUnpackBytes().
#ifndef STAGEFARM_ARCHIVES_ARCHIVE_EXTRACT_H_
#define STAGEFARM_ARCHIVES_ARCHIVE_EXTRACT_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace stagefarm::archives {

// How much one archive may unpack to (a tar bomb stops here):
// STAGEFARM_MAX_UNPACK_BYTES, 32 GiB by default.
int64_t MaxUnpackBytes();

// The error for an archive that unpacks past MaxUnpackBytes().
absl::Status UnpackLimitError(int64_t limit, absl::string_view entry);

struct ExtractOptions {
  // Owners from the archive (numeric), else the extracting user.
  bool keep_owner = false;
  // Modification times from the archive.
  bool keep_times = false;
  // Replace what is in the way (extracting over existing files).
  bool unlink = false;
  // Overrides, as ADD --chown/--chmod give them.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::function<mode_t(mode_t perm, bool is_dir)> mode;
  // Prefixes error messages (e.g. the archive's name); "" for none.
  std::string what;
};

// Extracts the tar archive at `path` (any compression libarchive reads)
// into the existing directory `dest`. INVALID_ARGUMENT for a bad or hostile
// archive, RESOURCE_EXHAUSTED past the unpack bound.
absl::Status ExtractArchive(const std::string& path, const std::string& dest,
                            const ExtractOptions& options);

}  // namespace stagefarm::archives

#endif  // STAGEFARM_ARCHIVES_ARCHIVE_EXTRACT_H_
