#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <locale.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "archives/archive_extract.h"
#include "archives/layer_stream.h"
#include "archives/layer_tar.h"
#include "archives/tar_internal.h"
#include "common/errno_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"

// Applying layers: whiteouts, hard links, xattrs and owners onto a
// directory, every path kept inside it (ApplyLayer).
namespace stagefarm::archives {
namespace {

using internal::ArchiveErrorText;
using internal::ArchiveWriter;
using internal::Fd;
using internal::kIoBufferSize;
using internal::kOpaqueMarker;
using internal::kOverlayXattrPrefixes;
using internal::kWhiteoutMetaPrefix;
using internal::kWhiteoutPrefix;
using internal::LayerStream;
using internal::ListDir;
using internal::ScopedUtf8Locale;
using internal::StreamReadCallback;

std::string Quoted(absl::string_view name) {
  return absl::StrCat("\"", name, "\"");
}

// Splits a tar member name (or, with `link_target`, a hard link's target)
// into its components, dropping empty and "." components. Absolute names and
// ".." are refused: nothing may land outside the destination. `entry` names
// the member in errors.
absl::StatusOr<std::vector<std::string>> CleanPath(absl::string_view path,
                                                   absl::string_view entry,
                                                   bool link_target) {
  auto escapes = [&]() {
    if (!link_target) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer entry ", Quoted(entry), " escapes the destination"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("layer entry ", Quoted(entry), " links to ", Quoted(path),
                     " outside the destination"));
  };
  if (absl::StartsWith(path, "/")) {
    if (link_target) return escapes();
    return absl::InvalidArgumentError(
        absl::StrCat("layer entry ", Quoted(entry), " has an absolute path"));
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return escapes();
    parts.emplace_back(part);
  }
  return parts;
}

// Opens the directory `parts[0..count)` below `root_fd` without following
// symlinks. With `create`, missing directories are made (mode 0755);
// otherwise the walk stops at the first missing or non-directory component
// (libarchive creates or replaces those) and returns an invalid Fd.
absl::StatusOr<Fd> OpenParents(int root_fd,
                               const std::vector<std::string>& parts,
                               size_t count, absl::string_view entry,
                               bool create) {
  Fd dir(fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!dir.valid()) {
    return ErrnoStatus(errno, "duplicating descriptor for layer entry",
                       Quoted(entry));
  }
  for (size_t i = 0; i < count; ++i) {
    const char* name = parts[i].c_str();
    int fd = openat(dir.get(), name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (mkdirat(dir.get(), name, 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, "creating parent directory for layer entry",
                           Quoted(entry));
      }
      fd = openat(dir.get(), name,
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd >= 0) {
      dir = Fd(fd);
      continue;
    }
    int err = errno;
    std::string prefix =
        absl::StrJoin(parts.begin(), parts.begin() + i + 1, "/");
    // O_NOFOLLOW|O_DIRECTORY on a symlink fails with ENOTDIR or ELOOP
    // depending on the kernel, so look at what is there.
    struct stat st;
    bool exists = fstatat(dir.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && S_ISLNK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer entry ", Quoted(entry), " goes through symlink ",
                       Quoted(prefix)));
    }
    if (!create && (err == ENOENT || err == ENOTDIR)) return Fd();
    if (exists && !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer entry ", Quoted(entry), " goes through ",
                       Quoted(prefix), ", which is not a directory"));
    }
    return ErrnoStatus(
        err, absl::StrCat("opening ", Quoted(prefix), " for layer entry"),
        Quoted(entry));
  }
  return dir;
}

// Removes `name` in `dir_fd`, recursively for a directory.
absl::Status RemoveAllAt(int dir_fd, const std::string& name,
                         absl::string_view entry) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "stat for whiteout", Quoted(entry));
  }
  if (S_ISDIR(st.st_mode)) {
    int fd = openat(dir_fd, name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
      return ErrnoStatus(errno, "opening for whiteout", Quoted(entry));
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      int err = errno;
      close(fd);
      return ErrnoStatus(err, "opening for whiteout", Quoted(entry));
    }
    std::vector<std::string> children;
    while (dirent* d = readdir(dir)) {
      absl::string_view child = d->d_name;
      if (child != "." && child != "..") children.emplace_back(child);
    }
    absl::Status status;
    for (const std::string& child : children) {
      status = RemoveAllAt(dirfd(dir), child, entry);
      if (!status.ok()) break;
    }
    closedir(dir);
    RETURN_IF_ERROR(status);
    if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) {
      return ErrnoStatus(errno, "removing for whiteout", Quoted(entry));
    }
    return absl::OkStatus();
  }
  if (unlinkat(dir_fd, name.c_str(), 0) != 0) {
    return ErrnoStatus(errno, "removing for whiteout", Quoted(entry));
  }
  return absl::OkStatus();
}

