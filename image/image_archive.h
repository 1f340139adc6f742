// Images in and out of files: import of docker-archive and OCI archives
// (tar, optionally compressed), OCI image layout directories and plain root
// file systems (a directory or tarball, as `docker import` takes them); export
// as an OCI archive or a docker-archive that `docker load` accepts.
//
// Exports are written to a temporary file next to the destination and
// renamed into place, so a failed export leaves no partial file. Imports
// check every blob against its digest before the image is tagged.
// Thread-safe (no shared state).
#ifndef STAGEFARM_IMAGE_IMAGE_ARCHIVE_H_
#define STAGEFARM_IMAGE_IMAGE_ARCHIVE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "image/image_store.h"

namespace stagefarm::image {

enum class ArchiveFormat {
  kOci,     // OCI image layout in a tar (skopeo's oci-archive)
  kDocker,  // docker-archive (manifest.json) plus the OCI layout files
};

// Writes the image `manifest` (in `store`) to `out_path`, named `names`.
// `manifest` may be an image index (a multi-platform image): an OCI
// archive holds it whole; a docker archive holds one platform, so an
// index is FAILED_PRECONDITION for it.
absl::Status ExportImage(ImageStore* store, const Digest& manifest,
                         const std::vector<std::string>& names,
                         ArchiveFormat format, const std::string& out_path);

// Imports `path` into `store`; `scratch` is a directory for unpacking.
// Returns the manifest digest, or the index's for an OCI layout holding a
// multi-platform image (every platform is imported); the caller tags it.
// A root file system becomes an image for `rootfs_platform`.
absl::StatusOr<Descriptor> ImportImage(
    ImageStore* store, const std::string& path, const std::string& scratch,
    const platform::Platform& rootfs_platform = platform::Host());

}  // namespace stagefarm::image

#endif  // STAGEFARM_IMAGE_IMAGE_ARCHIVE_H_
