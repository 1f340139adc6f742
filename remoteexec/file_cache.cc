#include "remoteexec/file_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/errno_status.h"
#include "common/fs_util.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "contexttree/context_fetch.h"

namespace stagefarm::remoteexec {
namespace {

constexpr int kMaxDepth = 1024;
// Blobs up to this size are read in batches of at most kBatchBytes.
constexpr int64_t kSmallBlob = int64_t{1} << 20;
constexpr int64_t kBatchBytes = int64_t{3} << 20;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return ErrnoStatus(errno, what, path);
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    done += static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// Copies `from` to a new file `to` (when a hard link cannot be made).
absl::Status CopyFile(const std::string& from, const std::string& to,
                      mode_t mode) {
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(from));
  int fd = open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Errno("cannot create", to);
  absl::Status s = WriteAll(fd, data, to);
  close(fd);
  return s;
}

mode_t ModeOf(const reapi::NodeProperties& p, mode_t fallback) {
  return p.has_unix_mode() ? static_cast<mode_t>(p.unix_mode().value() & 07777)
                           : fallback;
}

// Batches of at most kBatchBytes, each read with one BatchReadBlobs call;
// every blob's bytes are checked against its digest.
absl::Status ReadBatches(
    CasClient* cas, const std::vector<Digest>& digests,
    const std::function<absl::Status(const Digest&, std::string)>& got) {
  std::vector<Digest> batch;
  int64_t bytes = 0;
  auto flush = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto answers, cas->BatchRead(batch));
    for (auto& [d, data] : answers) {
      if (absl::IsNotFound(data.status())) {
        return MissingBlobs({d}, absl::StrCat("the input ", d.ToString(),
                                              " is not in the CAS"));
      }
      if (!data.ok()) {
        return absl::Status(
            data.status().code(),
            absl::StrCat(d.ToString(), ": ", data.status().message()));
      }
      if (Digest::Of(*data) != d) {
        return absl::DataLossError(
            absl::StrCat("the CAS sent bytes that are not ", d.ToString()));
      }
      RETURN_IF_ERROR(got(d, std::move(*data)));
    }
    batch.clear();
    bytes = 0;
    return absl::OkStatus();
  };
  for (const Digest& d : digests) {
    if (bytes + d.size() > kBatchBytes) RETURN_IF_ERROR(flush());
    batch.push_back(d);
    bytes += d.size();
  }
  return flush();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileCache>> FileCache::Open(std::string dir,
                                                           int64_t max_bytes) {
  std::unique_ptr<FileCache> cache(new FileCache(std::move(dir), max_bytes));
  RETURN_IF_ERROR(MakeDirs(cache->dir_, 0700));
  RETURN_IF_ERROR(RemoveAll(cache->dir_ + "/tmp"));
  RETURN_IF_ERROR(MakeDirs(cache->dir_ + "/tmp", 0700));
  DIR* d = opendir(cache->dir_.c_str());
  if (d == nullptr) return Errno("cannot read", cache->dir_);
  std::vector<std::pair<int64_t, std::string>> found;  // mtime, name
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 66 || name[64] != '-') continue;
    struct stat st;
    std::string path = cache->dir_ + "/" + name;
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    found.push_back({static_cast<int64_t>(st.st_mtime), name});
    absl::MutexLock lock(&cache->mu_);
    cache->entries_[name].size = st.st_size;
    cache->bytes_ += st.st_size;
  }
  closedir(d);
  std::sort(found.begin(), found.end());
  absl::MutexLock lock(&cache->mu_);
  for (const auto& [mtime, name] : found) {
    cache->entries_[name].used = ++cache->clock_;
  }
  return cache;
}

std::string FileCache::PathOf(const Digest& d, bool executable) const {
  return absl::StrCat(dir_, "/", d.hash(), "-", d.size(),
                      executable ? "-x" : "");
}

void FileCache::Used(const std::string& name, int64_t size) {
  absl::MutexLock lock(&mu_);
  auto [it, added] = entries_.try_emplace(name);
  if (added) bytes_ += size;
  it->second.size = size;
  it->second.used = ++clock_;
}

