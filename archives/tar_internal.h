// What the layer writer, reader and applier share (archives/ internal):
// file descriptors and libarchive handles that close themselves, errno
// errors, whole writes, sorted directory listings, and the whiteout names
// and xattrs OCI layers use. Not part of the package's API.
#ifndef STAGEFARM_ARCHIVES_TAR_INTERNAL_H_
#define STAGEFARM_ARCHIVES_TAR_INTERNAL_H_

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/errno_status.h"

namespace stagefarm::archives::internal {

constexpr absl::string_view kWhiteoutPrefix = ".wh.";
// aufs metadata entries (".wh..wh.plnk" and friends) share this prefix.
constexpr absl::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr absl::string_view kOpaqueMarker = ".wh..wh..opq";
// Both namespaces overlayfs may keep its metadata in (layer_tar.h's
// OverlayXattrPrefix says which one this process's mounts use).
constexpr absl::string_view kOverlayXattrPrefixes[] = {"trusted.overlay.",
                                                       "user.overlay."};
constexpr char kCapabilityXattr[] = "security.capability";
constexpr size_t kIoBufferSize = 256 * 1024;

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes and reports the error, which matters for files being written.
  int Close() {
    int rc = fd_ >= 0 ? close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

struct ArchiveWriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveEntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ArchiveWriter = std::unique_ptr<archive, ArchiveWriteFree>;
using ArchiveReader = std::unique_ptr<archive, ArchiveReadFree>;
using ArchiveEntry = std::unique_ptr<archive_entry, ArchiveEntryFree>;

inline std::string ArchiveErrorText(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown libarchive error";
}

inline absl::Status WriteAll(int fd, const uint8_t* data, size_t size,
                             absl::string_view path) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "writing", path);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Sorted (bytewise) names in `path`, without "." and "..".
inline absl::StatusOr<std::vector<std::string>> ListDir(
    const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return ErrnoStatus(errno, "opening directory", path);
  std::vector<std::string> names;
  while (true) {
    errno = 0;
    dirent* d = readdir(dir);
    if (d == nullptr) break;
    absl::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  int err = errno;
  closedir(dir);
  if (err != 0) return ErrnoStatus(err, "reading directory", path);
  // std::string compares as unsigned bytes, like memcmp.
  std::sort(names.begin(), names.end());
  return names;
}

// The value of xattr `name` on `path` (not following symlinks), or nullopt
// when it is absent or the filesystem has no xattrs.
inline absl::StatusOr<std::optional<std::string>> GetXattr(
    const std::string& path, const char* name) {
  std::string value(64, '\0');
  while (true) {
    ssize_t n = lgetxattr(path.c_str(), name, value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return std::optional<std::string>(std::move(value));
    }
    if (errno == ENODATA || errno == ENOTSUP) {
      return std::optional<std::string>();
    }
    if (errno != ERANGE) {
      return ErrnoStatus(errno, absl::StrCat("reading xattr ", name, " of"),
                         path);
    }
    ssize_t needed = lgetxattr(path.c_str(), name, nullptr, 0);
    if (needed < 0) {
      return ErrnoStatus(errno, absl::StrCat("reading xattr ", name, " of"),
                         path);
    }
    value.resize(static_cast<size_t>(needed) + 1);
  }
}

inline absl::StatusOr<std::string> ReadLink(const std::string& path,
                                            size_t hint) {
  std::string target(hint + 1, '\0');
  while (true) {
    ssize_t n = readlink(path.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoStatus(errno, "reading symlink", path);
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    target.resize(target.size() * 2);
  }
}

inline absl::string_view Dirname(absl::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == absl::string_view::npos ? absl::string_view()
                                          : rel.substr(0, slash);
}

inline absl::string_view Basename(absl::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == absl::string_view::npos ? rel : rel.substr(slash + 1);
}

inline std::string JoinRel(absl::string_view dir, absl::string_view name) {
  return dir.empty() ? std::string(name) : absl::StrCat(dir, "/", name);
}

// Walks an overlayfs upper directory and writes its tar entries.

class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale() {
    static const locale_t utf8 =
        newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (utf8 != static_cast<locale_t>(0)) previous_ = uselocale(utf8);
  }
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;
  ~ScopedUtf8Locale() {
    if (previous_ != static_cast<locale_t>(0)) uselocale(previous_);
  }

 private:
  locale_t previous_ = static_cast<locale_t>(0);
};

}  // namespace stagefarm::archives::internal

#endif  // STAGEFARM_ARCHIVES_TAR_INTERNAL_H_
