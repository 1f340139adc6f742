#include "contexttree/context_upload.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "blobstore/blob_files.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace stagefarm::contexttree {
namespace {

constexpr char kCacheMagic[] = "stagefarm.statcache.v1\n";

template <typename T>
void Put(std::string* out, const T& v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
bool Take(absl::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  std::memcpy(v, in->data(), sizeof(T));
  in->remove_prefix(sizeof(T));
  return true;
}

int64_t Nanos(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return ErrnoStatus(errno, what, path);
}

// The entries of the open directory `fd` (which the DIR takes over).
absl::StatusOr<std::vector<std::string>> SortedNames(int fd,
                                                     const std::string& dir) {
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return Errno("cannot read directory", dir);
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0)
      continue;
    names.emplace_back(e->d_name);
  }
  int err = errno;
  closedir(d);
  if (err != 0) {
    errno = err;
    return Errno("cannot read directory", dir);
  }
  // REAPI orders a Directory's nodes by name, bytewise.
  std::sort(names.begin(), names.end());
  return names;
}

reapi::NodeProperties ModeProperties(mode_t mode) {
  reapi::NodeProperties p;
  p.mutable_unix_mode()->set_value(mode & 07777);
  return p;
}

class Walker {
 public:
  Walker(const dockerfile::DockerignoreMatcher* ignore, StatCache* cache,
         ContextTree* tree, int64_t racy_window_ns)
      : ignore_(ignore),
        cache_(cache),
        tree_(tree),
        trust_before_ns_(NowNanos() - racy_window_ns) {}

  // The digest of the Directory for `host`, or nullopt when the directory
  // is excluded and nothing under it is re-included.
  absl::StatusOr<std::optional<Digest>> Walk(const std::string& host,
                                             const std::string& rel,
                                             mode_t mode, bool excluded) {
    // Entries are looked up relative to the directory (no path walk per
    // file); the directory stays open for that while the DIR lists it.
    int fd = open(host.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open directory", host);
    int list_fd = dup(fd);
    if (list_fd < 0) {
      close(fd);
      return Errno("cannot open directory", host);
    }
    auto names = SortedNames(list_fd, host);
    struct Closer {
      int fd;
      ~Closer() { close(fd); }
    } closer{fd};
    if (!names.ok()) return names.status();
    reapi::Directory dir;
    for (const std::string& name : *names) {
      std::string path = absl::StrCat(host, "/", name);
      std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
      struct stat st;
      if (fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return Errno("cannot stat", path);
      }
      bool out = ignore_ != nullptr && ignore_->Excluded(child);
      if (S_ISDIR(st.st_mode)) {
        // An excluded directory is still walked when exception patterns
        // could re-include something below it.
        if (out && !ignore_->has_exceptions()) continue;
        ASSIGN_OR_RETURN(std::optional<Digest> sub,
                         Walk(path, child, st.st_mode, out));
        if (!sub) continue;
        auto* node = dir.add_directories();
        node->set_name(name);
        sub->ToProto(node->mutable_digest());
        continue;
      }
      if (out) continue;
      if (S_ISREG(st.st_mode)) {
        ASSIGN_OR_RETURN(Digest digest, FileDigest(path, child, st));
        auto* node = dir.add_files();
        node->set_name(name);
        digest.ToProto(node->mutable_digest());
        node->set_is_executable((st.st_mode & 0111) != 0);
        *node->mutable_node_properties() = ModeProperties(st.st_mode);
        ++tree_->file_count;
        tree_->total_bytes += digest.size();
        if (seen_files_.insert(digest.raw()).second) {
          tree_->files.emplace_back(digest, path);
        }
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
        ssize_t n = readlink(path.c_str(), target.data(), target.size());
        if (n < 0) return Errno("cannot read link", path);
        target.resize(static_cast<size_t>(n));
        auto* node = dir.add_symlinks();
        node->set_name(name);
        node->set_target(target);
        ++tree_->symlink_count;
      } else {
        ++tree_->skipped_special;
      }
    }
    if (excluded && dir.files_size() == 0 && dir.directories_size() == 0 &&
        dir.symlinks_size() == 0) {
      return std::optional<Digest>();
    }
    *dir.mutable_node_properties() = ModeProperties(mode);
    std::string bytes;
    if (!dir.SerializeToString(&bytes)) {
      return absl::InternalError("cannot serialize a Directory");
    }
    Digest digest = Digest::Of(bytes);
    ++tree_->dir_count;
    if (seen_dirs_.insert(digest.raw()).second) {
      tree_->directories.emplace_back(digest, std::move(bytes));
    }
    return std::optional<Digest>(digest);
  }

 private:
  absl::StatusOr<Digest> FileDigest(const std::string& path,
                                    const std::string& rel,
                                    const struct stat& st) {
    if (cache_ != nullptr) {
      if (std::optional<Digest> hit = cache_->Lookup(rel, st)) return *hit;
    }
    ASSIGN_OR_RETURN(Digest digest, HashFile(path));
    ++tree_->files_hashed;
    // A size that moved while hashing means a writer is busy: do not keep.
    if (cache_ != nullptr && digest.size() == st.st_size) {
      cache_->Record(rel, st, digest, trust_before_ns_);
    }
    return digest;
  }

  const dockerfile::DockerignoreMatcher* ignore_;
  StatCache* cache_;
  ContextTree* tree_;
  int64_t trust_before_ns_;
  absl::flat_hash_set<Sha256::Raw> seen_files_, seen_dirs_;
};

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errno("cannot open", path);
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) return Errno("cannot read", path);
  return data;
}