absl::Status FileCache::Store(const std::string& tmp, const std::string& name,
                              const Digest& d, bool executable) {
  if (chmod(tmp.c_str(), executable ? 0555 : 0444) != 0) {
    return Errno("cannot chmod", tmp);
  }
  const std::string path = dir_ + "/" + name;
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return Errno("cannot rename into", path);
  }
  Used(name, d.size());
  return absl::OkStatus();
}

absl::Status FileCache::Fetch(
    CasClient* cas, const std::map<std::string, std::pair<Digest, bool>>& want,
    Stats* stats) {
  std::vector<Digest> small;
  std::map<Digest, std::vector<std::pair<std::string, bool>>> names;
  std::vector<std::pair<std::string, std::pair<Digest, bool>>> large;
  for (const auto& [name, what] : want) {
    struct stat st;
    if (lstat((dir_ + "/" + name).c_str(), &st) == 0) continue;
    const auto& [d, executable] = what;
    ++stats->files_fetched;
    stats->bytes_fetched += d.size();
    if (d.size() <= kSmallBlob) {
      if (names[d].empty()) small.push_back(d);
      names[d].push_back({name, executable});
    } else {
      large.push_back({name, what});
    }
  }
  auto tmp_file = [this](int* fd) -> absl::StatusOr<std::string> {
    std::string path = absl::StrCat(dir_, "/tmp/f-XXXXXX");
    *fd = mkstemp(path.data());
    if (*fd < 0) return Errno("cannot create", path);
    return path;
  };
  RETURN_IF_ERROR(ReadBatches(
      cas, small, [&](const Digest& d, std::string data) -> absl::Status {
        for (const auto& [name, executable] : names[d]) {
          int fd = -1;
          ASSIGN_OR_RETURN(std::string tmp, tmp_file(&fd));
          absl::Status s = WriteAll(fd, data, tmp);
          close(fd);
          if (s.ok()) s = Store(tmp, name, d, executable);
          if (!s.ok()) {
            unlink(tmp.c_str());
            return s;
          }
        }
        return absl::OkStatus();
      }));
  for (const auto& [name, what] : large) {
    const auto& [d, executable] = what;
    int fd = -1;
    ASSIGN_OR_RETURN(std::string tmp, tmp_file(&fd));
    Sha256 hash;
    int64_t size = 0;
    absl::Status s = cas->Read(d, [&](absl::string_view chunk) {
      hash.Update(chunk);
      size += static_cast<int64_t>(chunk.size());
      return WriteAll(fd, chunk, tmp);
    });
    close(fd);
    if (absl::IsNotFound(s)) {
      s = MissingBlobs(
          {d}, absl::StrCat("the input ", d.ToString(), " is not in the CAS"));
    }
    if (s.ok() && Digest::FromRaw(hash.Final(), size) != d) {
      s = absl::DataLossError(
          absl::StrCat("the CAS sent bytes that are not ", d.ToString()));
    }
    if (s.ok()) s = Store(tmp, name, d, executable);
    if (!s.ok()) {
      unlink(tmp.c_str());
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status FileCache::Materialize(CasClient* cas, const Digest& root,
                                    const std::string& dest, uid_t uid,
                                    gid_t gid, Stats* stats) {
  // The Directory messages, a level of the tree at a time.
  std::map<Digest, reapi::Directory> dirs;
  std::vector<Digest> level = {root};
  for (int depth = 0; !level.empty(); ++depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("input tree deeper than ", kMaxDepth, " levels"));
    }
    std::vector<Digest> next;
    RETURN_IF_ERROR(ReadBatches(
        cas, level, [&](const Digest& d, std::string data) -> absl::Status {
          reapi::Directory& dir = dirs[d];
          if (!dir.ParseFromString(data)) {
            return absl::InvalidArgumentError(absl::StrCat(
                "input tree: unreadable Directory ", d.ToString()));
          }
          for (const auto& sub : dir.directories()) {
            ASSIGN_OR_RETURN(Digest sd, Digest::FromProto(sub.digest()));
            if (dirs.count(sd) == 0) next.push_back(sd);
          }
          return absl::OkStatus();
        }));
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    level = std::move(next);
  }

  // Names checked and the files the tree needs, before anything is written.
  std::map<std::string, std::pair<Digest, bool>> want;
  std::function<absl::Status(const Digest&, const std::string&, int)> check =
      [&](const Digest& d, const std::string& rel, int depth) -> absl::Status {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("input tree deeper than ", kMaxDepth, " levels"));
    }
    const reapi::Directory& dir = dirs[d];
    absl::flat_hash_set<std::string> names;
    auto claim = [&](const std::string& name) -> absl::Status {
      RETURN_IF_ERROR(contexttree::CheckEntryName(name, rel));
      if (!names.insert(name).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input tree: \"", name, "\" twice in ", rel.empty() ? "/" : rel));
      }
      return absl::OkStatus();
    };
    for (const auto& f : dir.files()) {
      RETURN_IF_ERROR(claim(f.name()));
      ASSIGN_OR_RETURN(Digest fd, Digest::FromProto(f.digest()));
      const bool x = f.is_executable();
      want[PathOf(fd, x).substr(dir_.size() + 1)] = {fd, x};
    }
    for (const auto& l : dir.symlinks()) RETURN_IF_ERROR(claim(l.name()));
    for (const auto& sub : dir.directories()) {
      RETURN_IF_ERROR(claim(sub.name()));
      ASSIGN_OR_RETURN(Digest sd, Digest::FromProto(sub.digest()));
      RETURN_IF_ERROR(check(sd, absl::StrCat(rel, "/", sub.name()), depth + 1));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check(root, "", 0));
  RETURN_IF_ERROR(Fetch(cas, want, stats));

  // The tree on disk: directories owned by the action's user, files linked.
  std::function<absl::Status(const Digest&, const std::string&)> make =
      [&](const Digest& d, const std::string& path) -> absl::Status {
    const reapi::Directory& dir = dirs[d];
    if (mkdir(path.c_str(), 0700) != 0) return Errno("cannot create", path);
    ++stats->directories;
    for (const auto& f : dir.files()) {
      ASSIGN_OR_RETURN(Digest fd, Digest::FromProto(f.digest()));
      const std::string cached = PathOf(fd, f.is_executable());
      const std::string to = absl::StrCat(path, "/", f.name());
      if (link(cached.c_str(), to.c_str()) != 0) {
        if (errno != EMLINK && errno != EXDEV) {
          return Errno("cannot link into", to);
        }
        RETURN_IF_ERROR(CopyFile(cached, to, f.is_executable() ? 0555 : 0444));
      }
      Used(cached.substr(dir_.size() + 1), fd.size());
      ++stats->files;
    }
    for (const auto& l : dir.symlinks()) {
      const std::string to = absl::StrCat(path, "/", l.name());
      if (symlink(l.target().c_str(), to.c_str()) != 0) {
        return Errno("cannot create symlink", to);
      }
      if (lchown(to.c_str(), uid, gid) != 0) return Errno("cannot chown", to);
    }
    for (const auto& sub : dir.directories()) {
      ASSIGN_OR_RETURN(Digest sd, Digest::FromProto(sub.digest()));
      RETURN_IF_ERROR(make(sd, absl::StrCat(path, "/", sub.name())));
    }
    if (chown(path.c_str(), uid, gid) != 0) return Errno("cannot chown", path);
    if (chmod(path.c_str(), ModeOf(dir.node_properties(), 0755)) != 0) {
      return Errno("cannot chmod", path);
    }
    return absl::OkStatus();
  };
  return make(root, dest);
}

void FileCache::Trim() {
  absl::MutexLock lock(&mu_);
  if (bytes_ <= max_bytes_) return;
  std::vector<std::pair<uint64_t, std::string>> order;
  for (const auto& [name, e] : entries_) order.push_back({e.used, name});
  std::sort(order.begin(), order.end());
  for (const auto& [used, name] : order) {
    if (bytes_ <= max_bytes_) break;
    (void)unlink((dir_ + "/" + name).c_str());
    bytes_ -= entries_[name].size;
    entries_.erase(name);
  }
}

}  // namespace stagefarm::remoteexec
