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
#include "archives/layer_sink.h"
#include "archives/layer_tar.h"
#include "archives/tar_internal.h"
#include "common/errno_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/user_namespace.h"

// Writing layers: a directory's tree as a sorted tar (WriteLayer), and a
// tar compressed (CompressLayer).
namespace stagefarm::archives {
namespace {

using internal::ArchiveEntry;
using internal::ArchiveErrorText;
using internal::ArchiveWriter;
using internal::Basename;
using internal::BlobSink;
using internal::Dirname;
using internal::Fd;
using internal::GetXattr;
using internal::JoinRel;
using internal::kCapabilityXattr;
using internal::kIoBufferSize;
using internal::kOpaqueMarker;
using internal::kWhiteoutPrefix;
using internal::ListDir;
using internal::ReadLink;
using internal::SinkWriteCallback;

class LayerWriter {
 public:
  LayerWriter(archive* a, BlobSink* sink, const LayerOptions& options,
              std::string root)
      : a_(a),
        sink_(sink),
        options_(options),
        root_(std::move(root)),
        entry_(archive_entry_new()),
        buffer_(kIoBufferSize),
        opaque_xattr_(OverlayXattrPrefix() + "opaque") {}

  // Writes the contents of directory `rel` ("" for the root), recursively.
  absl::Status WriteTree(const std::string& rel) {
    std::string full = FullPath(rel);
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(full));
    for (const std::string& name : names) {
      std::string child = JoinRel(rel, name);
      std::string child_full = FullPath(child);
      struct stat st;
      if (lstat(child_full.c_str(), &st) != 0) {
        return ErrnoStatus(errno, "stat", child_full);
      }
      RETURN_IF_ERROR(WriteEntry(child, child_full, st));
    }
    return absl::OkStatus();
  }

  int64_t entries() const { return entries_; }

 private:
  std::string FullPath(const std::string& rel) const {
    return rel.empty() ? root_ : absl::StrCat(root_, "/", rel);
  }

  int64_t ClampedMtime(const struct stat& st) const {
    int64_t mtime = st.st_mtim.tv_sec;
    if (options_.source_date_epoch.has_value()) {
      mtime = std::min(mtime, *options_.source_date_epoch);
    }
    return mtime;
  }

  // Starts a fresh entry with the fields every entry has. Nanoseconds are
  // dropped so the output does not depend on timestamp granularity.
  archive_entry* NewEntry(const std::string& path, mode_t type, mode_t perm,
                          int64_t uid, int64_t gid, int64_t mtime) {
    archive_entry* e = entry_.get();
    archive_entry_clear(e);
    archive_entry_copy_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, gid);
    archive_entry_set_mtime(e, mtime, 0);
    return e;
  }

  absl::Status WriteHeader(const std::string& rel) {
    int rc = archive_write_header(a_, entry_.get());
    // ARCHIVE_WARN is a name that is not valid UTF-8; libarchive then stores
    // it as raw bytes (hdrcharset=BINARY), which is still exact.
    if (rc < ARCHIVE_WARN) return ArchiveError("writing tar header for", rel);
    ++entries_;
    return absl::OkStatus();
  }

  absl::Status FinishEntry(const std::string& rel) {
    if (archive_write_finish_entry(a_) < ARCHIVE_WARN) {
      return ArchiveError("finishing tar entry", rel);
    }
    return absl::OkStatus();
  }

  absl::Status ArchiveError(absl::string_view what, const std::string& rel) {
    if (!sink_->error().ok()) return sink_->error();
    return absl::InternalError(
        absl::StrCat(what, " ", FullPath(rel), ": ", ArchiveErrorText(a_)));
  }

  // A whiteout-only entry: an empty regular file with fixed metadata.
  absl::Status WriteMarker(const std::string& path, int64_t mtime) {
    NewEntry(path, AE_IFREG, 0, 0, 0, mtime);
    archive_entry_set_size(entry_.get(), 0);
    RETURN_IF_ERROR(WriteHeader(path));
    return FinishEntry(path);
  }