// Turns an OCI whiteout entry back into overlayfs lower format.
absl::Status ApplyWhiteout(int root_fd, const std::vector<std::string>& parts,
                           const std::string& entry) {
  const std::string& base = parts.back();
  if (base != kOpaqueMarker && absl::StartsWith(base, kWhiteoutMetaPrefix)) {
    return absl::OkStatus();  // aufs bookkeeping, meaningless here
  }
  ASSIGN_OR_RETURN(Fd parent, OpenParents(root_fd, parts, parts.size() - 1,
                                          entry, /*create=*/true));
  if (base == kOpaqueMarker) {
    static const std::string opaque = OverlayXattrPrefix() + "opaque";
    if (fsetxattr(parent.get(), opaque.c_str(), "y", 1, 0) != 0) {
      return ErrnoStatus(errno, "marking opaque for layer entry",
                         Quoted(entry));
    }
    return absl::OkStatus();
  }
  std::string victim = base.substr(kWhiteoutPrefix.size());
  if (victim.empty() || victim == "." || victim == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer entry ", Quoted(entry), " is not a valid whiteout"));
  }
  // Only this layer's own entries can be in the way (dest starts empty).
  RETURN_IF_ERROR(RemoveAllAt(parent.get(), victim, entry));
  if (mknodat(parent.get(), victim.c_str(), S_IFCHR, makedev(0, 0)) != 0) {
    return ErrnoStatus(errno, "creating whiteout for layer entry",
                       Quoted(entry));
  }
  return absl::OkStatus();
}

// Drops overlayfs metadata xattrs: the layer's whiteout entries are the only
// way to express overlay state, so a tar cannot smuggle in redirects or
// opaque marks.
void FilterXattrs(archive_entry* e) {
  if (archive_entry_xattr_count(e) == 0) return;
  std::vector<std::pair<std::string, std::string>> kept;
  bool dropped = false;
  archive_entry_xattr_reset(e);
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    bool overlay = false;
    for (absl::string_view prefix : kOverlayXattrPrefixes) {
      overlay |= absl::StartsWith(name, prefix);
    }
    if (overlay) {
      dropped = true;
      continue;
    }
    kept.emplace_back(name, std::string(static_cast<const char*>(value), size));
  }
  if (!dropped) return;
  archive_entry_xattr_clear(e);
  for (const auto& [n, v] : kept) {
    archive_entry_xattr_add_entry(e, n.c_str(), v.data(), v.size());
  }
}

class LayerExtractor {
 public:
  LayerExtractor(archive* in, archive* out, LayerStream* stream,
                 std::string root, int root_fd)
      : in_(in),
        out_(out),
        stream_(stream),
        root_(std::move(root)),
        root_fd_(root_fd) {}

  absl::Status Extract(archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr) {
      return absl::InvalidArgumentError("layer entry without a usable name");
    }
    const std::string entry = raw;
    ASSIGN_OR_RETURN(std::vector<std::string> parts,
                     CleanPath(entry, entry, /*link_target=*/false));
    if (parts.empty()) return absl::OkStatus();  // "." or "./": the root
    if (absl::StartsWith(parts.back(), kWhiteoutPrefix)) {
      return ApplyWhiteout(root_fd_, parts, entry);
    }
    // libarchive's SECURE_SYMLINKS check is defeated by EXTRACT_UNLINK, which
    // deletes a symlinked parent instead of refusing it; check ourselves.
    RETURN_IF_ERROR(OpenParents(root_fd_, parts, parts.size() - 1, entry,
                                /*create=*/false)
                        .status());
    archive_entry_copy_pathname(e, DestPath(parts).c_str());
    if (const char* link = archive_entry_hardlink(e); link != nullptr) {
      const std::string target = link;
      ASSIGN_OR_RETURN(std::vector<std::string> target_parts,
                       CleanPath(target, entry, /*link_target=*/true));
      if (target_parts.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer entry ", Quoted(entry), " is a hard link to the root"));
      }
      RETURN_IF_ERROR(OpenParents(root_fd_, target_parts,
                                  target_parts.size() - 1, entry,
                                  /*create=*/false)
                          .status());
      archive_entry_copy_hardlink(e, DestPath(target_parts).c_str());
    }
    FilterXattrs(e);

