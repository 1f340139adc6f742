// Helpers of the layer tests (archives/ tests only): temporary trees with
// every kind of entry, tars made by hand (hostile ones too), and readers of
// what a layer holds.
#ifndef STAGEFARM_ARCHIVES_LAYER_TAR_TESTING_H_
#define STAGEFARM_ARCHIVES_LAYER_TAR_TESTING_H_

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "archives/layer_tar.h"
#include "common/sha256.h"

namespace stagefarm::archives {

constexpr int64_t kBaseTime = 1600000000;

// A file capability set: VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE with
// CAP_NET_RAW permitted, little-endian, as `setcap cap_net_raw+ep` writes it.
inline const std::string& CapabilityValue() {
  static const std::string* value = [] {
    auto* v = new std::string(20, '\0');
    const uint32_t words[5] = {0x02000001, 1u << 13, 0, 0, 0};
    std::memcpy(v->data(), words, sizeof(words));
    return v;
  }();
  return *value;
}

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/layer_tar.XXXXXX");
    char* made = mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Sub(const std::string& name) const {
    return absl::StrCat(path_, "/", name);
  }
  // Makes and returns the subdirectory `name`.
  std::string Dir(const std::string& name) const {
    std::string dir = Sub(name);
    if (mkdir(dir.c_str(), 0755) != 0) std::abort();
    return dir;
  }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& content,
                      mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, content.data(), content.size()),
            static_cast<ssize_t>(content.size()));
  ASSERT_EQ(fchmod(fd, mode), 0);  // fchmod: umask must not interfere
  ASSERT_EQ(close(fd), 0);
}

inline std::string ReadFile(const std::string& path) {
  std::string content;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<unreadable>";
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) content.append(buf, n);
  close(fd);
  return content;
}

inline void MakeDir(const std::string& path, mode_t mode) {
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0) << path;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

