#include "blobstore/blob_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace stagefarm {
namespace {

// Reads `path` in chunks, calling `f` with each; stops at the first error.
template <typename F>
absl::Status ForEachChunk(const std::string& path, F f) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  std::string buf(1 << 20, '\0');
  absl::Status status;
  while (status.ok()) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::InternalError(
          absl::StrCat("cannot read ", path, ": ", strerror(errno)));
      break;
    }
    if (n == 0) break;
    status = f(absl::string_view(buf.data(), static_cast<size_t>(n)));
  }
  close(fd);
  return status;
}

}  // namespace

absl::StatusOr<Digest> HashFile(const std::string& path) {
  Sha256 h;
  int64_t size = 0;
  RETURN_IF_ERROR(ForEachChunk(path, [&](absl::string_view chunk) {
    h.Update(chunk);
    size += static_cast<int64_t>(chunk.size());
    return absl::OkStatus();
  }));
  return Digest::FromRaw(h.Final(), size);
}

absl::Status UploadFile(BlobStore* blobs, const std::string& ns,
                        const std::string& path, const Digest& digest) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> w,
                   blobs->OpenWrite(ns, digest, ""));
  if (w->already_complete()) return absl::OkStatus();
  int64_t offset = 0;
  RETURN_IF_ERROR(ForEachChunk(path, [&](absl::string_view chunk) {
    absl::Status s = w->Write(offset, chunk);
    offset += static_cast<int64_t>(chunk.size());
    return s;
  }));
  return w->Finish();
}

}  // namespace stagefarm
