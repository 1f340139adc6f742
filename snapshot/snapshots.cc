#include "snapshot/snapshots.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "archives/layer_tar.h"
#include "common/fs_util.h"
#include "common/status_macros.h"

namespace stagefarm::snapshot {
namespace {

// Unmounts every mount at or below `dir` (deepest first).
void UnmountBelow(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::vector<std::string> points;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5) continue;
    const std::string& mp = f[4];
    if (mp == dir || absl::StartsWith(mp, dir + "/")) points.push_back(mp);
  }
  std::sort(points.rbegin(), points.rend());
  for (const std::string& p : points) umount2(p.c_str(), MNT_DETACH);
}

// Removes scratch directories of processes that no longer run.
void CleanStaleScratch(const std::string& tmp) {
  DIR* d = opendir(tmp.c_str());
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    int pid = 0;
    std::string pid_text = name.substr(0, name.find('-'));
    if (absl::SimpleAtoi(pid_text, &pid) && pid > 0 &&
        (kill(pid, 0) == 0 || errno == EPERM)) {
      continue;
    }
    stale.push_back(absl::StrCat(tmp, "/", name));
  }
  closedir(d);
  for (const std::string& s : stale) {
    UnmountBelow(s);
    (void)RemoveAll(s);
  }
}

std::string HexOf(const std::string& chain_id) {
  return absl::StartsWith(chain_id, "sha256:") ? chain_id.substr(7) : chain_id;
}

// A short name is the chain id's first kShortName hex digits, one more for
// each other snapshot that has them: 12 digits are 48 bits, so a clash
// needs crafted layers, and one changes only the name, never which
// snapshot a name points to.
constexpr size_t kShortName = 12;

std::string ShortTarget(const std::string& hex) {
  return absl::StrCat("../snapshots/", hex);
}

std::string ReadLink(const std::string& path) {
  char buf[256];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  return n > 0 && n < static_cast<ssize_t>(sizeof buf) ? std::string(buf, n)
                                                       : "";
}

// Removes the short names whose snapshot is gone (a crash between removing
// a snapshot and its names), so they do not hold names needlessly.
void RemoveDanglingShortNames(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> dangling;
  while (struct dirent* e = readdir(d)) {
    std::string path = absl::StrCat(dir, "/", e->d_name);
    struct stat st;
    if (e->d_name[0] != '.' && stat(path.c_str(), &st) != 0) {
      dangling.push_back(path);
    }
  }
  closedir(d);
  for (const std::string& p : dangling) unlink(p.c_str());
}

}  // namespace

Snapshotter::Snapshotter(std::string root, BlobStore* blobs, std::string ns)
    : root_(std::move(root)), blobs_(blobs), ns_(std::move(ns)) {}

Snapshotter::~Snapshotter() {
  UnmountBelow(tmp_);
  (void)RemoveAll(tmp_);
}

absl::StatusOr<std::unique_ptr<Snapshotter>> Snapshotter::Open(
    const std::string& root, BlobStore* blobs, std::string ns) {
  RETURN_IF_ERROR(MakeDirs(root + "/snapshots", 0700));
  RETURN_IF_ERROR(MakeDirs(root + "/tmp", 0700));
  RETURN_IF_ERROR(MakeDirs(root + "/empty", 0755));
  RETURN_IF_ERROR(MakeDirs(root + "/l", 0700));
  char* real = realpath(root.c_str(), nullptr);
  if (real == nullptr) {
    return absl::InternalError(absl::StrCat("cannot resolve ", root));
  }
  std::string abs = real;
  free(real);
  std::unique_ptr<Snapshotter> s(new Snapshotter(abs, blobs, std::move(ns)));
  CleanStaleScratch(abs + "/tmp");
  RemoveDanglingShortNames(abs + "/l");
  ASSIGN_OR_RETURN(s->tmp_,
                   MakeTempDir(abs + "/tmp", absl::StrCat(getpid(), "-")));
  s->empty_ = abs + "/empty";
  return s;
}

