#include "engine/copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "archives/archive_extract.h"
#include "common/errno_status.h"
#include "common/fs_util.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/shell_lex.h"

namespace stagefarm::engine {
namespace {

using dockerfile::DockerignoreMatcher;

absl::Status Errno(absl::string_view what, const std::string& path) {
  return ErrnoStatus(errno, what, path);
}

bool HasGlob(absl::string_view s) {
  return s.find_first_of("*?[") != absl::string_view::npos;
}

std::vector<std::string> SortedNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  return absl::StrCat(a, "/", b);
}

// What a source root hides: the context's .dockerignore and --exclude.
class Filter {
 public:
  Filter(const CopySource& source, const std::vector<std::string>& excludes)
      : ignore_(source.ignore) {
    if (!excludes.empty()) {
      auto m = DockerignoreMatcher::Create(excludes);
      if (m.ok()) exclude_ = std::move(*m);
    }
  }
  bool Hidden(const std::string& rel) const {
    if (rel.empty()) return false;
    if (ignore_ != nullptr && ignore_->Excluded(rel)) return true;
    if (!exclude_.has_value()) return false;
    // --exclude patterns are relative to the source being copied.
    absl::string_view r = rel;
    if (!base_.empty() && absl::StartsWith(r, base_ + "/")) {
      r.remove_prefix(base_.size() + 1);
    }
    return exclude_->Excluded(r);
  }
  // The matched source a copy is below (its directory for a file).
  void SetBase(std::string base) { base_ = std::move(base); }