  absl::Status WriteEntry(const std::string& rel, const std::string& full,
                          const struct stat& st) {
    const mode_t perm = st.st_mode & 07777;
    const int64_t mtime = ClampedMtime(st);
    switch (st.st_mode & S_IFMT) {
      case S_IFCHR:
        if (st.st_rdev == makedev(0, 0)) {
          // overlayfs whiteout -> OCI whiteout file.
          return WriteMarker(JoinRel(Dirname(rel), absl::StrCat(kWhiteoutPrefix,
                                                                Basename(rel))),
                             mtime);
        }
        [[fallthrough]];
      case S_IFBLK: {
        archive_entry* e = NewEntry(rel, st.st_mode & S_IFMT, perm, st.st_uid,
                                    st.st_gid, mtime);
        archive_entry_set_rdevmajor(e, major(st.st_rdev));
        archive_entry_set_rdevminor(e, minor(st.st_rdev));
        RETURN_IF_ERROR(WriteHeader(rel));
        return FinishEntry(rel);
      }
      case S_IFIFO:
        NewEntry(rel, AE_IFIFO, perm, st.st_uid, st.st_gid, mtime);
        RETURN_IF_ERROR(WriteHeader(rel));
        return FinishEntry(rel);
      case S_IFLNK: {
        ASSIGN_OR_RETURN(std::string target,
                         ReadLink(full, static_cast<size_t>(st.st_size)));
        archive_entry* e =
            NewEntry(rel, AE_IFLNK, perm, st.st_uid, st.st_gid, mtime);
        archive_entry_copy_symlink(e, target.c_str());
        RETURN_IF_ERROR(WriteHeader(rel));
        return FinishEntry(rel);
      }
      case S_IFDIR: {
        NewEntry(rel, AE_IFDIR, perm, st.st_uid, st.st_gid, mtime);
        RETURN_IF_ERROR(WriteHeader(rel));
        RETURN_IF_ERROR(FinishEntry(rel));
        ASSIGN_OR_RETURN(std::optional<std::string> opaque,
                         GetXattr(full, opaque_xattr_.c_str()));
        if (opaque.has_value() && *opaque == "y") {
          RETURN_IF_ERROR(WriteMarker(JoinRel(rel, kOpaqueMarker), mtime));
        }
        return WriteTree(rel);
      }
      case S_IFREG:
        return WriteRegular(rel, full, st, perm, mtime);
      case S_IFSOCK:
        // Tar cannot hold sockets and a socket in a build result is a
        // leftover of a process that is gone; docker skips them too.
        return absl::OkStatus();
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "unsupported file type ", st.st_mode & S_IFMT, " at ", full));
    }
  }

  absl::Status WriteRegular(const std::string& rel, const std::string& full,
                            const struct stat& st, mode_t perm, int64_t mtime) {
    if (st.st_nlink > 1) {
      auto [it, inserted] =
          first_link_.try_emplace(std::make_pair(st.st_dev, st.st_ino), rel);
      if (!inserted) {
        archive_entry* e =
            NewEntry(rel, AE_IFREG, perm, st.st_uid, st.st_gid, mtime);
        archive_entry_copy_hardlink(e, it->second.c_str());
        archive_entry_set_size(e, 0);
        RETURN_IF_ERROR(WriteHeader(rel));
        return FinishEntry(rel);
      }
    }
    archive_entry* e =
        NewEntry(rel, AE_IFREG, perm, st.st_uid, st.st_gid, mtime);
    archive_entry_set_size(e, st.st_size);
    // Only file capabilities matter to a container image; other xattrs
    // (SELinux labels, overlay metadata, user.*) are host state.
    ASSIGN_OR_RETURN(std::optional<std::string> cap,
                     GetXattr(full, kCapabilityXattr));
    if (cap.has_value()) {
      archive_entry_xattr_add_entry(e, kCapabilityXattr, cap->data(),
                                    cap->size());
    }
    Fd fd(open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, "opening", full);
    RETURN_IF_ERROR(WriteHeader(rel));
    int64_t remaining = st.st_size;
    while (remaining > 0) {
      size_t want =
          static_cast<size_t>(std::min<int64_t>(remaining, buffer_.size()));
      ssize_t n = read(fd.get(), buffer_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "reading", full);
      }
      if (n == 0) {
        return absl::AbortedError(
            absl::StrCat(full, " shrank while it was being archived"));
      }
      la_ssize_t written = archive_write_data(a_, buffer_.data(), n);
      if (written != n) return ArchiveError("writing tar data for", rel);
      remaining -= n;
    }
    return FinishEntry(rel);
  }

  archive* a_;
  BlobSink* sink_;
  const LayerOptions& options_;
  std::string root_;
  ArchiveEntry entry_;
  std::vector<char> buffer_;
  absl::flat_hash_map<std::pair<dev_t, ino_t>, std::string> first_link_;
  int64_t entries_ = 0;
  const std::string opaque_xattr_;
};

}  // namespace

