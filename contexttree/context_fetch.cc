#include "contexttree/context_fetch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "blobstore/blob_files.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/errno_status.h"
#include "common/fs_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::contexttree {
namespace {

constexpr int kMaxDepth = 1024;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return ErrnoStatus(errno, what, path);
}

mode_t ModeOf(const reapi::NodeProperties& p, mode_t fallback) {
  return p.has_unix_mode() ? static_cast<mode_t>(p.unix_mode().value() & 07777)
                           : fallback;
}

class Writer {
 public:
  // `merge`: into a directory that may hold files already (MergeTree).
  Writer(BlobStore* blobs, const std::string& ns, bool merge = false,
         StatCache* cache = nullptr, bool keep_existing = false)
      : blobs_(blobs),
        ns_(ns),
        merge_(merge),
        cache_(cache),
        keep_existing_(keep_existing) {}

  // Fills the existing directory `host` (relative name `rel` for messages)
  // from the Directory `digest`.
  absl::Status Fill(const Digest& digest, const std::string& host,
                    const std::string& rel, int depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("context tree deeper than ", kMaxDepth, " levels"));
    }
    ASSIGN_OR_RETURN(std::string bytes, blobs_->Get(ns_, digest));
    reapi::Directory dir;
    if (!dir.ParseFromString(bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "context tree: unreadable Directory ", digest.ToString()));
    }
    absl::flat_hash_set<std::string> names;
    auto claim = [&](const std::string& name) -> absl::Status {
      RETURN_IF_ERROR(CheckEntryName(name, rel));
      if (!names.insert(name).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "context tree: \"", name, "\" twice in ", rel.empty() ? "/" : rel));
      }
      return absl::OkStatus();
    };
    for (const auto& f : dir.files()) {
      RETURN_IF_ERROR(claim(f.name()));
      ASSIGN_OR_RETURN(Digest d, Digest::FromProto(f.digest()));
      mode_t mode =
          ModeOf(f.node_properties(), f.is_executable() ? 0755 : 0644);
      const std::string path = absl::StrCat(host, "/", f.name());
      const std::string file_rel =
          rel.empty() ? f.name() : absl::StrCat(rel, "/", f.name());
      if (merge_) {
        struct stat existing;
        if (keep_existing_ && lstat(path.c_str(), &existing) == 0) continue;
        ASSIGN_OR_RETURN(bool same, HasContent(path, file_rel, d));
        if (same) {
          if (chmod(path.c_str(), mode) != 0)
            return Errno("cannot chmod", path);
          continue;
        }
        // Written beside it and renamed over it: a reader sees one or the
        // other.
        const std::string tmp = absl::StrCat(host, "/.", f.name(), ".merge");
        (void)unlink(tmp.c_str());
        RETURN_IF_ERROR(WriteFile(d, tmp, mode));
        RETURN_IF_ERROR(RemoveAll(path));
        if (rename(tmp.c_str(), path.c_str()) != 0) {
          return Errno("cannot rename into", path);
        }
        continue;
      }
      RETURN_IF_ERROR(WriteFile(d, path, mode));
    }
    for (const auto& l : dir.symlinks()) {
      RETURN_IF_ERROR(claim(l.name()));
      std::string path = absl::StrCat(host, "/", l.name());
      struct stat existing;
      if (merge_ && keep_existing_ && lstat(path.c_str(), &existing) == 0) {
        continue;
      }
      if (merge_) RETURN_IF_ERROR(RemoveAll(path));
      if (symlink(l.target().c_str(), path.c_str()) != 0) {
        return Errno("cannot create symlink", path);
      }
    }
    for (const auto& sub : dir.directories()) {
      RETURN_IF_ERROR(claim(sub.name()));
      ASSIGN_OR_RETURN(Digest d, Digest::FromProto(sub.digest()));
      std::string path = absl::StrCat(host, "/", sub.name());
      struct stat st;
      if (merge_ && lstat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        if (keep_existing_) continue;  // ours is a file there: it stays
        RETURN_IF_ERROR(RemoveAll(path));
      }
      if (mkdir(path.c_str(), 0700) != 0 && !(merge_ && errno == EEXIST)) {
        return Errno("cannot create", path);
      }
      RETURN_IF_ERROR(
          Fill(d, path,
               rel.empty() ? sub.name() : absl::StrCat(rel, "/", sub.name()),
               depth + 1));
    }
    // Last, so a read-only directory could still be filled.
    mode_t mode = ModeOf(dir.node_properties(), 0755);
    if (chmod(host.c_str(), mode) != 0) return Errno("cannot chmod", host);
    return absl::OkStatus();
  }

 private:
  // Whether `path` is a regular file holding `digest` (the stat cache
  // answers for files it knows; others are hashed).
  absl::StatusOr<bool> HasContent(const std::string& path,
                                  const std::string& rel,
                                  const Digest& digest) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size != digest.size()) {
      return false;
    }
    if (cache_ != nullptr) {
      if (std::optional<Digest> known = cache_->Lookup(rel, st)) {
        return *known == digest;
      }
    }
    ASSIGN_OR_RETURN(Digest actual, HashFile(path));
    return actual == digest;
  }

  absl::Status WriteFile(const Digest& digest, const std::string& path,
                         mode_t mode) {
    int fd = open(path.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("cannot create", path);
    absl::Status s = Stream(digest, fd, path);
    if (close(fd) != 0 && s.ok()) s = Errno("cannot write", path);
    if (s.ok() && chmod(path.c_str(), mode) != 0) {
      s = Errno("cannot chmod", path);
    }
    return s;
  }

  absl::Status Stream(const Digest& digest, int fd, const std::string& path) {
    ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                     blobs_->OpenRead(ns_, digest, 0, 0));
    Sha256 hash;
    int64_t size = 0;
    std::string buf;
    while (true) {
      buf.clear();
      ASSIGN_OR_RETURN(size_t n, reader->Read(1 << 20, &buf));
      if (n == 0) break;
      hash.Update(buf);
      size += static_cast<int64_t>(n);
      size_t done = 0;
      while (done < buf.size()) {
        ssize_t w = write(fd, buf.data() + done, buf.size() - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          return Errno("cannot write", path);
        }
        done += static_cast<size_t>(w);
      }
    }
    if (Digest::FromRaw(hash.Final(), size) != digest) {
      return absl::DataLossError(absl::StrCat(
          "context file ", path, " does not match ", digest.ToString()));
    }
    return absl::OkStatus();
  }

  BlobStore* blobs_;
  std::string ns_;
  bool merge_;
  StatCache* cache_;
  bool keep_existing_;
};

}  // namespace