  // Whether `rel` (a host directory `host`) is skipped as a whole: hidden
  // itself and, when "!" exceptions exist, with nothing visible below it
  // (Docker sends a re-included file of an excluded directory, and the
  // directory with it).
  bool SkipTree(const std::string& host, const std::string& rel) const {
    if (!Hidden(rel)) return false;
    if (ignore_ == nullptr || !ignore_->has_exceptions()) return true;
    struct stat st;
    if (lstat(host.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return true;
    return !AnyVisibleBelow(host, rel);
  }

 private:
  std::string base_;
  bool AnyVisibleBelow(const std::string& host, const std::string& rel) const {
    for (const std::string& name : SortedNames(host)) {
      std::string child = rel + "/" + name;
      if (!Hidden(child)) return true;
      struct stat st;
      std::string child_host = host + "/" + name;
      if (lstat(child_host.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
          AnyVisibleBelow(child_host, child)) {
        return true;
      }
    }
    return false;
  }

  const DockerignoreMatcher* ignore_;
  std::optional<DockerignoreMatcher> exclude_;
};

absl::Status ExpandGlob(const CopySource& source, const Filter& filter,
                        const std::vector<std::string>& parts, size_t i,
                        const std::string& rel, std::vector<std::string>* out) {
  if (i == parts.size()) {
    out->push_back(rel);
    return absl::OkStatus();
  }
  if (!HasGlob(parts[i])) {
    return ExpandGlob(source, filter, parts, i + 1, Join(rel, parts[i]), out);
  }
  ASSIGN_OR_RETURN(std::string dir, ResolveInRoot(source.root, rel, true));
  for (const std::string& name : SortedNames(dir)) {
    if (!dockerfile::ShellPatternMatch(parts[i], name)) continue;
    std::string child = Join(rel, name);
    if (filter.Hidden(child)) continue;
    RETURN_IF_ERROR(ExpandGlob(source, filter, parts, i + 1, child, out));
  }
  return absl::OkStatus();
}

void HashField(Sha256* h, absl::string_view s) {
  uint64_t n = s.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (56 - 8 * i));
  h->Update(absl::string_view(len, 8));
  h->Update(s);
}

absl::Status HashFileContent(Sha256* h, const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Errno("cannot open", path);
  Sha256 content;
  char buf[1 << 16];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("cannot read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    content.Update(absl::string_view(buf, static_cast<size_t>(n)));
  }
  close(fd);
  HashField(h, content.FinalHex());
  return absl::OkStatus();
}

absl::Status HashTree(Sha256* h, const CopySource& source, const Filter& filter,
                      const std::string& host, const std::string& rel,
                      const std::string& name) {
  struct stat st;
  if (lstat(host.c_str(), &st) != 0) return Errno("cannot stat", host);
  HashField(h, name);
  HashField(h, absl::StrCat(st.st_mode));
  if (source.keep_owners) HashField(h, absl::StrCat(st.st_uid, ":", st.st_gid));
  if (S_ISREG(st.st_mode)) {
    HashField(h, absl::StrCat(st.st_size));
    return HashFileContent(h, host);
  }
  if (S_ISLNK(st.st_mode)) {
    std::vector<char> buf(static_cast<size_t>(st.st_size) + 2);
    ssize_t n = readlink(host.c_str(), buf.data(), buf.size() - 1);
    if (n < 0) return Errno("cannot read link", host);
    HashField(h, absl::string_view(buf.data(), static_cast<size_t>(n)));
    return absl::OkStatus();
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    HashField(h, absl::StrCat(major(st.st_rdev), ",", minor(st.st_rdev)));
    return absl::OkStatus();
  }
  if (!S_ISDIR(st.st_mode)) return absl::OkStatus();
  for (const std::string& child : SortedNames(host)) {
    std::string child_rel = Join(rel, child);
    if (filter.SkipTree(host + "/" + child, child_rel)) continue;
    RETURN_IF_ERROR(HashTree(h, source, filter, host + "/" + child, child_rel,
                             Join(name, child)));
  }
  HashField(h, "end-dir");
  return absl::OkStatus();
}

// Creates the missing directories of `path` (a host path under `root`, all
// components already resolved) with the given owner and mode.
absl::Status MakeParents(const std::string& root, const std::string& path,
                         uid_t uid, gid_t gid, mode_t mode) {
  if (path.size() <= root.size()) return absl::OkStatus();
  std::string cur = root;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(path).substr(root.size()), '/')) {
    if (part.empty()) continue;
    absl::StrAppend(&cur, "/", part);
    struct stat st;
    if (lstat(cur.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot copy to ", cur.substr(root.size()), ": not a directory"));
      }
      continue;
    }
    if (mkdir(cur.c_str(), mode) != 0) return Errno("cannot create", cur);
    if (lchown(cur.c_str(), uid, gid) != 0) return Errno("cannot chown", cur);
    if (chmod(cur.c_str(), mode) != 0) return Errno("cannot chmod", cur);
  }
  return absl::OkStatus();
}

struct Owner {
  uid_t uid;
  gid_t gid;
};

Owner OwnerFor(const CopySource& source, const CopyOptions& options,
               const struct stat& st) {
  Owner o{source.keep_owners ? st.st_uid : 0,
          source.keep_owners ? st.st_gid : 0};
  if (options.uid) o.uid = *options.uid;
  if (options.gid) o.gid = *options.gid;
  return o;
}

absl::Status CopyFileData(const std::string& from, const std::string& to,
                          mode_t mode) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return Errno("cannot open", from);
  unlink(to.c_str());
  int out =
      open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
           mode & 0777);
  if (out < 0) {
    absl::Status s = Errno("cannot create", to);
    close(in);
    return s;
  }
  // Only the data is copied: holes of a sparse file stay holes (a 10 GB
  // sparse file costs no 10 GB of writes), and the size is set at the end.
  std::vector<char> buf(1 << 20);
  absl::Status status;
  struct stat st;
  off_t size = fstat(in, &st) == 0 ? st.st_size : 0;
  off_t pos = 0;
  while (status.ok() && pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      data = pos;                 // no SEEK_DATA here: copy everything
    }
    off_t end = lseek(in, data, SEEK_HOLE);
    if (end < 0 || end <= data) end = size;
    for (off_t at = data; status.ok() && at < end;) {
      ssize_t n = pread(in, buf.data(),
                        static_cast<size_t>(std::min<off_t>(
                            end - at, static_cast<off_t>(buf.size()))),
                        at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = Errno("cannot read", from);
        break;
      }
      if (n == 0) {
        end = at;  // the file shrank while copied
        break;
      }
      for (ssize_t done = 0; done < n;) {
        ssize_t w = pwrite(out, buf.data() + done,
                           static_cast<size_t>(n - done), at + done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          status = Errno("cannot write", to);
          break;
        }
        done += w;
      }
      at += n;
    }
    pos = end;
  }
  if (status.ok() && ftruncate(out, size) != 0) {
    status = Errno("cannot write", to);
  }
  close(in);
  if (close(out) != 0 && status.ok()) status = Errno("cannot write", to);
  return status;
}

absl::Status SetAttrs(const std::string& path, const struct stat& st,
                      Owner owner, mode_t mode, bool is_link) {
  if (lchown(path.c_str(), owner.uid, owner.gid) != 0) {
    return Errno("cannot chown", path);
  }
  if (!is_link && chmod(path.c_str(), mode) != 0) {
    return Errno("cannot chmod", path);
  }
  struct timespec times[2] = {st.st_mtim, st.st_mtim};
  utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
  return absl::OkStatus();
}

// Files with several links copied so far, so links stay links.
using HardLinks = std::map<std::pair<dev_t, ino_t>, std::string>;

