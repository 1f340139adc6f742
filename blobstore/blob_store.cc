#include "blobstore/blob_store.h"

#include "common/status_macros.h"

namespace stagefarm {

absl::StatusOr<std::string> BlobStore::Get(absl::string_view ns,
                                           const Digest& digest) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                   OpenRead(ns, digest, 0, 0));
  std::string out;
  out.reserve(static_cast<size_t>(digest.size()));
  while (true) {
    ASSIGN_OR_RETURN(size_t n, reader->Read(1 << 20, &out));
    if (n == 0) break;
  }
  return out;
}

absl::Status BlobStore::Put(absl::string_view ns, absl::string_view data) {
  std::pair<Digest, absl::string_view> item(Digest::Of(data), data);
  return PutBatch(ns, absl::MakeConstSpan(&item, 1))[0];
}

}  // namespace stagefarm
