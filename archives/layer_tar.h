// OCI layers to and from directories.
//
// WriteLayer turns a directory holding one step's changes in overlayfs upper
// format (whiteouts as 0:0 character devices, opaque directories marked with
// the overlay.opaque xattr, see OverlayXattrPrefix) into an OCI layer: a tar
// stream with
// `.wh.NAME` and `.wh..wh..opq` entries, entries in sorted order (each
// directory's names by byte order, a directory before its contents), hard
// links kept as hard links, numeric owners only (no user or group names),
// and mtimes clamped to SOURCE_DATE_EPOCH when one is given. The tar is
// compressed in the same pass while both digests are computed: diff_id over
// the uncompressed tar, digest over the compressed bytes. Same directory
// contents and options give byte-identical output.
//
// ApplyLayer does the reverse into an empty snapshot directory, producing
// the overlayfs lower format again (so a snapshot can be a lowerdir as is).
// No entry can write outside the destination: absolute paths, `..`
// components and paths through symlinks are refused with an error naming the
// entry. Thread-safe: no shared state.
#ifndef STAGEFARM_ARCHIVES_LAYER_TAR_H_
#define STAGEFARM_ARCHIVES_LAYER_TAR_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "archives/compression.h"
#include "common/digest.h"

namespace stagefarm::archives {

// Where overlayfs keeps its metadata (opaque marks): "trusted.overlay." for
// the machine's root; in a user namespace (rootless) overlay is mounted with
// the userxattr option (snapshot/) and keeps it under "user.overlay.".
bool OverlayUsesUserXattrs();
std::string OverlayXattrPrefix();

inline constexpr char kMediaTypeLayerGzip[] =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kMediaTypeLayerZstd[] =
    "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kMediaTypeLayerTar[] =
    "application/vnd.oci.image.layer.v1.tar";

struct LayerOptions {
  Compression compression = Compression::kGzip;
  // Clamp every mtime to this (seconds since the epoch) when set.
  std::optional<int64_t> source_date_epoch;
  // 0: the default (gzip 6, as Go's and so BuildKit's; zstd 3). gzip 1-12
  // (libdeflate's range), zstd 1-22.
  int level = 0;
};

struct LayerBlob {
  Digest digest;        // of the compressed blob
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar
  std::string media_type;
  int64_t entries = 0;  // tar entries written (0: the layer is empty)
};

// Writes the layer for `dir` to the file `out_path` (created or truncated).
absl::StatusOr<LayerBlob> WriteLayer(const std::string& dir,
                                     const LayerOptions& options,
                                     const std::string& out_path);

// A source of a layer blob's (compressed or plain) bytes: fills `out` with
// the next bytes, returns 0 at the end.
using ByteSource = std::function<absl::StatusOr<size_t>(std::string* out)>;

// The OCI media type of a layer with `compression`.
const char* LayerMediaType(Compression compression);

// Compresses an uncompressed layer tar (read from `tar`) into `out_path`
// with options.compression and options.level (source_date_epoch is not
// used: the tar is taken as it is). The result's diff_id is the tar's
// digest; given the same tar bytes the blob is byte-identical to what
// WriteLayer makes. `entries` is not counted (-1).
absl::StatusOr<LayerBlob> CompressLayer(const ByteSource& tar,
                                        const LayerOptions& options,
                                        const std::string& out_path);

struct ApplyResult {
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar
  int64_t entries = 0;
};

// Unpacks a layer (gzip, zstd or plain tar, detected from the bytes) into
// `dest_dir`, which must exist and be empty, in overlayfs lower format.
absl::StatusOr<ApplyResult> ApplyLayer(const ByteSource& source,
                                       const std::string& dest_dir);
absl::StatusOr<ApplyResult> ApplyLayerFile(const std::string& path,
                                           const std::string& dest_dir);

// One entry of a layer's tar, as ListLayer reads it.
struct LayerEntry {
  std::string path;  // as in the tar ("usr/bin/app")
  // 'f' file, 'd' directory, 'l' symlink, 'h' hard link, 'c', 'b', 'p'.
  char type = 'f';
  uint32_t mode = 0;  // permission bits
  int64_t uid = 0, gid = 0, size = 0, mtime = 0;
  std::string link;    // a symlink's target or a hard link's other name
  std::string sha256;  // a file's content, hex
};

// Every entry of a layer blob (gzip, zstd or plain), in the tar's order,
// with its content's digest; nothing is written anywhere.
absl::StatusOr<std::vector<LayerEntry>> ListLayer(const ByteSource& source);

}  // namespace stagefarm::archives

#endif  // STAGEFARM_ARCHIVES_LAYER_TAR_H_