// Copies one entry (recursively for directories) from `from` to the host
// path `to`, whose parent exists.
absl::Status CopyEntry(const CopySource& source, const Filter& filter,
                       const CopyOptions& options, const std::string& from,
                       const std::string& rel, const std::string& to,
                       bool follow, HardLinks* links) {
  struct stat st;
  if ((follow ? stat(from.c_str(), &st) : lstat(from.c_str(), &st)) != 0) {
    return Errno("cannot stat", from);
  }
  Owner owner = OwnerFor(source, options, st);
  mode_t mode = options.mode ? options.mode->Apply(st.st_mode & 07777,
                                                   S_ISDIR(st.st_mode))
                             : (st.st_mode & 07777);
  if (S_ISDIR(st.st_mode)) {
    struct stat existing;
    bool exists = lstat(to.c_str(), &existing) == 0;
    if (exists && !S_ISDIR(existing.st_mode)) {
      if (unlink(to.c_str()) != 0) return Errno("cannot replace", to);
      exists = false;
    }
    if (!exists) {
      if (mkdir(to.c_str(), 0700) != 0) return Errno("cannot create", to);
    }
    for (const std::string& child : SortedNames(from)) {
      std::string child_rel = Join(rel, child);
      if (filter.SkipTree(from + "/" + child, child_rel)) continue;
      RETURN_IF_ERROR(CopyEntry(source, filter, options, from + "/" + child,
                                child_rel, to + "/" + child, false, links));
    }
    if (!exists) RETURN_IF_ERROR(SetAttrs(to, st, owner, mode, false));
    return absl::OkStatus();
  }
  struct stat existing;
  if (lstat(to.c_str(), &existing) == 0 && S_ISDIR(existing.st_mode)) {
    RETURN_IF_ERROR(RemoveAll(to));
  }
  if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) {
    if (S_ISSOCK(st.st_mode)) {
      unlink(to.c_str());
      RETURN_IF_ERROR(WriteStringToFile(to, "", 0644));
      if (!options.mode) mode = 0644;
    } else {
      if (st.st_nlink > 1) {
        auto [it, inserted] = links->try_emplace({st.st_dev, st.st_ino}, to);
        if (!inserted) {
          unlink(to.c_str());
          if (link(it->second.c_str(), to.c_str()) == 0) {
            return absl::OkStatus();
          }
        }
      }
      RETURN_IF_ERROR(CopyFileData(from, to, mode));
    }
    return SetAttrs(to, st, owner, mode, false);
  }
  unlink(to.c_str());
  if (S_ISLNK(st.st_mode)) {
    std::vector<char> buf(static_cast<size_t>(st.st_size) + 2);
    ssize_t n = readlink(from.c_str(), buf.data(), buf.size() - 1);
    if (n < 0) return Errno("cannot read link", from);
    std::string target(buf.data(), static_cast<size_t>(n));
    if (symlink(target.c_str(), to.c_str()) != 0) {
      return Errno("cannot create symlink", to);
    }
    return SetAttrs(to, st, owner, mode, true);
  }
  if (mknod(to.c_str(), st.st_mode, st.st_rdev) != 0) {
    return Errno("cannot create", to);
  }
  return SetAttrs(to, st, owner, mode, false);
}

bool IsArchive(const std::string& path) {
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  bool ok = archive_read_open_filename(a, path.c_str(), 1 << 16) == ARCHIVE_OK;
  struct archive_entry* e = nullptr;
  ok = ok && archive_read_next_header(a, &e) == ARCHIVE_OK;
  archive_read_free(a);
  return ok;
}

// ADD of a local archive: unpacked over what is at `dest`, owners, times
// and modes from the archive unless --chown/--chmod say otherwise.
absl::Status Unpack(const std::string& archive_path, const std::string& dest,
                    const CopyOptions& options) {
  archives::ExtractOptions eo;
  eo.keep_owner = true;
  eo.keep_times = true;
  eo.unlink = true;
  eo.uid = options.uid;
  eo.gid = options.gid;
  if (options.mode) {
    eo.mode = [&options](mode_t perm, bool is_dir) {
      return options.mode->Apply(perm, is_dir);
    };
  }
  return archives::ExtractArchive(archive_path, dest, eo);
}

}  // namespace