absl::Status ChangedError(const std::string& path) {
  return absl::DataLossError(absl::StrCat(
      "context file ", path, " changed while the context was uploaded"));
}

}  // namespace

// --- StatCache
// -----------------------------------------------------------------

StatCache::Entry StatCache::EntryOf(const struct stat& st) {
  Entry e;
  e.dev = static_cast<uint64_t>(st.st_dev);
  e.ino = static_cast<uint64_t>(st.st_ino);
  e.size = static_cast<int64_t>(st.st_size);
  e.mtime_ns = Nanos(st.st_mtim);
  e.ctime_ns = Nanos(st.st_ctim);
  e.mode = static_cast<uint32_t>(st.st_mode);
  return e;
}

StatCache StatCache::Load(const std::string& path) {
  StatCache cache;
  std::string data;
  FILE* f = fopen(path.c_str(), "rbe");
  if (f == nullptr) return cache;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
    data.resize(static_cast<size_t>(st.st_size));
    data.resize(fread(data.data(), 1, data.size(), f));
  }
  fclose(f);
  absl::string_view view(data);
  // About 60 bytes of fixed fields per entry plus the name.
  cache.entries_.reserve(data.size() / 80);
  if (!absl::ConsumePrefix(&view, kCacheMagic)) return cache;
  while (!view.empty()) {
    uint32_t len = 0;
    Entry e;
    if (!Take(&view, &len) || view.size() < len) return StatCache();
    std::string rel(view.substr(0, len));
    view.remove_prefix(len);
    if (!Take(&view, &e.dev) || !Take(&view, &e.ino) || !Take(&view, &e.size) ||
        !Take(&view, &e.mtime_ns) || !Take(&view, &e.ctime_ns) ||
        !Take(&view, &e.mode) || !Take(&view, &e.hash)) {
      return StatCache();
    }
    cache.entries_[std::move(rel)] = e;
  }
  return cache;
}

