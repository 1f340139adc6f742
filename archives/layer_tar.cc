#include "archives/layer_tar.h"

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
#include "common/errno_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::archives {
namespace {

constexpr absl::string_view kWhiteoutPrefix = ".wh.";
// aufs metadata entries (".wh..wh.plnk" and friends) share this prefix.
constexpr absl::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr absl::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
constexpr absl::string_view kOverlayXattrPrefix = "trusted.overlay.";
constexpr char kCapabilityXattr[] = "security.capability";
constexpr size_t kIoBufferSize = 256 * 1024;

std::string ErrnoText(int err) { return std::generic_category().message(err); }

absl::Status ErrnoError(int err, absl::string_view what,
                        absl::string_view path) {
  return ErrnoStatus(err, what, path);
}

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

std::string ArchiveErrorText(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown libarchive error";
}

absl::Status WriteAll(int fd, const uint8_t* data, size_t size,
                      absl::string_view path) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "writing", path);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Writing.

// gzip as a series of independent members of 1 MiB input each (RFC 1952
// allows any number; gzip readers, Go's and Docker's included, read them as
// one stream), compressed with libdeflate on up to as many threads as there
// are cores and written in order. Members cost 18 bytes each and restart
// the 32 KiB window, so the ratio stays that of a single stream (measured in
// docs/benchmarks.md) while compression uses every core. libdeflate's
// output depends only on input and level, so layers are the same bytes on
// every machine.
class BlockGzip {
 public:
  using Emit = std::function<absl::Status(const std::vector<uint8_t>&)>;
  static constexpr size_t kBlock = 1 << 20;

  explicit BlockGzip(int level)
      : level_(level),
        max_pending_(2 * std::max(1u, std::thread::hardware_concurrency())) {
    block_.reserve(kBlock);
  }
  ~BlockGzip() {
    for (auto& f : pending_) f.wait();
  }