absl::StatusOr<FileMode> FileMode::Parse(const std::string& text) {
  if (!text.empty() && text[0] >= '0' && text[0] <= '9') {
    ASSIGN_OR_RETURN(mode_t m, ParseChmod(text));
    return FileMode(m);
  }
  auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid chmod parameter: '", text,
        "'. it should be octal string and between 0 and 07777, or symbolic "
        "like u+rw,g-w,a+X"));
  };
  FileMode fm;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    size_t i = 0;
    mode_t who = 0;
    for (; i < part.size() && strchr("ugoa", part[i]) != nullptr; ++i) {
      switch (part[i]) {
        case 'u':
          who |= 04700;
          break;
        case 'g':
          who |= 02070;
          break;
        case 'o':
          who |= 01007;
          break;
        default:
          who |= 07777;
          break;
      }
    }
    if (who == 0) who = 07777;
    if (i == part.size()) return invalid();
    while (i < part.size()) {
      char op = part[i++];
      if (op != '+' && op != '-' && op != '=') return invalid();
      size_t start = i;
      while (i < part.size() && strchr("rwxXst", part[i]) != nullptr) ++i;
      fm.clauses_.push_back(
          Clause{who, op, std::string(part.substr(start, i - start))});
    }
  }
  if (fm.clauses_.empty()) return invalid();
  return fm;
}

mode_t FileMode::Apply(mode_t current, bool is_dir) const {
  if (octal_) return *octal_;
  mode_t mode = current & 07777;
  for (const Clause& c : clauses_) {
    mode_t bits = 0;
    for (char p : c.perms) {
      switch (p) {
        case 'r':
          bits |= 0444;
          break;
        case 'w':
          bits |= 0222;
          break;
        case 'x':
          bits |= 0111;
          break;
        case 'X':
          if (is_dir || (current & 0111) != 0) bits |= 0111;
          break;
        case 's':
          bits |= 06000;
          break;
        case 't':
          bits |= 01000;
          break;
      }
    }
    bits &= c.who;
    if (c.op == '+') {
      mode |= bits;
    } else if (c.op == '-') {
      mode &= ~bits;
    } else {
      mode = (mode & ~(c.who & 0777)) | bits;
    }
  }
  return mode;
}

absl::StatusOr<mode_t> ParseChmod(const std::string& text) {
  mode_t mode = 0;
  bool ok = !text.empty() && text.size() <= 5;
  for (char c : text) {
    if (c < '0' || c > '7') ok = false;
    mode = mode * 8 + static_cast<mode_t>(c - '0');
  }
  if (!ok || mode > 07777) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid chmod parameter: '", text,
                     "'. it should be octal string and between 0 and 07777"));
  }
  return mode;
}

absl::StatusOr<std::vector<SourceMatch>> MatchSources(
    const CopySource& source, const std::vector<std::string>& patterns,
    const std::vector<std::string>& excludes) {
  Filter filter(source, excludes);
  std::vector<SourceMatch> out;
  for (const std::string& pattern : patterns) {
    // "a/./b": with --parents, only what follows the pivot is kept.
    std::string pivot;
    absl::string_view pat = pattern;
    while (absl::ConsumePrefix(&pat, "./")) {
    }
    if (size_t p = pat.find("/./"); p != absl::string_view::npos) {
      pivot = dockerfile::CleanPath(absl::StrCat("/", pat.substr(0, p)));
      pivot = pivot == "/" ? "" : pivot.substr(1);
    }
    std::string clean = dockerfile::CleanPath(absl::StrCat("/", pattern));
    std::vector<std::string> parts;
    for (absl::string_view p : absl::StrSplit(clean, '/', absl::SkipEmpty())) {
      parts.emplace_back(p);
    }
    std::vector<std::string> rels;
    if (HasGlob(clean)) {
      RETURN_IF_ERROR(ExpandGlob(source, filter, parts, 0, "", &rels));
    } else {
      std::string rel = absl::StrJoin(parts, "/");
      if (filter.Hidden(rel)) {
        return absl::NotFoundError(absl::StrCat(
            "\"/", rel, "\": not found (excluded by .dockerignore)"));
      }
      rels.push_back(rel);
    }
    for (const std::string& rel : rels) {
      ASSIGN_OR_RETURN(std::string host, ResolveInRoot(source.root, rel, true));
      struct stat st;
      if (stat(host.c_str(), &st) != 0) {
        if (HasGlob(clean)) continue;
        return absl::NotFoundError(absl::StrCat("\"/", rel, "\": not found"));
      }
      // What the path really names decides whether it is hidden, so an
      // ignored file is reachable neither by a glob nor through a link.
      std::string real_rel = host.size() > source.root.size()
                                 ? host.substr(source.root.size() + 1)
                                 : "";
      if (filter.Hidden(rel) || filter.Hidden(real_rel)) {
        if (HasGlob(clean)) continue;
        return absl::NotFoundError(absl::StrCat(
            "\"/", rel, "\": not found (excluded by .dockerignore)"));
      }
      std::string keep = rel;
      if (!pivot.empty() && absl::StartsWith(rel, pivot + "/")) {
        keep = rel.substr(pivot.size() + 1);
      }
      out.push_back(
          SourceMatch{rel, host, S_ISDIR(st.st_mode), keep, real_rel});
    }
  }
  if (out.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no source files were specified: nothing matches ",
                     absl::StrJoin(patterns, " ")));
  }
  return out;
}