absl::Status CheckEntryName(absl::string_view name, absl::string_view where) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree: bad entry name \"", name, "\" in ",
                     where.empty() ? "/" : where));
  }
  return absl::OkStatus();
}

absl::Status MaterializeTree(BlobStore* blobs, const std::string& ns,
                             const Digest& root, const std::string& dest) {
  struct stat st;
  if (lstat(dest.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(dest, " already exists"));
  }
  size_t slash = dest.rfind('/');
  std::string parent = slash == std::string::npos ? std::string(".")
                       : slash == 0               ? std::string("/")
                                                  : dest.substr(0, slash);
  ASSIGN_OR_RETURN(std::string tmp, MakeTempDir(parent, ".context-"));
  absl::Status s = Writer(blobs, ns).Fill(root, tmp, "", 0);
  if (s.ok() && rename(tmp.c_str(), dest.c_str()) != 0) {
    s = Errno("cannot rename into", dest);
  }
  if (!s.ok()) (void)RemoveAll(tmp);
  return s;
}

absl::Status MergeTree(BlobStore* blobs, const std::string& ns,
                       const Digest& root, const std::string& dest,
                       StatCache* cache, bool keep_existing) {
  RETURN_IF_ERROR(MakeDirs(dest, 0755));
  return Writer(blobs, ns, /*merge=*/true, cache, keep_existing)
      .Fill(root, dest, "", 0);
}

}  // namespace stagefarm::contexttree
