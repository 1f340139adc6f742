#include "snapshot/unchanged_dirs.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "archives/layer_tar.h"

namespace stagefarm::snapshot {
namespace {

bool IsOpaque(const std::string& path) {
  static const std::string name = archives::OverlayXattrPrefix() + "opaque";
  char v[2];
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), v, sizeof v);
  return n == 1 && v[0] == 'y';
}

// The extended attributes of `path` by name, overlayfs's own left out (the
// upper and lower copies differ in those by design). Nullopt when they
// cannot be read.
std::optional<std::map<std::string, std::string>> Xattrs(
    const std::string& path) {
  std::map<std::string, std::string> out;
  ssize_t n = llistxattr(path.c_str(), nullptr, 0);
  if (n == 0 || (n < 0 && errno == ENOTSUP)) return out;
  if (n < 0) return std::nullopt;
  std::string names(static_cast<size_t>(n), '\0');
  n = llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) return std::nullopt;  // changed meanwhile: treat as different
  names.resize(static_cast<size_t>(n));
  for (absl::string_view name :
       absl::StrSplit(names, '\0', absl::SkipEmpty())) {
    if (absl::StartsWith(name, "trusted.overlay.") ||
        absl::StartsWith(name, "user.overlay.")) {
      continue;
    }
    std::string key(name);
    ssize_t m = lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
    if (m < 0) return std::nullopt;
    std::string value(static_cast<size_t>(m), '\0');
    m = lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
    if (m < 0) return std::nullopt;
    value.resize(static_cast<size_t>(m));
    out[key] = std::move(value);
  }
  return out;
}

// The directory at `parts` as the lowers show it: its path in the topmost
// lower that has it, unless a whiteout, a file or an opaque directory above
// hides it. Nullopt when the lowers show no directory there.
std::optional<std::string> BelowPath(const std::vector<std::string>& lowers,
                                     const std::vector<std::string>& parts) {
  for (auto lower = lowers.rbegin(); lower != lowers.rend(); ++lower) {
    std::string cur = *lower;
    bool hides_below = false;  // an opaque parent in this lower
    for (size_t i = 0; i < parts.size(); ++i) {
      absl::StrAppend(&cur, "/", parts[i]);
      struct stat st;
      if (lstat(cur.c_str(), &st) != 0) {
        if (errno != ENOENT) return std::nullopt;
        break;  // not in this lower
      }
      // A whiteout (a 0:0 device) or a file hides what lies below.
      if (!S_ISDIR(st.st_mode)) return std::nullopt;
      if (i + 1 == parts.size()) return cur;
      if (IsOpaque(cur)) hides_below = true;
    }
    if (hides_below) return std::nullopt;
  }
  return std::nullopt;
}

bool SameDirectory(const std::string& upper, const std::string& below) {
  struct stat a, b;
  if (lstat(upper.c_str(), &a) != 0 || lstat(below.c_str(), &b) != 0) {
    return false;
  }
  if (a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid) {
    return false;
  }
  std::optional<std::map<std::string, std::string>> xa = Xattrs(upper);
  std::optional<std::map<std::string, std::string>> xb = Xattrs(below);
  return xa && xb && *xa == *xb;
}

// Prunes below upper/parts; true when that directory holds nothing now.
bool Prune(const std::string& upper, const std::vector<std::string>& lowers,
           std::vector<std::string>* parts) {
  std::string path = upper;
  for (const std::string& p : *parts) absl::StrAppend(&path, "/", p);
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return false;
  std::vector<std::string> dirs;
  bool empty = true;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = lstat(absl::StrCat(path, "/", name).c_str(), &st) == 0 &&
               S_ISDIR(st.st_mode);
    }
    if (is_dir) {
      dirs.push_back(std::move(name));
    } else {
      empty = false;
    }
  }
  closedir(d);
  for (const std::string& name : dirs) {
    std::string sub = absl::StrCat(path, "/", name);
    // An opaque directory replaces what was below: a change even if empty.
    if (IsOpaque(sub)) {
      empty = false;
      continue;
    }
    parts->push_back(name);
    bool removed = false;
    if (Prune(upper, lowers, parts)) {
      std::optional<std::string> below = BelowPath(lowers, *parts);
      removed = below && SameDirectory(sub, *below) && rmdir(sub.c_str()) == 0;
    }
    parts->pop_back();
    if (!removed) empty = false;
  }
  return empty;
}

}  // namespace

void RemoveUnchangedDirs(const std::string& upper,
                         const std::vector<std::string>& lowers) {
  std::vector<std::string> parts;
  Prune(upper, lowers, &parts);
}

}  // namespace stagefarm::snapshot
