// File-system helpers for the worker: paths resolved inside a root (as a
// chroot would), recursive removal that never crosses a mount, and small
// whole-file reads and writes. Thread-safe (no shared state).
#ifndef STAGEFARM_COMMON_FS_UTIL_H_
#define STAGEFARM_COMMON_FS_UTIL_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm {

// The host path of `path` inside `root`, following symlinks as if `root`
// were `/`: absolute link targets and `..` never leave it. The last
// component is followed only if `follow_last`. Components that do not exist
// are kept as written. ELOOP-like chains (more than 40 links) are an error.
absl::StatusOr<std::string> ResolveInRoot(const std::string& root,
                                          absl::string_view path,
                                          bool follow_last);

// Cleans a slash-separated path: no empty, "." or ".." components (".."
// above the start is dropped), always starting with "/".
std::string CleanAbsolute(absl::string_view path);

// Removes `path` and everything below it; never descends into another
// mounted file system. A missing path is fine.
absl::Status RemoveAll(const std::string& path);

// mkdir -p with `mode` for new directories.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

absl::StatusOr<std::string> ReadFileToString(const std::string& path);
absl::Status WriteStringToFile(const std::string& path, absl::string_view data,
                               mode_t mode = 0644);
// Writes `data` beside `path` and renames it into place: a reader finds the
// old file or the whole new one, never a part of it.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view data, mode_t mode = 0644);

// A new directory under `parent` with a unique name starting with `prefix`.
absl::StatusOr<std::string> MakeTempDir(const std::string& parent,
                                        absl::string_view prefix);

// An exclusive flock(2), held for the object's lifetime. `path` is a
// directory, or a file created when missing. kWait blocks until the lock
// is free; kTry takes it only if no one holds it.
class FileLock {
 public:
  enum class Mode { kWait, kTry };
  FileLock(const std::string& path, Mode mode);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  bool held() const { return held_; }
  // The locked descriptor: a child given it keeps the lock held after
  // this process is gone, until the child exits too.
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_FS_UTIL_H_