    int rc = archive_write_header(out_, e);
    if (rc < ARCHIVE_WARN) return WriteError(entry);
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
      while (true) {
        const void* block;
        size_t size;
        la_int64_t offset;
        rc = archive_read_data_block(in_, &block, &size, &offset);
        if (rc == ARCHIVE_EOF) break;
        if (rc < ARCHIVE_WARN) return ReadError(entry);
        unpacked_ += static_cast<int64_t>(size);
        if (unpacked_ > limit_) return UnpackLimitError(limit_, entry);
        if (archive_write_data_block(out_, block, size, offset) <
            ARCHIVE_WARN) {
          return WriteError(entry);
        }
      }
    }
    if (archive_write_finish_entry(out_) < ARCHIVE_WARN)
      return WriteError(entry);
    return absl::OkStatus();
  }

  absl::Status ReadError(absl::string_view entry) {
    if (!stream_->error().ok()) return stream_->error();
    return absl::InvalidArgumentError(absl::StrCat(
        "reading layer entry ", Quoted(entry), ": ", ArchiveErrorText(in_)));
  }

 private:
  // Bytes written so far, and the bound (worker/archive_extract.h).
  int64_t unpacked_ = 0;
  const int64_t limit_ = MaxUnpackBytes();

  std::string DestPath(const std::vector<std::string>& parts) const {
    return absl::StrCat(root_, "/", absl::StrJoin(parts, "/"));
  }

  absl::Status WriteError(absl::string_view entry) {
    return absl::InternalError(absl::StrCat("extracting layer entry ",
                                            Quoted(entry), ": ",
                                            ArchiveErrorText(out_)));
  }

  archive* in_;
  archive* out_;
  LayerStream* stream_;
  std::string root_;
  int root_fd_;
};

// Makes libarchive's name handling independent of the process locale for
// the calling thread: names that are valid UTF-8 go into pax headers as
// UTF-8 (as docker writes them), others as raw bytes with
// hdrcharset=BINARY. In the "C" locale every non-ASCII name would be
// marked binary, and output would change with setlocale().

absl::Status CheckEmptyDir(const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(path));
  if (!names.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("layer destination ", path, " is not empty"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ApplyResult> ApplyLayer(const ByteSource& source,
                                       const std::string& dest_dir) {
  // Entries get absolute names below the resolved destination: libarchive's
  // symlink checks then only ever see real directories above it.
  char* resolved = realpath(dest_dir.c_str(), nullptr);
  if (resolved == nullptr) {
    return ErrnoStatus(errno, "resolving layer destination", dest_dir);
  }
  std::string root = resolved;
  free(resolved);
  Fd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) return ErrnoStatus(errno, "opening", root);
  RETURN_IF_ERROR(CheckEmptyDir(root));

  ScopedUtf8Locale locale;
  LayerStream stream(source);
  internal::LayerTarReader in(&stream);
  ArchiveWriter out(archive_write_disk_new());
  if (out == nullptr) {
    return absl::ResourceExhaustedError("allocating libarchive handles");
  }
  // No uname/gname lookups: ids are numeric, as in the image. No ACLs or
  // file flags: OCI layers do not carry them.
  archive_write_disk_set_options(
      out.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                     ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                     ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                     ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_UNLINK);
  RETURN_IF_ERROR(in.Open());

  LayerExtractor extractor(in.get(), out.get(), &stream, root, root_fd.get());
  while (true) {
    ASSIGN_OR_RETURN(archive_entry * e, in.Next());
    if (e == nullptr) break;
    RETURN_IF_ERROR(extractor.Extract(e));
  }
  // Directory modes and times are applied here, after their contents.
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("finishing layer extraction: ",
                                            ArchiveErrorText(out.get())));
  }
  RETURN_IF_ERROR(stream.Drain());
  return ApplyResult{stream.DiffId(), in.entries()};
}

absl::StatusOr<ApplyResult> ApplyLayerFile(const std::string& path,
                                           const std::string& dest_dir) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "opening layer", path);
  ByteSource source = [&fd, &path](std::string* out) -> absl::StatusOr<size_t> {
    out->resize(kIoBufferSize);
    while (true) {
      ssize_t n = read(fd.get(), out->data(), out->size());
      if (n >= 0) {
        out->resize(static_cast<size_t>(n));
        return static_cast<size_t>(n);
      }
      if (errno != EINTR) return ErrnoStatus(errno, "reading layer", path);
    }
  };
  return ApplyLayer(source, dest_dir);
}

}  // namespace stagefarm::archives