std::string Snapshotter::PathFor(const std::string& chain_id) const {
  return absl::StrCat(root_, "/snapshots/", HexOf(chain_id));
}

absl::StatusOr<std::string> Snapshotter::ShortPath(const std::string& hex) {
  const std::string target = ShortTarget(hex);
  for (size_t n = std::min(kShortName, hex.size()); n <= hex.size(); ++n) {
    std::string path = absl::StrCat(root_, "/l/", hex.substr(0, n));
    // symlink is atomic: of two steps naming the same snapshot at once one
    // makes the link and both find it pointing where they want.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (ReadLink(path) == target) return path;
      if (symlink(target.c_str(), path.c_str()) == 0) return path;
      if (errno != EEXIST) {
        return absl::InternalError(absl::StrCat("cannot make the short name ",
                                                path, ": ", strerror(errno)));
      }
    }
  }
  return absl::InternalError(
      absl::StrCat("no short name free for snapshot ", hex));
}

void Snapshotter::RemoveShortNames(const std::string& hex) {
  const std::string target = ShortTarget(hex);
  for (size_t n = std::min(kShortName, hex.size()); n <= hex.size(); ++n) {
    std::string path = absl::StrCat(root_, "/l/", hex.substr(0, n));
    if (ReadLink(path) == target) unlink(path.c_str());
  }
}

absl::StatusOr<std::string> Snapshotter::TempDir(absl::string_view prefix) {
  return MakeTempDir(tmp_, prefix);
}