  absl::Status Write(const uint8_t* data, size_t size, const Emit& emit) {
    while (size > 0) {
      size_t n = std::min(size, kBlock - block_.size());
      block_.insert(block_.end(), data, data + n);
      data += n;
      size -= n;
      if (block_.size() == kBlock) RETURN_IF_ERROR(Submit(emit));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(const Emit& emit) {
    // An empty stream is still one (empty) member.
    if (!block_.empty() || (members_ == 0 && pending_.empty())) {
      RETURN_IF_ERROR(Submit(emit));
    }
    while (!pending_.empty()) RETURN_IF_ERROR(Drain(emit));
    return absl::OkStatus();
  }

 private:
  static absl::StatusOr<std::vector<uint8_t>> Compress(std::vector<uint8_t> in,
                                                       int level) {
    libdeflate_compressor* c = libdeflate_alloc_compressor(level);
    if (c == nullptr) {
      return absl::ResourceExhaustedError("cannot allocate a gzip compressor");
    }
    std::vector<uint8_t> out(libdeflate_gzip_compress_bound(c, in.size()));
    size_t n = libdeflate_gzip_compress(c, in.data(), in.size(), out.data(),
                                        out.size());
    libdeflate_free_compressor(c);
    if (n == 0) return absl::InternalError("gzip compression failed");
    out.resize(n);
    return out;
  }

  absl::Status Submit(const Emit& emit) {
    if (pending_.size() >= max_pending_) RETURN_IF_ERROR(Drain(emit));
    std::vector<uint8_t> in;
    in.swap(block_);
    block_.reserve(kBlock);
    pending_.push_back(std::async(std::launch::async, &BlockGzip::Compress,
                                  std::move(in), level_));
    return absl::OkStatus();
  }

  absl::Status Drain(const Emit& emit) {
    absl::StatusOr<std::vector<uint8_t>> member = pending_.front().get();
    pending_.pop_front();
    RETURN_IF_ERROR(member.status());
    ++members_;
    return emit(*member);
  }

  int level_;
  size_t max_pending_;
  std::vector<uint8_t> block_;
  std::deque<std::future<absl::StatusOr<std::vector<uint8_t>>>> pending_;
  int64_t members_ = 0;
};

// Receives the tar stream from libarchive: hashes it (diff_id), compresses
// it, hashes the compressed bytes (blob digest) and writes them to the file.
class BlobSink {
 public:
  BlobSink(int fd, Compression compression, int level, std::string path)
      : fd_(fd),
        compression_(compression),
        level_(level),
        path_(std::move(path)),
        out_(kIoBufferSize) {}
  BlobSink(const BlobSink&) = delete;
  BlobSink& operator=(const BlobSink&) = delete;
  ~BlobSink() {
    if (zstd_ != nullptr) ZSTD_freeCCtx(zstd_);
  }

  absl::Status Init() {
    switch (compression_) {
      case Compression::kGzip:
        gzip_ = std::make_unique<BlockGzip>(level_ > 0 ? level_ : 6);
        break;
      case Compression::kZstd: {
        zstd_ = ZSTD_createCCtx();
        if (zstd_ == nullptr) {
          return absl::ResourceExhaustedError("cannot allocate zstd context");
        }
        size_t rc = ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel,
                                           level_ > 0 ? level_ : 3);
        if (!ZSTD_isError(rc)) {
          rc = ZSTD_CCtx_setParameter(zstd_, ZSTD_c_checksumFlag, 1);
        }
        if (ZSTD_isError(rc)) {
          return absl::InternalError(
              absl::StrCat("configuring zstd: ", ZSTD_getErrorName(rc)));
        }
        break;
      }
      case Compression::kNone:
        break;
    }
    return absl::OkStatus();
  }

  // Takes the next bytes of the uncompressed tar stream.
  absl::Status Write(const uint8_t* data, size_t size) {
    tar_hash_.Update(
        absl::string_view(reinterpret_cast<const char*>(data), size));
    tar_size_ += static_cast<int64_t>(size);
    switch (compression_) {
      case Compression::kGzip:
        return gzip_->Write(data, size, [this](const std::vector<uint8_t>& m) {
          return Emit(m.data(), m.size());
        });
      case Compression::kZstd:
        return CompressZstd(data, size, ZSTD_e_continue);
      case Compression::kNone:
        while (size > 0) {
          RETURN_IF_ERROR(MakeRoom());
          size_t n = std::min(size, out_.size() - out_used_);
          std::memcpy(out_.data() + out_used_, data, n);
          out_used_ += n;
          data += n;
          size -= n;
        }
        return absl::OkStatus();
    }
    return absl::InternalError("unknown compression");
  }

  // Ends the compressed stream and writes out what is buffered.
  absl::Status Finish() {
    switch (compression_) {
      case Compression::kGzip:
        RETURN_IF_ERROR(gzip_->Finish([this](const std::vector<uint8_t>& m) {
          return Emit(m.data(), m.size());
        }));
        break;
      case Compression::kZstd:
        RETURN_IF_ERROR(CompressZstd(nullptr, 0, ZSTD_e_end));
        break;
      case Compression::kNone:
        break;
    }
    return FlushOut();
  }

  // The first error seen inside a libarchive callback, which libarchive
  // itself can only report as a string.
  void set_error(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }
  const absl::Status& error() const { return error_; }

  std::string DiffId() { return absl::StrCat("sha256:", tar_hash_.FinalHex()); }
  Digest BlobDigest() {
    return Digest::FromRaw(blob_hash_.Final(), blob_size_);
  }

 private:
  absl::Status MakeRoom() {
    if (out_used_ == out_.size()) return FlushOut();
    return absl::OkStatus();
  }

  absl::Status FlushOut() {
    if (out_used_ == 0) return absl::OkStatus();
    blob_hash_.Update(absl::string_view(
        reinterpret_cast<const char*>(out_.data()), out_used_));
    blob_size_ += static_cast<int64_t>(out_used_);
    RETURN_IF_ERROR(WriteAll(fd_, out_.data(), out_used_, path_));
    out_used_ = 0;
    return absl::OkStatus();
  }

  // Appends compressed bytes to the output buffer.
  absl::Status Emit(const uint8_t* data, size_t size) {
    while (size > 0) {
      RETURN_IF_ERROR(MakeRoom());
      size_t n = std::min(size, out_.size() - out_used_);
      std::memcpy(out_.data() + out_used_, data, n);
      out_used_ += n;
      data += n;
      size -= n;
    }
    return absl::OkStatus();
  }

  absl::Status CompressZstd(const uint8_t* data, size_t size,
                            ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size, 0};
    while (true) {
      RETURN_IF_ERROR(MakeRoom());
      ZSTD_outBuffer out{out_.data() + out_used_, out_.size() - out_used_, 0};
      size_t remaining = ZSTD_compressStream2(zstd_, &out, &in, mode);
      if (ZSTD_isError(remaining)) {
        return absl::InternalError(absl::StrCat("zstd compression failed for ",
                                                path_, ": ",
                                                ZSTD_getErrorName(remaining)));
      }
      out_used_ += out.pos;
      bool done = mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size;
      if (done) return absl::OkStatus();
    }
  }

