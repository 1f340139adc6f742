#include "common/fs_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"

namespace stagefarm {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path,
                        int err) {
  return ErrnoStatus(err, what, path);
}

}  // namespace

std::string CleanAbsolute(absl::string_view path) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.emplace_back(part);
  }
  return absl::StrCat("/", absl::StrJoin(out, "/"));
}

absl::StatusOr<std::string> ResolveInRoot(const std::string& root,
                                          absl::string_view path,
                                          bool follow_last) {
  std::deque<std::string> todo;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (!part.empty() && part != ".") todo.emplace_back(part);
  }
  std::vector<std::string> done;
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(part);
    bool last = todo.empty();
    if (last && !follow_last) break;
    std::string host = absl::StrCat(root, "/", absl::StrJoin(done, "/"));
    struct stat st;
    if (lstat(host.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return ErrnoError("cannot stat", host, errno);
    }
    if (!S_ISLNK(st.st_mode)) continue;
    if (++links > 40) {
      return absl::InvalidArgumentError(
          absl::StrCat("too many levels of symbolic links resolving ", path));
    }
    std::vector<char> buf(static_cast<size_t>(st.st_size) + 2);
    ssize_t n = readlink(host.c_str(), buf.data(), buf.size() - 1);
    if (n < 0) return ErrnoError("cannot read link", host, errno);
    std::string target(buf.data(), static_cast<size_t>(n));
    done.pop_back();
    if (!target.empty() && target[0] == '/') done.clear();
    std::vector<std::string> parts;
    for (absl::string_view p : absl::StrSplit(target, '/')) {
      if (!p.empty() && p != ".") parts.emplace_back(p);
    }
    todo.insert(todo.begin(), parts.begin(), parts.end());
  }
  if (done.empty()) return root;
  return absl::StrCat(root, "/", absl::StrJoin(done, "/"));
}

absl::Status RemoveAll(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError("cannot stat", path, errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError("cannot remove", path, errno);
    }
    return absl::OkStatus();
  }
  static thread_local int first_error;
  auto remove_tree = [&path]() -> int {
    first_error = 0;
    return nftw(
        path.c_str(),
        [](const char* p, const struct stat*, int flag, struct FTW*) -> int {
          int r = (flag == FTW_DP || flag == FTW_DNR) ? rmdir(p) : unlink(p);
          // A directory that could not be read is not empty, or it would
          // have been: its permissions are what stands in the way.
          int e = flag == FTW_DNR ? EACCES : errno;
          if (r != 0 && e != ENOENT && first_error == 0) first_error = e;
          return 0;
        },
        64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  };
  int rc = remove_tree();
  // A directory without write permission for its owner (a read-only tree, a
  // Go module cache) refuses to give up its entries to anyone but root. Give
  // the remaining directories their owner's rwx and try again; a directory
  // that could not be read is entered on the next round.
  static thread_local int opened;
  do {
    if (rc != 0 || (first_error != EACCES && first_error != EPERM)) break;
    opened = 0;
    nftw(
        path.c_str(),
        [](const char* p, const struct stat* s, int flag, struct FTW*) -> int {
          if ((flag == FTW_D || flag == FTW_DNR) &&
              (s->st_mode & S_IRWXU) != S_IRWXU &&
              chmod(p, s->st_mode | S_IRWXU) == 0) {
            ++opened;
          }
          return 0;
        },
        64, FTW_PHYS | FTW_MOUNT);
    if (opened > 0) rc = remove_tree();
  } while (opened > 0);
  if (rc != 0) return ErrnoError("cannot walk", path, errno);
  if (first_error != 0) return ErrnoError("cannot remove", path, first_error);
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  std::string cur = (!path.empty() && path[0] == '/') ? "" : ".";
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    cur = absl::StrCat(cur, "/", part);
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoError("cannot create directory", cur, errno);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return ErrnoError("cannot read", path, e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::Status WriteStringToFile(const std::string& path, absl::string_view data,
                               mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoError("cannot create", path, errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      close(fd);
      return ErrnoError("cannot write", path, e);
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return ErrnoError("cannot write", path, errno);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view data, mode_t mode) {
  const std::string tmp = absl::StrCat(path, ".tmp-", getpid());
  absl::Status s = WriteStringToFile(tmp, data, mode);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoError("cannot create", path, errno);
  }
  if (!s.ok()) unlink(tmp.c_str());
  return s;
}

absl::StatusOr<std::string> MakeTempDir(const std::string& parent,
                                        absl::string_view prefix) {
  std::string templ = absl::StrCat(parent, "/", prefix, "XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    return ErrnoError("cannot create a directory in", parent, errno);
  }
  return std::string(buf.data());
}

FileLock::FileLock(const std::string& path, Mode mode) {
  fd_ = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOTDIR) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  } else if (fd_ < 0 && errno == ENOENT) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd_ < 0) return;
  int op = LOCK_EX | (mode == Mode::kTry ? LOCK_NB : 0);
  int rc;
  do {
    rc = flock(fd_, op);
  } while (rc != 0 && errno == EINTR);
  held_ = rc == 0;
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace stagefarm