absl::Status StatCache::Save(const std::string& path) const {
  std::string data = kCacheMagic;
  for (const auto& [rel, e] : entries_) {
    Put(&data, static_cast<uint32_t>(rel.size()));
    data.append(rel);
    Put(&data, e.dev);
    Put(&data, e.ino);
    Put(&data, e.size);
    Put(&data, e.mtime_ns);
    Put(&data, e.ctime_ns);
    Put(&data, e.mode);
    Put(&data, e.hash);
  }
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = Errno("cannot write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = Errno("cannot save", path);
    unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

std::optional<Digest> StatCache::Lookup(const std::string& rel,
                                        const struct stat& st) const {
  auto it = entries_.find(rel);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  Entry now = EntryOf(st);
  if (e.dev != now.dev || e.ino != now.ino || e.size != now.size ||
      e.mtime_ns != now.mtime_ns || e.ctime_ns != now.ctime_ns ||
      e.mode != now.mode) {
    return std::nullopt;
  }
  e.used = true;
  return Digest::FromRaw(e.hash, e.size);
}

void StatCache::Record(const std::string& rel, const struct stat& st,
                       const Digest& digest, int64_t trust_before_ns) {
  Entry e = EntryOf(st);
  if (e.ctime_ns >= trust_before_ns || e.mtime_ns >= trust_before_ns) {
    entries_.erase(rel);
    return;
  }
  e.hash = digest.raw();
  e.used = true;
  entries_[rel] = e;
}

void StatCache::DropUnused() {
  absl::erase_if(entries_, [](const auto& kv) { return !kv.second.used; });
}

// --- tree and upload
// -------------------------------------------------------------

absl::StatusOr<ContextTree> BuildContextTree(
    const std::string& dir, const dockerfile::DockerignoreMatcher* ignore,
    StatCache* cache, int64_t racy_window_ns) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return Errno("cannot stat context", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("context ", dir, " is not a directory"));
  }
  ContextTree tree;
  Walker walker(ignore, cache, &tree, racy_window_ns);
  ASSIGN_OR_RETURN(std::optional<Digest> root,
                   walker.Walk(dir, "", st.st_mode, false));
  if (!root.has_value()) return absl::InternalError("context root vanished");
  tree.root = root.value();
  return tree;
}

absl::StatusOr<UploadStats> UploadMissing(const ContextTree& tree,
                                          CasClient* cas) {
  constexpr int64_t kSmallBlob = 1 << 20;

  UploadStats stats;
  std::vector<Digest> all;
  all.reserve(tree.directories.size() + tree.files.size());
  for (const auto& [d, bytes] : tree.directories) all.push_back(d);
  for (const auto& [d, path] : tree.files) all.push_back(d);
  stats.digests_checked = static_cast<int64_t>(all.size());
  absl::flat_hash_set<Sha256::Raw> missing;
  ASSIGN_OR_RETURN(std::vector<Digest> lacking, cas->FindMissing(all));
  for (const Digest& d : lacking) missing.insert(d.raw());

  // Small blobs in batches; the first failure ends the upload.
  std::vector<Digest> queued;
  absl::Status failed;
  BatchUploader batches(cas, [&](size_t i, const absl::Status& s, bool) {
    if (s.ok() || !failed.ok()) return;
    failed = absl::Status(
        s.code(),
        absl::StrCat("uploading ", queued[i].ToString(), ": ", s.message()));
  });
  auto add = [&](const Digest& d, std::string bytes) -> absl::Status {
    queued.push_back(d);
    batches.Add(queued.size() - 1, d, std::move(bytes));
    ++stats.blobs_uploaded;
    stats.bytes_uploaded += d.size();
    return failed;
  };
  for (const auto& [d, bytes] : tree.directories) {
    if (missing.contains(d.raw())) RETURN_IF_ERROR(add(d, bytes));
  }
  for (const auto& [d, path] : tree.files) {
    if (!missing.contains(d.raw())) continue;
    if (d.size() <= kSmallBlob) {
      ASSIGN_OR_RETURN(std::string bytes, ReadWhole(path));
      if (Digest::Of(bytes) != d) return ChangedError(path);
      RETURN_IF_ERROR(add(d, std::move(bytes)));
      continue;
    }
    FILE* f = fopen(path.c_str(), "rbe");
    if (f == nullptr) return Errno("cannot open", path);
    absl::Status s =
        cas->Write(d, [f](char* buf, size_t max) -> absl::StatusOr<size_t> {
          size_t n = fread(buf, 1, max, f);
          if (n < max && ferror(f)) {
            return absl::DataLossError("read error");
          }
          return n;
        });
    fclose(f);
    if (!s.ok()) {
      if (s.code() == absl::StatusCode::kInvalidArgument ||
          s.code() == absl::StatusCode::kDataLoss) {
        return ChangedError(path);
      }
      return s;
    }
    ++stats.blobs_uploaded;
    stats.bytes_uploaded += d.size();
  }
  batches.Flush();
  RETURN_IF_ERROR(failed);
  return stats;
}

}  // namespace stagefarm::contexttree