bool OverlayUsesUserXattrs() { return InUserNamespace(); }

std::string OverlayXattrPrefix() {
  return OverlayUsesUserXattrs() ? "user.overlay." : "trusted.overlay.";
}

absl::StatusOr<LayerBlob> WriteLayer(const std::string& dir,
                                     const LayerOptions& options,
                                     const std::string& out_path) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno, "layer directory", dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer directory ", dir, " is not a directory"));
  }
  Fd out(
      open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out.valid()) return ErrnoStatus(errno, "creating", out_path);

  // Declared before the archive so libarchive's final callbacks (run by
  // archive_write_free) still find it alive.
  BlobSink sink(out.get(), options.compression, options.level, out_path);
  RETURN_IF_ERROR(sink.Init());
  ArchiveWriter a(archive_write_new());
  if (a == nullptr) return absl::ResourceExhaustedError("archive_write_new");
  // Restricted pax: plain ustar headers unless a name, size, id or xattr
  // needs an extension. No blocking: the stream ends right after the two
  // zero blocks instead of being padded to 10 KiB.
  // xattrs only as SCHILY.xattr.*, the form docker and GNU tar read, instead
  // of also repeating them base64-encoded as LIBARCHIVE.xattr.*.
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_format_option(a.get(), "pax", "xattrheader",
                                      "SCHILY") != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(a.get(), 0) != ARCHIVE_OK ||
      archive_write_open2(a.get(), &sink, nullptr, SinkWriteCallback, nullptr,
                          nullptr) != ARCHIVE_OK) {
    return absl::InternalError(
        absl::StrCat("setting up tar writer: ", ArchiveErrorText(a.get())));
  }
  LayerWriter writer(a.get(), &sink, options, dir);
  RETURN_IF_ERROR(writer.WriteTree(""));
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    if (!sink.error().ok()) return sink.error();
    return absl::InternalError(absl::StrCat("finishing tar for ", out_path,
                                            ": ", ArchiveErrorText(a.get())));
  }
  RETURN_IF_ERROR(sink.Finish());
  if (out.Close() != 0) return ErrnoStatus(errno, "closing", out_path);

  LayerBlob blob;
  blob.digest = sink.BlobDigest();
  blob.diff_id = sink.DiffId();
  blob.media_type = LayerMediaType(options.compression);
  blob.entries = writer.entries();
  return blob;
}

const char* LayerMediaType(Compression compression) {
  switch (compression) {
    case Compression::kGzip:
      return kMediaTypeLayerGzip;
    case Compression::kZstd:
      return kMediaTypeLayerZstd;
    case Compression::kNone:
      break;
  }
  return kMediaTypeLayerTar;
}

absl::StatusOr<LayerBlob> CompressLayer(const ByteSource& tar,
                                        const LayerOptions& options,
                                        const std::string& out_path) {
  Fd out(
      open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out.valid()) return ErrnoStatus(errno, "creating", out_path);
  BlobSink sink(out.get(), options.compression, options.level, out_path);
  RETURN_IF_ERROR(sink.Init());
  std::string buf;
  while (true) {
    buf.clear();
    ASSIGN_OR_RETURN(size_t n, tar(&buf));
    if (n == 0) break;
    RETURN_IF_ERROR(
        sink.Write(reinterpret_cast<const uint8_t*>(buf.data()), buf.size()));
  }
  RETURN_IF_ERROR(sink.Finish());
  if (out.Close() != 0) return ErrnoStatus(errno, "closing", out_path);
  LayerBlob blob;
  blob.digest = sink.BlobDigest();
  blob.diff_id = sink.DiffId();
  blob.media_type = LayerMediaType(options.compression);
  blob.entries = -1;  // not counted
  return blob;
}

}  // namespace stagefarm::archives