absl::StatusOr<std::string> DigestSources(
    const CopySource& source, const std::vector<SourceMatch>& matches,
    const std::vector<std::string>& excludes) {
  Filter filter(source, excludes);
  Sha256 h;
  for (const SourceMatch& m : matches) {
    filter.SetBase(m.is_dir ? m.real_rel : "");
    HashField(&h, "source");
    HashField(&h, m.rel);
    // The matched entry itself is followed; its contents are not.
    struct stat st;
    if (stat(m.host.c_str(), &st) != 0) return Errno("cannot stat", m.host);
    if (S_ISREG(st.st_mode)) {
      HashField(&h, absl::StrCat(st.st_mode));
      if (source.keep_owners) {
        HashField(&h, absl::StrCat(st.st_uid, ":", st.st_gid));
      }
      RETURN_IF_ERROR(HashFileContent(&h, m.host));
    } else {
      RETURN_IF_ERROR(HashTree(&h, source, filter, m.host, m.real_rel, ""));
    }
  }
  return absl::StrCat("sha256:", h.FinalHex());
}

absl::Status CopyInto(const CopySource& source,
                      const std::vector<SourceMatch>& matches,
                      const std::vector<std::string>& excludes,
                      const std::string& dest_root,
                      const CopyOptions& options) {
  Filter filter(source, excludes);
  bool dest_slash = absl::EndsWith(options.dest, "/");
  ASSIGN_OR_RETURN(std::string dest, ResolveInRoot(dest_root, options.dest,
                                                   /*follow_last=*/true));
  struct stat dst;
  bool dest_is_dir =
      dest_slash || (lstat(dest.c_str(), &dst) == 0 && S_ISDIR(dst.st_mode));
  if (options.parents) {
    HardLinks links;
    for (const SourceMatch& m : matches) {
      filter.SetBase(m.is_dir ? m.real_rel : "");
      ASSIGN_OR_RETURN(
          std::string target,
          ResolveInRoot(dest_root, absl::StrCat(options.dest, "/", m.keep),
                        /*follow_last=*/false));
      std::string parent = target.substr(0, target.rfind('/'));
      RETURN_IF_ERROR(
          MakeParents(dest_root, m.is_dir ? target : parent,
                      options.uid.value_or(0), options.gid.value_or(0),
                      options.mode ? options.mode->Apply(0755, true) : 0755));
      RETURN_IF_ERROR(CopyEntry(source, filter, options, m.host, m.real_rel,
                                target, true, &links));
    }
    return absl::OkStatus();
  }
  if (matches.size() > 1 && !dest_is_dir) {
    return absl::InvalidArgumentError(
        "When using COPY with more than one source file, the destination "
        "must be a directory and end with a /");
  }
  uid_t puid = options.uid.value_or(0);
  gid_t pgid = options.gid.value_or(0);
  mode_t pmode = options.mode ? options.mode->Apply(0755, true) : 0755;
  HardLinks links;
  for (const SourceMatch& m : matches) {
    filter.SetBase(m.is_dir ? m.real_rel : "");
    bool archive = options.unpack_archives && !m.is_dir && IsArchive(m.host);
    if (m.is_dir || archive) {
      RETURN_IF_ERROR(MakeParents(dest_root, dest, puid, pgid, pmode));
      if (archive) {
        RETURN_IF_ERROR(Unpack(m.host, dest, options));
      } else {
        RETURN_IF_ERROR(CopyEntry(source, filter, options, m.host, m.real_rel,
                                  dest, true, &links));
      }
      continue;
    }
    std::string target = dest;
    if (dest_is_dir) {
      RETURN_IF_ERROR(MakeParents(dest_root, dest, puid, pgid, pmode));
      std::string base = m.rel.substr(m.rel.rfind('/') + 1);
      target = dest + "/" + base;
    } else {
      RETURN_IF_ERROR(MakeParents(dest_root, dest.substr(0, dest.rfind('/')),
                                  puid, pgid, pmode));
    }
    RETURN_IF_ERROR(CopyEntry(source, filter, options, m.host, m.real_rel,
                              target, true, &links));
  }
  return absl::OkStatus();
}

}  // namespace stagefarm::engine
