// Files in and out of a BlobStore: hashing a file and streaming it into the
// store in 1 MiB writes (never whole in memory). Thread-safe.
#ifndef STAGEFARM_BLOBSTORE_BLOB_FILES_H_
#define STAGEFARM_BLOBSTORE_BLOB_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "blobstore/blob_store.h"

namespace stagefarm {

// The digest of a file's bytes.
absl::StatusOr<Digest> HashFile(const std::string& path);

// Stores the file `path` as `digest` in namespace `ns` (nothing to do when
// the blob is there already). DATA_LOSS if the bytes do not match.
absl::Status UploadFile(BlobStore* blobs, const std::string& ns,
                        const std::string& path, const Digest& digest);

}  // namespace stagefarm

#endif  // STAGEFARM_BLOBSTORE_BLOB_FILES_H_