inline void SetMtime(const std::string& path, int64_t seconds) {
  // Nanoseconds are set so the test sees them dropped.
  struct timespec times[2] = {{seconds, 0}, {seconds, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << path;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

inline std::string GetXattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = lgetxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, n);
}

inline std::string BigContent() {
  std::string data(3 << 20, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>((x >> 16) % 7 == 0 ? x >> 8 : 'a' + (x >> 20) % 4);
  }
  return data;
}

inline const std::string kLongName = "long-" + std::string(120, 'n');
inline const std::string kUtf8Name = "caf\xc3\xa9";

// Builds a tree exercising every entry type the layer format keeps. All
// mtimes derive from `mtime`; `has_capability` reports whether the
// filesystem took the security.capability xattr.
inline void BuildTree(const std::string& root, int64_t mtime,
                      bool* has_capability) {
  std::vector<std::string> made;  // in creation order, parents first
  auto at = [&](const std::string& rel) {
    made.push_back(rel);
    return absl::StrCat(root, "/", rel);
  };
  MakeDir(at("a"), 0755);
  ASSERT_EQ(chown(absl::StrCat(root, "/a").c_str(), 1000, 1000), 0);
  MakeDir(at("a/b"), 0700);
  MakeDir(at("a/b/c"), 0755);
  WriteFile(at("a/b/c/deep"), "deep", 0600);
  WriteFile(at("a/file.txt"), "hello\n", 0644);
  ASSERT_EQ(chown(absl::StrCat(root, "/a/file.txt").c_str(), 1000, 100), 0);
  WriteFile(at("hard1"), "shared contents", 0640);
  ASSERT_EQ(link(absl::StrCat(root, "/hard1").c_str(), at("a/hard2").c_str()),
            0);
  WriteFile(at("a-b"), "sorts after a/", 0644);
  WriteFile(at("Zebra"), "uppercase sorts first", 0644);
  WriteFile(at("big"), BigContent(), 0644);
  // Past ustar's 7 octal digits: needs a pax extension.
  ASSERT_EQ(chown(absl::StrCat(root, "/big").c_str(), 3000000, 3000001), 0);
  ASSERT_EQ(mknod(at("blockdev").c_str(), S_IFBLK | 0660, makedev(7, 0)), 0);
  ASSERT_EQ(mknod(at("chardev").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  WriteFile(at(kUtf8Name), "unicode name", 0644);
  WriteFile(at("cap"), "binary with capability", 0755);
  const std::string cap_path = absl::StrCat(root, "/cap");
  *has_capability =
      lsetxattr(cap_path.c_str(), "security.capability",
                CapabilityValue().data(), CapabilityValue().size(), 0) == 0;
  ASSERT_EQ(lsetxattr(cap_path.c_str(), "user.note", "dropped", 7, 0), 0);
  ASSERT_EQ(symlink("/nonexistent/target", at("dangling").c_str()), 0);
  WriteFile(at("empty"), "", 0600);
  ASSERT_EQ(mkfifo(at("fifo").c_str(), 0600), 0);
  ASSERT_EQ(chmod(absl::StrCat(root, "/fifo").c_str(), 0640), 0);
  ASSERT_EQ(symlink("a/file.txt", at("link").c_str()), 0);
  ASSERT_EQ(lchown(absl::StrCat(root, "/link").c_str(), 1234, 5678), 0);
  WriteFile(at(kLongName), "long name", 0644);
  MakeDir(at("sgid-dir"), 02775);
  WriteFile(at("suid"), "#!/bin/sh\n", 04755);
  // Children before parents, so setting a child's time leaves the parent's.
  for (size_t i = made.size(); i-- > 0;) {
    SetMtime(absl::StrCat(root, "/", made[i]), mtime + static_cast<int64_t>(i));
  }
}

// Everything about a tree that a layer round trip must keep, one line per
// path, so a mismatch prints readably.
inline std::map<std::string, std::string> Scan(const std::string& root,
                                               const std::string& rel = "") {
  std::map<std::string, std::string> out;
  std::string dir = rel.empty() ? root : absl::StrCat(root, "/", rel);
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return {{rel, "<unreadable dir>"}};
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  for (const std::string& name : names) {
    std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
    std::string path = absl::StrCat(root, "/", child);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    std::string desc =
        absl::StrCat("mode=", absl::Hex(st.st_mode), " uid=", st.st_uid,
                     " gid=", st.st_gid, " mtime=", st.st_mtim.tv_sec);
    if (S_ISREG(st.st_mode)) {
      absl::StrAppend(&desc, " size=", st.st_size,
                      " sha256=", Sha256::HexOf(ReadFile(path)));
      std::string cap = GetXattr(path, "security.capability");
      if (!cap.empty())
        absl::StrAppend(&desc, " cap=", absl::BytesToHexString(cap));
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(path.c_str(), target, sizeof(target));
      absl::StrAppend(&desc,
                      " target=", std::string(target, std::max<ssize_t>(n, 0)));
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      absl::StrAppend(&desc, " rdev=", major(st.st_rdev), ":",
                      minor(st.st_rdev));
    } else if (S_ISDIR(st.st_mode)) {
      std::string opaque = GetXattr(path, "trusted.overlay.opaque");
      if (!opaque.empty()) absl::StrAppend(&desc, " opaque=", opaque);
      out.merge(Scan(root, child));
    }
    out[child] = desc;
  }
  return out;
}

// Paths sharing an inode, for regular files with several links.
inline std::set<std::set<std::string>> LinkGroups(const std::string& root) {
  std::map<ino_t, std::set<std::string>> by_inode;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(root)) {
    struct stat st;
    if (lstat(entry.path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_nlink > 1) {
      by_inode[st.st_ino].insert(
          entry.path().lexically_relative(root).string());
    }
  }
  std::set<std::set<std::string>> groups;
  for (auto& [ino, paths] : by_inode) groups.insert(paths);
  return groups;
}

struct TarEntry {
  std::string name;
  mode_t type = 0;
  mode_t perm = 0;
  int64_t size = 0;
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = 0;
  int64_t mtime_nsec = 0;
  std::string hardlink;
  std::string symlink;
  std::string uname;
  std::string gname;
  bool atime_set = false;
  bool ctime_set = false;
  std::vector<std::string> xattrs;
};

struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// The entries of a layer blob, read with libarchive's own decompressors.
inline std::vector<TarEntry> ListTar(const std::string& blob) {
  std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  std::vector<TarEntry> entries;
  if (archive_read_open_filename(a.get(), blob.c_str(), 65536) != ARCHIVE_OK) {
    ADD_FAILURE() << archive_error_string(a.get());
    return entries;
  }
  archive_entry* e;
  int rc;
  while ((rc = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK ||
         rc == ARCHIVE_WARN) {
    TarEntry t;
    t.name = archive_entry_pathname(e);
    t.type = archive_entry_filetype(e);
    t.perm = archive_entry_perm(e);
    t.size = archive_entry_size(e);
    t.uid = archive_entry_uid(e);
    t.gid = archive_entry_gid(e);
    t.mtime = archive_entry_mtime(e);
    t.mtime_nsec = archive_entry_mtime_nsec(e);
    if (const char* s = archive_entry_hardlink(e)) t.hardlink = s;
    if (const char* s = archive_entry_symlink(e)) t.symlink = s;
    if (const char* s = archive_entry_uname(e)) t.uname = s;
    if (const char* s = archive_entry_gname(e)) t.gname = s;
    t.atime_set = archive_entry_atime_is_set(e);
    t.ctime_set = archive_entry_ctime_is_set(e);
    archive_entry_xattr_reset(e);
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      t.xattrs.push_back(name);
    }
    entries.push_back(std::move(t));
  }
  EXPECT_EQ(rc, ARCHIVE_EOF) << archive_error_string(a.get());
  return entries;
}

inline std::vector<std::string> Names(const std::vector<TarEntry>& entries) {
  std::vector<std::string> names;
  for (const TarEntry& e : entries) names.push_back(e.name);
  return names;
}

// The uncompressed tar inside a blob, decompressed by libarchive (zlib and
// libzstd: independent of the code under test).
inline std::string RawTar(const std::string& blob) {
  std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_raw(a.get());
  std::string out;
  archive_entry* e;
  if (archive_read_open_filename(a.get(), blob.c_str(), 65536) != ARCHIVE_OK ||
      archive_read_next_header(a.get(), &e) != ARCHIVE_OK) {
    ADD_FAILURE() << archive_error_string(a.get());
    return out;
  }
  char buf[65536];
  la_ssize_t n;
  while ((n = archive_read_data(a.get(), buf, sizeof(buf))) > 0) {
    out.append(buf, n);
  }
  EXPECT_EQ(n, 0) << archive_error_string(a.get());
  return out;
}

struct ArchiveWriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};

inline la_ssize_t AppendToString(archive*, void* client, const void* buf,
                                 size_t len) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

// gzip of `data` by libarchive (zlib), one member.
inline std::string Gzip(const std::string& data) {
  std::string out;
  std::unique_ptr<archive, ArchiveWriteFree> a(archive_write_new());
  archive_write_set_format_raw(a.get());
  archive_write_add_filter_gzip(a.get());
  archive_write_set_bytes_per_block(a.get(), 0);
  archive_write_open2(a.get(), &out, nullptr, AppendToString, nullptr, nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_pathname(e, "data");
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  EXPECT_EQ(archive_write_header(a.get(), e), ARCHIVE_OK);
  archive_entry_free(e);
  EXPECT_EQ(archive_write_data(a.get(), data.data(), data.size()),
            static_cast<la_ssize_t>(data.size()));
  EXPECT_EQ(archive_write_close(a.get()), ARCHIVE_OK);
  return out;
}

struct Member {
  std::string name;
  mode_t type = AE_IFREG;
  std::string content;
  std::string symlink;
  std::string hardlink;
};

inline Member File(std::string name, std::string content = "") {
  return Member{std::move(name), AE_IFREG, std::move(content), "", ""};
}
inline Member Directory(std::string name) {
  return Member{std::move(name), AE_IFDIR, "", "", ""};
}
inline Member Symlink(std::string name, std::string target) {
  return Member{std::move(name), AE_IFLNK, "", std::move(target), ""};
}
inline Member Hardlink(std::string name, std::string target) {
  return Member{std::move(name), AE_IFREG, "", "", std::move(target)};
}

// Writes a plain tar with exactly these members (libarchive's writer keeps
// absolute and ".." names as given).
inline void MakeTar(const std::string& path,
                    const std::vector<Member>& members) {
  std::string out;
  std::unique_ptr<archive, ArchiveWriteFree> a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_per_block(a.get(), 0);
  archive_write_open2(a.get(), &out, nullptr, AppendToString, nullptr, nullptr);
  for (const Member& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.name.c_str());
    archive_entry_set_filetype(e, m.type);
    archive_entry_set_perm(e, m.type == AE_IFDIR ? 0755 : 0644);
    if (!m.symlink.empty()) archive_entry_set_symlink(e, m.symlink.c_str());
    if (!m.hardlink.empty()) archive_entry_set_hardlink(e, m.hardlink.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(m.content.size()));
    ASSERT_EQ(archive_write_header(a.get(), e), ARCHIVE_OK) << m.name;
    archive_entry_free(e);
    if (!m.content.empty()) {
      ASSERT_EQ(archive_write_data(a.get(), m.content.data(), m.content.size()),
                static_cast<la_ssize_t>(m.content.size()));
    }
  }
  ASSERT_EQ(archive_write_close(a.get()), ARCHIVE_OK);
  WriteFile(path, out);
}

// Serves `data` in pieces of `chunk` bytes; with `chunk` 0, in pieces of
// 1, 2, 3, ... 97 bytes, over and over, so the first bytes (the compression
// magic) arrive split and piece boundaries fall everywhere.
inline ByteSource SourceOf(const std::string& data, size_t chunk) {
  auto pos = std::make_shared<size_t>(0);
  auto calls = std::make_shared<size_t>(0);
  return [data, chunk, pos, calls](std::string* out) -> absl::StatusOr<size_t> {
    size_t want = chunk != 0 ? chunk : 1 + (*calls)++ % 97;
    size_t n = std::min(want, data.size() - *pos);
    out->assign(data, *pos, n);
    *pos += n;
    return n;
  };
}

inline std::string Suffix(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "Gzip";
    case Compression::kZstd:
      return "Zstd";
    case Compression::kNone:
      return "None";
  }
  return "?";
}

}  // namespace stagefarm::archives

#endif  // STAGEFARM_ARCHIVES_LAYER_TAR_TESTING_H_