  int fd_;
  Compression compression_;
  int level_ = 0;
  std::string path_;
  Sha256 tar_hash_;
  Sha256 blob_hash_;
  int64_t tar_size_ = 0;
  int64_t blob_size_ = 0;
  std::vector<uint8_t> out_;  // compressed bytes not yet written
  size_t out_used_ = 0;
  std::unique_ptr<BlockGzip> gzip_;
  ZSTD_CCtx* zstd_ = nullptr;
  absl::Status error_;
};

la_ssize_t SinkWriteCallback(archive* a, void* client, const void* buffer,
                             size_t length) {
  auto* sink = static_cast<BlobSink*>(client);
  absl::Status status =
      sink->Write(static_cast<const uint8_t*>(buffer), length);
  if (!status.ok()) {
    archive_set_error(a, EIO, "%s", std::string(status.message()).c_str());
    sink->set_error(std::move(status));
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

// Sorted (bytewise) names in `path`, without "." and "..".
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return ErrnoError(errno, "opening directory", path);
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
  if (err != 0) return ErrnoError(err, "reading directory", path);
  // std::string compares as unsigned bytes, like memcmp.
  std::sort(names.begin(), names.end());
  return names;
}

// The value of xattr `name` on `path` (not following symlinks), or nullopt
// when it is absent or the filesystem has no xattrs.
absl::StatusOr<std::optional<std::string>> GetXattr(const std::string& path,
                                                    const char* name) {
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
      return ErrnoError(errno, absl::StrCat("reading xattr ", name, " of"),
                        path);
    }
    ssize_t needed = lgetxattr(path.c_str(), name, nullptr, 0);
    if (needed < 0) {
      return ErrnoError(errno, absl::StrCat("reading xattr ", name, " of"),
                        path);
    }
    value.resize(static_cast<size_t>(needed) + 1);
  }
}