absl::Status Snapshotter::Unpack(const image::Descriptor& layer,
                                 const std::string& diff_id,
                                 const std::string& chain_id) {
  ASSIGN_OR_RETURN(std::string dir, TempDir("unpack-"));
  ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                   blobs_->OpenRead(ns_, layer.digest, 0, 0));
  auto result = archives::ApplyLayer(
      [&reader](std::string* out) { return reader->Read(1 << 20, out); }, dir);
  if (!result.ok()) {
    (void)RemoveAll(dir);
    return absl::Status(result.status().code(),
                        absl::StrCat("layer ", image::OciDigest(layer.digest),
                                     ": ", result.status().message()));
  }
  if (result->diff_id != diff_id) {
    (void)RemoveAll(dir);
    return absl::DataLossError(
        absl::StrCat("layer ", image::OciDigest(layer.digest), " unpacks to ",
                     result->diff_id, " but the image config says ", diff_id));
  }
  if (rename(dir.c_str(), PathFor(chain_id).c_str()) != 0) {
    int e = errno;
    (void)RemoveAll(dir);
    if (e != EEXIST && e != ENOTEMPTY) {
      return absl::InternalError(absl::StrCat(
          "cannot move snapshot into ", PathFor(chain_id), ": ", strerror(e)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Snapshotter::Prepare(
    const std::vector<image::Descriptor>& layers,
    const std::vector<std::string>& diff_ids) {
  if (layers.size() != diff_ids.size()) {
    return absl::InvalidArgumentError("layers and diff_ids differ in number");
  }
  // The bottom chain id is the first diff_id itself, and a directory name.
  for (const std::string& d : diff_ids) {
    RETURN_IF_ERROR(image::ParseOciDigest(d, 0, "diff_id").status());
  }
  std::vector<std::string> chain = image::ChainIds(diff_ids);
  std::vector<std::string> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string path = PathFor(chain[i]);
    bool present = false;
    {
      absl::MutexLock lock(&mu_);
      while (in_progress_.count(chain[i])) cv_.Wait(&mu_);
      struct stat st;
      if (stat(path.c_str(), &st) == 0) {
        utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // used now
        present = true;
      } else {
        in_progress_.insert(chain[i]);
      }
    }
    if (!present) {
      absl::Status s = Unpack(layers[i], diff_ids[i], chain[i]);
      {
        absl::MutexLock lock(&mu_);
        in_progress_.erase(chain[i]);
      }
      cv_.SignalAll();
      RETURN_IF_ERROR(s);
    }
    ASSIGN_OR_RETURN(std::string short_path, ShortPath(HexOf(chain[i])));
    out.push_back(std::move(short_path));
  }
  return out;
}

absl::Status Snapshotter::Commit(const std::string& upper,
                                 const std::string& chain_id) {
  std::string path = PathFor(chain_id);
  if (rename(upper.c_str(), path.c_str()) != 0) {
    int e = errno;
    if (e == EEXIST || e == ENOTEMPTY) return RemoveAll(upper);
    return absl::InternalError(
        absl::StrCat("cannot move ", upper, " to ", path, ": ", strerror(e)));
  }
  utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // used now
  return absl::OkStatus();
}

namespace {

thread_local int64_t t_walk_bytes = 0;
int AddBlocks(const char*, const struct stat* st, int, struct FTW*) {
  t_walk_bytes += static_cast<int64_t>(st->st_blocks) * 512;
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<Snapshotter::Info>> Snapshotter::List() {
  std::string dir = root_ + "/snapshots";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot list ", dir, ": ", strerror(errno)));
  }
  std::vector<Info> out;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    Info info;
    info.name = name;
    info.used = st.st_mtime;
    absl::MutexLock lock(&mu_);
    auto known = sizes_.find(name);
    if (known != sizes_.end()) {
      info.bytes = known->second;
    } else {
      t_walk_bytes = 0;
      nftw(path.c_str(), AddBlocks, 16, FTW_PHYS);
      info.bytes = sizes_[name] = t_walk_bytes;
    }
    out.push_back(std::move(info));
  }
  closedir(d);
  return out;
}

absl::Status Snapshotter::Remove(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.') {
    return absl::InvalidArgumentError("snapshot name: " + name);
  }
  ASSIGN_OR_RETURN(std::string dir, TempDir("remove-"));
  std::string moved = dir + "/snapshot";
  std::string path = root_ + "/snapshots/" + name;
  if (rename(path.c_str(), moved.c_str()) != 0) {
    int e = errno;
    (void)RemoveAll(dir);
    if (e == ENOENT) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("cannot remove snapshot ", path, ": ", strerror(e)));
  }
  {
    absl::MutexLock lock(&mu_);
    sizes_.erase(name);
  }
  RemoveShortNames(name);
  return RemoveAll(dir);
}

namespace {

// The deepest directory holding every one of `paths` (absolute), and each
// path relative to it. Nullopt when a path is not absolute or is that
// directory itself.
struct RelativePaths {
  std::string dir;
  std::vector<std::string> paths;
};
std::optional<RelativePaths> RelativeToCommonDirectory(
    const std::vector<std::string>& paths) {
  std::vector<std::vector<absl::string_view>> split;
  for (const std::string& p : paths) {
    if (p.empty() || p[0] != '/') return std::nullopt;
    split.push_back(absl::StrSplit(p, '/', absl::SkipEmpty()));
  }
  if (split.empty()) return std::nullopt;
  size_t common = split[0].size();
  for (const auto& parts : split) {
    size_t n = 0;
    while (n < common && n < parts.size() && parts[n] == split[0][n]) ++n;
    common = n;
  }
  RelativePaths out;
  out.dir = absl::StrCat(
      "/", absl::StrJoin(split[0].begin(), split[0].begin() + common, "/"));
  for (const auto& parts : split) {
    if (parts.size() == common) return std::nullopt;
    out.paths.push_back(
        absl::StrJoin(parts.begin() + common, parts.end(), "/"));
  }
  return out;
}

// mount(2) of an overlay, with `dir` as the working directory when it is not
// empty, so relative lower paths in `options` resolve against it. The
// process's working directory stays: the mount runs on a thread that
// unshares its file system attributes (CLONE_FS) before it changes
// directory.
absl::Status MountOverlayFrom(const std::string& dir, const std::string& target,
                              const std::string& options) {
  if (dir.empty()) {
    if (mount("overlay", target.c_str(), "overlay", 0, options.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot mount overlay on ",
                                              target, ": ", strerror(errno)));
    }
    return absl::OkStatus();
  }
  if (target.empty() || target[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("overlay mount point ", target, " is not absolute"));
  }
  int err = 0;
  const char* what = "";
  std::thread t([&] {
    if (unshare(CLONE_FS) != 0) {
      err = errno;
      what = "unshare";
    } else if (chdir(dir.c_str()) != 0) {
      err = errno;
      what = "chdir";
    } else if (mount("overlay", target.c_str(), "overlay", 0,
                     options.c_str()) != 0) {
      err = errno;
      what = "mount";
    }
  });
  t.join();
  if (err != 0) {
    return absl::InternalError(absl::StrCat("cannot mount overlay on ", target,
                                            " from ", dir, " (", what,
                                            "): ", strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<OverlayMount>> OverlayMount::Mount(
    const std::vector<std::string>& lowers, const std::string& upper,
    const std::string& work, const std::string& target,
    const std::string& empty_dir) {
  if (lowers.empty() && upper.empty()) {
    // Nothing to stack (an image without layers): an empty read-only tmpfs,
    // since overlayfs needs two lowers without an upper.
    if (mount("tmpfs", target.c_str(), "tmpfs",
              MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755") != 0) {
      return absl::InternalError(absl::StrCat("cannot mount an empty view on ",
                                              target, ": ", strerror(errno)));
    }
    return std::unique_ptr<OverlayMount>(new OverlayMount(target));
  }
  std::vector<std::string> top_first(lowers.rbegin(), lowers.rend());
  // A read-only overlay needs two lowers, a read-write one at least one.
  top_first.push_back(empty_dir);
  for (const std::string& l : top_first) {
    if (l.find_first_of(":,") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("overlay lower directory ", l, " contains ':' or ','"));
    }
  }
  auto options_for = [&](const std::vector<std::string>& lower_paths) {
    std::string options =
        absl::StrCat("lowerdir=", absl::StrJoin(lower_paths, ":"));
    if (!upper.empty()) {
      absl::StrAppend(&options, ",upperdir=", upper, ",workdir=", work);
    }
    // Plain copy-up semantics, so the upper dir is a complete diff: no
    // metadata-only copies, no directory-rename redirects (nofollow: none
    // made, none followed; "off" is refused in a user namespace), no index.
    absl::StrAppend(&options, ",index=off,redirect_dir=nofollow,metacopy=off");
    // In a user namespace overlayfs may keep its metadata only in user.*
    // xattrs (archives::OverlayXattrPrefix).
    if (archives::OverlayUsesUserXattrs())
      absl::StrAppend(&options, ",userxattr");
    return options;
  };
  // mount(2) takes one page of options, its last byte a NUL.
  const size_t max_options = static_cast<size_t>(sysconf(_SC_PAGESIZE)) - 1;
  std::string options = options_for(top_first);
  std::string from_dir;
  if (options.size() > max_options) {
    if (std::optional<RelativePaths> relative =
            RelativeToCommonDirectory(top_first)) {
      from_dir = relative->dir;
      options = options_for(relative->paths);
    }
  }
  if (options.size() > max_options) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many layers (", lowers.size(),
        ") for one overlay mount: the mount options exceed a page"));
  }
  RETURN_IF_ERROR(MountOverlayFrom(from_dir, target, options));
  return std::unique_ptr<OverlayMount>(new OverlayMount(target));
}

absl::Status OverlayMount::Unmount() {
  if (!mounted_) return absl::OkStatus();
  if (umount2(target_.c_str(), 0) != 0) {
    int e = errno;
    if (umount2(target_.c_str(), MNT_DETACH) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot unmount ", target_, ": ", strerror(e)));
    }
  }
  mounted_ = false;
  return absl::OkStatus();
}

OverlayMount::~OverlayMount() { (void)Unmount(); }

}  // namespace stagefarm::snapshot