absl::StatusOr<std::string> ReadLink(const std::string& path, size_t hint) {
  std::string target(hint + 1, '\0');
  while (true) {
    ssize_t n = readlink(path.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoError(errno, "reading symlink", path);
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    target.resize(target.size() * 2);
  }
}

absl::string_view Dirname(absl::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == absl::string_view::npos ? absl::string_view()
                                          : rel.substr(0, slash);
}

absl::string_view Basename(absl::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == absl::string_view::npos ? rel : rel.substr(slash + 1);
}

std::string JoinRel(absl::string_view dir, absl::string_view name) {
  return dir.empty() ? std::string(name) : absl::StrCat(dir, "/", name);
}

// Walks an overlayfs upper directory and writes its tar entries.
class LayerWriter {
 public:
  LayerWriter(archive* a, BlobSink* sink, const LayerOptions& options,
              std::string root)
      : a_(a),
        sink_(sink),
        options_(options),
        root_(std::move(root)),
        entry_(archive_entry_new()),
        buffer_(kIoBufferSize) {}

  // Writes the contents of directory `rel` ("" for the root), recursively.
  absl::Status WriteTree(const std::string& rel) {
    std::string full = FullPath(rel);
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(full));
    for (const std::string& name : names) {
      std::string child = JoinRel(rel, name);
      std::string child_full = FullPath(child);
      struct stat st;
      if (lstat(child_full.c_str(), &st) != 0) {
        return ErrnoError(errno, "stat", child_full);
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
                         GetXattr(full, kOpaqueXattr));
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
    if (!fd.valid()) return ErrnoError(errno, "opening", full);
    RETURN_IF_ERROR(WriteHeader(rel));
    int64_t remaining = st.st_size;
    while (remaining > 0) {
      size_t want =
          static_cast<size_t>(std::min<int64_t>(remaining, buffer_.size()));
      ssize_t n = read(fd.get(), buffer_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "reading", full);
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
};

// ---------------------------------------------------------------------------
// Reading.

// The uncompressed tar stream of a layer: detects the compression from the
// first bytes, decompresses, and hashes what it hands out (the diff_id).
class LayerStream {
 public:
  explicit LayerStream(const ByteSource& source)
      : source_(source), out_(kIoBufferSize) {}
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;
  ~LayerStream() {
    if (zstd_ != nullptr) ZSTD_freeDCtx(zstd_);
  }

  // The next uncompressed bytes, valid until the next call; empty at the end.
  absl::StatusOr<absl::string_view> Next() {
    if (kind_ == Kind::kUnknown) RETURN_IF_ERROR(Detect());
    absl::StatusOr<absl::string_view> chunk;
    switch (kind_) {
      case Kind::kPlain:
        chunk = NextPlain();
        break;
      case Kind::kGzip:
        chunk = NextGzip();
        break;
      case Kind::kZstd:
        chunk = NextZstd();
        break;
      case Kind::kUnknown:
        return absl::InternalError("layer compression not detected");
    }
    if (chunk.ok()) tar_hash_.Update(*chunk);
    return chunk;
  }

  // Reads to the end, so the diff_id covers bytes after the tar's end
  // marker and the compressed stream's checksum gets verified.
  absl::Status Drain() {
    while (true) {
      ASSIGN_OR_RETURN(absl::string_view chunk, Next());
      if (chunk.empty()) return absl::OkStatus();
    }
  }

  std::string DiffId() { return absl::StrCat("sha256:", tar_hash_.FinalHex()); }

  void set_error(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }
  const absl::Status& error() const { return error_; }

 private:
  enum class Kind { kUnknown, kPlain, kGzip, kZstd };

  size_t available() const { return in_.size() - in_pos_; }
  const uint8_t* in_data() const {
    return reinterpret_cast<const uint8_t*>(in_.data()) + in_pos_;
  }

  // Appends the source's next bytes to the unconsumed input.
  absl::Status Fill() {
    if (eof_) return absl::OkStatus();
    chunk_.clear();
    ASSIGN_OR_RETURN(size_t n, source_(&chunk_));
    if (n > chunk_.size()) {
      return absl::InternalError(
          "layer source reported more bytes than it gave");
    }
    if (n == 0) {
      eof_ = true;
      return absl::OkStatus();
    }
    chunk_.resize(n);
    if (available() == 0) {
      in_.swap(chunk_);
    } else {
      in_.erase(0, in_pos_);
      in_.append(chunk_);
    }
    in_pos_ = 0;
    return absl::OkStatus();
  }

  absl::Status Detect() {
    while (available() < 4 && !eof_) RETURN_IF_ERROR(Fill());
    const uint8_t* p = in_data();
    if (available() >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
      kind_ = Kind::kGzip;
      gzip_ = std::make_unique<inflate_state>();
      isal_inflate_init(gzip_.get());
      gzip_->crc_flag = ISAL_GZIP;
    } else if (available() >= 4 && p[0] == 0x28 && p[1] == 0xb5 &&
               p[2] == 0x2f && p[3] == 0xfd) {
      kind_ = Kind::kZstd;
      zstd_ = ZSTD_createDCtx();
      if (zstd_ == nullptr) {
        return absl::ResourceExhaustedError("cannot allocate zstd context");
      }
    } else {
      kind_ = Kind::kPlain;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<absl::string_view> NextPlain() {
    if (available() == 0) RETURN_IF_ERROR(Fill());
    absl::string_view chunk(in_.data() + in_pos_, available());
    in_pos_ = in_.size();
    return chunk;
  }

  absl::StatusOr<absl::string_view> NextGzip() {
    while (true) {
      if (gzip_member_done_) {
        if (available() == 0) {
          if (eof_) return absl::string_view();
          RETURN_IF_ERROR(Fill());
          continue;
        }
        // Concatenated members form one gzip stream (pigz, appends).
        isal_inflate_reset(gzip_.get());
        gzip_->crc_flag = ISAL_GZIP;
        gzip_member_done_ = false;
      }
      uint32_t offered = static_cast<uint32_t>(
          std::min<size_t>(available(), std::numeric_limits<uint32_t>::max()));
      gzip_->next_in = const_cast<uint8_t*>(in_data());
      gzip_->avail_in = offered;
      gzip_->next_out = out_.data();
      gzip_->avail_out = static_cast<uint32_t>(out_.size());
      int rc = isal_inflate(gzip_.get());
      size_t consumed = offered - gzip_->avail_in;
      in_pos_ += consumed;
      if (rc < 0) {
        return absl::DataLossError(
            absl::StrCat("corrupt gzip layer: ", GzipErrorText(rc)));
      }
      size_t produced = out_.size() - gzip_->avail_out;
      if (gzip_->block_state == ISAL_BLOCK_FINISH) gzip_member_done_ = true;
      if (produced > 0) {
        return absl::string_view(reinterpret_cast<const char*>(out_.data()),
                                 produced);
      }
      if (gzip_member_done_) continue;
      if (available() > 0) {
        if (consumed == 0) {
          return absl::DataLossError("corrupt gzip layer: decoder stalled");
        }
        continue;
      }
      if (eof_) return absl::DataLossError("truncated gzip layer");
      RETURN_IF_ERROR(Fill());
    }
  }

  absl::StatusOr<absl::string_view> NextZstd() {
    while (true) {
      ZSTD_inBuffer in{in_data(), available(), 0};
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      size_t rc = ZSTD_decompressStream(zstd_, &out, &in);
      in_pos_ += in.pos;
      if (ZSTD_isError(rc)) {
        return absl::DataLossError(
            absl::StrCat("corrupt zstd layer: ", ZSTD_getErrorName(rc)));
      }
      // 0 means a frame just ended and everything is flushed.
      // (A call without progress starts looking for the next frame and
      // returns non-zero even at a clean end, so only progress counts.)
      if (in.pos > 0 || out.pos > 0) zstd_frame_done_ = rc == 0;
      if (out.pos > 0) {
        return absl::string_view(reinterpret_cast<const char*>(out_.data()),
                                 out.pos);
      }
      if (available() > 0) {
        if (in.pos == 0) {
          return absl::DataLossError("corrupt zstd layer: decoder stalled");
        }
        continue;
      }
      if (eof_) {
        if (!zstd_frame_done_)
          return absl::DataLossError("truncated zstd layer");
        return absl::string_view();
      }
      RETURN_IF_ERROR(Fill());
    }
  }

  static std::string GzipErrorText(int rc) {
    switch (rc) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid lookback distance";
      case ISAL_INVALID_WRAPPER:
        return "invalid gzip header";
      case ISAL_UNSUPPORTED_METHOD:
        return "unsupported compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch";
      default:
        return absl::StrCat("error ", rc);
    }
  }

  const ByteSource& source_;
  Kind kind_ = Kind::kUnknown;
  std::string in_;  // compressed input; in_pos_ is the first unconsumed byte
  size_t in_pos_ = 0;
  std::string chunk_;
  bool eof_ = false;
  std::vector<uint8_t> out_;
  std::unique_ptr<inflate_state> gzip_;
  bool gzip_member_done_ = false;
  ZSTD_DCtx* zstd_ = nullptr;
  bool zstd_frame_done_ = false;
  Sha256 tar_hash_;
  absl::Status error_;
};

la_ssize_t StreamReadCallback(archive* a, void* client, const void** buffer) {
  auto* stream = static_cast<LayerStream*>(client);
  absl::StatusOr<absl::string_view> chunk = stream->Next();
  if (!chunk.ok()) {
    archive_set_error(a, EIO, "%s",
                      std::string(chunk.status().message()).c_str());
    stream->set_error(chunk.status());
    return -1;
  }
  *buffer = chunk->data();
  return static_cast<la_ssize_t>(chunk->size());
}

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
    return ErrnoError(errno, "duplicating descriptor for layer entry",
                      Quoted(entry));
  }
  for (size_t i = 0; i < count; ++i) {
    const char* name = parts[i].c_str();
    int fd = openat(dir.get(), name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (mkdirat(dir.get(), name, 0755) != 0 && errno != EEXIST) {
        return ErrnoError(errno, "creating parent directory for layer entry",
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
    return ErrnoError(
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
    return ErrnoError(errno, "stat for whiteout", Quoted(entry));
  }
  if (S_ISDIR(st.st_mode)) {
    int fd = openat(dir_fd, name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "opening for whiteout", Quoted(entry));
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      int err = errno;
      close(fd);
      return ErrnoError(err, "opening for whiteout", Quoted(entry));
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
      return ErrnoError(errno, "removing for whiteout", Quoted(entry));
    }
    return absl::OkStatus();
  }
  if (unlinkat(dir_fd, name.c_str(), 0) != 0) {
    return ErrnoError(errno, "removing for whiteout", Quoted(entry));
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
    if (fsetxattr(parent.get(), kOpaqueXattr, "y", 1, 0) != 0) {
      return ErrnoError(errno, "marking opaque for layer entry", Quoted(entry));
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
    return ErrnoError(errno, "creating whiteout for layer entry",
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
    if (absl::StartsWith(name, kOverlayXattrPrefix)) {
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

absl::Status CheckEmptyDir(const std::string& path) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(path));
  if (!names.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("layer destination ", path, " is not empty"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LayerBlob> WriteLayer(const std::string& dir,
                                     const LayerOptions& options,
                                     const std::string& out_path) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return ErrnoError(errno, "layer directory", dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer directory ", dir, " is not a directory"));
  }
  Fd out(
      open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!out.valid()) return ErrnoError(errno, "creating", out_path);

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
  if (out.Close() != 0) return ErrnoError(errno, "closing", out_path);

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
  if (!out.valid()) return ErrnoError(errno, "creating", out_path);
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
  if (out.Close() != 0) return ErrnoError(errno, "closing", out_path);
  LayerBlob blob;
  blob.digest = sink.BlobDigest();
  blob.diff_id = sink.DiffId();
  blob.media_type = LayerMediaType(options.compression);
  blob.entries = -1;  // not counted
  return blob;
}

absl::StatusOr<ApplyResult> ApplyLayer(const ByteSource& source,
                                       const std::string& dest_dir) {
  // Entries get absolute names below the resolved destination: libarchive's
  // symlink checks then only ever see real directories above it.
  char* resolved = realpath(dest_dir.c_str(), nullptr);
  if (resolved == nullptr) {
    return ErrnoError(errno, "resolving layer destination", dest_dir);
  }
  std::string root = resolved;
  free(resolved);
  Fd root_fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) return ErrnoError(errno, "opening", root);
  RETURN_IF_ERROR(CheckEmptyDir(root));

  ScopedUtf8Locale locale;
  LayerStream stream(source);
  ArchiveReader in(archive_read_new());
  ArchiveWriter out(archive_write_disk_new());
  if (in == nullptr || out == nullptr) {
    return absl::ResourceExhaustedError("allocating libarchive handles");
  }
  archive_read_support_format_tar(in.get());
  // A zero-byte blob is an empty layer too.
  archive_read_support_format_empty(in.get());
  // No uname/gname lookups: ids are numeric, as in the image. No ACLs or
  // file flags: OCI layers do not carry them.
  archive_write_disk_set_options(
      out.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                     ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                     ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                     ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_UNLINK);
  if (archive_read_open(in.get(), &stream, nullptr, StreamReadCallback,
                        nullptr) != ARCHIVE_OK) {
    if (!stream.error().ok()) return stream.error();
    return absl::InvalidArgumentError(
        absl::StrCat("reading layer: ", ArchiveErrorText(in.get())));
  }

  LayerExtractor extractor(in.get(), out.get(), &stream, root, root_fd.get());
  int64_t entries = 0;
  while (true) {
    archive_entry* e;
    int rc = archive_read_next_header(in.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      if (!stream.error().ok()) return stream.error();
      return absl::InvalidArgumentError(
          absl::StrCat("reading layer after ", entries,
                       " entries: ", ArchiveErrorText(in.get())));
    }
    ++entries;
    RETURN_IF_ERROR(extractor.Extract(e));
  }
  // Directory modes and times are applied here, after their contents.
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("finishing layer extraction: ",
                                            ArchiveErrorText(out.get())));
  }
  RETURN_IF_ERROR(stream.Drain());
  return ApplyResult{stream.DiffId(), entries};
}

absl::StatusOr<ApplyResult> ApplyLayerFile(const std::string& path,
                                           const std::string& dest_dir) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "opening layer", path);
  ByteSource source = [&fd, &path](std::string* out) -> absl::StatusOr<size_t> {
    out->resize(kIoBufferSize);
    while (true) {
      ssize_t n = read(fd.get(), out->data(), out->size());
      if (n >= 0) {
        out->resize(static_cast<size_t>(n));
        return static_cast<size_t>(n);
      }
      if (errno != EINTR) return ErrnoError(errno, "reading layer", path);
    }
  };
  return ApplyLayer(source, dest_dir);
}

}  // namespace stagefarm::archives
