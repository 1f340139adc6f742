#include "archives/layer_tar.h"

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
#include "common/sha256.h"

namespace stagefarm::archives {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kBaseTime = 1600000000;

// A file capability set: VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE with
// CAP_NET_RAW permitted, little-endian, as `setcap cap_net_raw+ep` writes it.
const std::string& CapabilityValue() {
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

void WriteFile(const std::string& path, const std::string& content,
               mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, content.data(), content.size()),
            static_cast<ssize_t>(content.size()));
  ASSERT_EQ(fchmod(fd, mode), 0);  // fchmod: umask must not interfere
  ASSERT_EQ(close(fd), 0);
}

std::string ReadFile(const std::string& path) {
  std::string content;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<unreadable>";
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) content.append(buf, n);
  close(fd);
  return content;
}

void MakeDir(const std::string& path, mode_t mode) {
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0) << path;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

void SetMtime(const std::string& path, int64_t seconds) {
  // Nanoseconds are set so the test sees them dropped.
  struct timespec times[2] = {{seconds, 0}, {seconds, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string GetXattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = lgetxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, n);
}

std::string BigContent() {
  std::string data(3 << 20, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>((x >> 16) % 7 == 0 ? x >> 8 : 'a' + (x >> 20) % 4);
  }
  return data;
}

const std::string kLongName = "long-" + std::string(120, 'n');
const std::string kUtf8Name = "caf\xc3\xa9";

// Builds a tree exercising every entry type the layer format keeps. All
// mtimes derive from `mtime`; `has_capability` reports whether the
// filesystem took the security.capability xattr.
void BuildTree(const std::string& root, int64_t mtime, bool* has_capability) {
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
std::map<std::string, std::string> Scan(const std::string& root,
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
std::set<std::set<std::string>> LinkGroups(const std::string& root) {
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
std::vector<TarEntry> ListTar(const std::string& blob) {
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

std::vector<std::string> Names(const std::vector<TarEntry>& entries) {
  std::vector<std::string> names;
  for (const TarEntry& e : entries) names.push_back(e.name);
  return names;
}

// The uncompressed tar inside a blob, decompressed by libarchive (zlib and
// libzstd: independent of the code under test).
std::string RawTar(const std::string& blob) {
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

la_ssize_t AppendToString(archive*, void* client, const void* buf, size_t len) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

// gzip of `data` by libarchive (zlib), one member.
std::string Gzip(const std::string& data) {
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

Member File(std::string name, std::string content = "") {
  return Member{std::move(name), AE_IFREG, std::move(content), "", ""};
}
Member Directory(std::string name) {
  return Member{std::move(name), AE_IFDIR, "", "", ""};
}
Member Symlink(std::string name, std::string target) {
  return Member{std::move(name), AE_IFLNK, "", std::move(target), ""};
}
Member Hardlink(std::string name, std::string target) {
  return Member{std::move(name), AE_IFREG, "", "", std::move(target)};
}

// Writes a plain tar with exactly these members (libarchive's writer keeps
// absolute and ".." names as given).
void MakeTar(const std::string& path, const std::vector<Member>& members) {
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
ByteSource SourceOf(const std::string& data, size_t chunk) {
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

std::string Suffix(Compression c) {
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

class LayerTarCompressionTest : public ::testing::TestWithParam<Compression> {};

TEST_P(LayerTarCompressionTest, RoundTripKeepsTheTree) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool has_capability = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &has_capability));
  std::string blob = tmp.Sub("layer");

  auto layer = WriteLayer(src, LayerOptions{GetParam(), std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();

  const std::string bytes = ReadFile(blob);
  EXPECT_EQ(layer->digest, Digest::Of(bytes));
  const std::string tar = RawTar(blob);
  EXPECT_EQ(layer->diff_id, "sha256:" + Sha256::HexOf(tar));
  EXPECT_EQ(tar.size() % 512, 0u);
  switch (GetParam()) {
    case Compression::kGzip:
      EXPECT_EQ(layer->media_type, kMediaTypeLayerGzip);
      EXPECT_EQ(bytes.substr(0, 2), "\x1f\x8b");
      break;
    case Compression::kZstd:
      EXPECT_EQ(layer->media_type, kMediaTypeLayerZstd);
      EXPECT_EQ(bytes.substr(0, 4), "\x28\xb5\x2f\xfd");
      break;
    case Compression::kNone:
      EXPECT_EQ(layer->media_type, kMediaTypeLayerTar);
      EXPECT_EQ(bytes, tar);
      break;
  }
  EXPECT_EQ(layer->entries, static_cast<int64_t>(ListTar(blob).size()));

  std::string dest = tmp.Dir("dest");
  auto applied = ApplyLayerFile(blob, dest);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, layer->diff_id);
  EXPECT_EQ(applied->entries, layer->entries);

  auto src_tree = Scan(src);
  EXPECT_EQ(src_tree.size(), 21u);
  EXPECT_EQ(Scan(dest), src_tree);
  EXPECT_EQ(LinkGroups(dest), LinkGroups(src));
  EXPECT_EQ(LinkGroups(dest).size(), 1u);
  if (!has_capability) {
    std::cerr << "note: this filesystem refused security.capability; file "
                 "capabilities are not covered\n";
  }
  EXPECT_EQ(GetXattr(dest + "/cap", "security.capability"),
            has_capability ? CapabilityValue() : "");
  EXPECT_EQ(GetXattr(dest + "/cap", "user.note"), "");
}

TEST_P(LayerTarCompressionTest, SameContentGivesIdenticalBlobs) {
  TempDir tmp;
  bool cap = false;
  std::string one = tmp.Dir("one");
  std::string two = tmp.Dir("two");
  ASSERT_NO_FATAL_FAILURE(BuildTree(one, kBaseTime, &cap));
  // Same contents, every mtime a day later.
  ASSERT_NO_FATAL_FAILURE(BuildTree(two, kBaseTime + 86400, &cap));

  auto write = [&](const std::string& dir, std::optional<int64_t> epoch,
                   const std::string& name) {
    std::string path = tmp.Sub(name);
    auto layer = WriteLayer(dir, LayerOptions{GetParam(), epoch, 0}, path);
    EXPECT_TRUE(layer.ok()) << layer.status();
    return ReadFile(path);
  };
  std::string first = write(one, std::nullopt, "first");
  EXPECT_EQ(write(one, std::nullopt, "again"), first);
  // Without a clamp the mtimes differ, so the blobs do...
  EXPECT_NE(write(two, std::nullopt, "later"), first);
  // ...and with every mtime clamped to an earlier epoch they are the same.
  EXPECT_EQ(write(one, kBaseTime - 1, "clamped_one"),
            write(two, kBaseTime - 1, "clamped_two"));
}

INSTANTIATE_TEST_SUITE_P(AllCompressions, LayerTarCompressionTest,
                         ::testing::Values(Compression::kGzip,
                                           Compression::kZstd,
                                           Compression::kNone),
                         [](const ::testing::TestParamInfo<Compression>& info) {
                           return Suffix(info.param);
                         });

TEST(LayerTarTest, EntriesAreSortedWithNumericOwnersOnly) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool has_capability = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &has_capability));
  std::string blob = tmp.Sub("layer.tar");
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kNone, std::nullopt, 0}, blob).ok());

  std::vector<TarEntry> entries = ListTar(blob);
  // Each directory's names in byte order, a directory before its contents.
  EXPECT_THAT(Names(entries),
              ::testing::ElementsAre(
                  "Zebra", "a/", "a/b/", "a/b/c/", "a/b/c/deep", "a/file.txt",
                  "a/hard2", "a-b", "big", "blockdev", kUtf8Name, "cap",
                  "chardev", "dangling", "empty", "fifo", "hard1", "link",
                  kLongName, "sgid-dir/", "suid"));
  for (const TarEntry& e : entries) {
    SCOPED_TRACE(e.name);
    EXPECT_EQ(e.uname, "");
    EXPECT_EQ(e.gname, "");
    EXPECT_FALSE(e.atime_set);
    EXPECT_FALSE(e.ctime_set);
    EXPECT_EQ(e.mtime_nsec, 0);
    if (e.name == "cap" && has_capability) {
      EXPECT_THAT(e.xattrs, ::testing::ElementsAre("security.capability"));
    } else {
      EXPECT_THAT(e.xattrs, ::testing::IsEmpty());
    }
    if (e.name == "hard1") {
      // The first path in walk order holds the data; later ones link to it.
      EXPECT_EQ(e.hardlink, "a/hard2");
      EXPECT_EQ(e.size, 0);
    }
    if (e.name == "big") {
      EXPECT_EQ(e.uid, 3000000);
      EXPECT_EQ(e.gid, 3000001);
      EXPECT_EQ(e.size, 3 << 20);
    }
    if (e.name == "suid") {
      EXPECT_EQ(e.perm, 04755u);
    }
    if (e.name == "link") {
      EXPECT_EQ(e.type, static_cast<mode_t>(AE_IFLNK));
      EXPECT_EQ(e.symlink, "a/file.txt");
      EXPECT_EQ(e.uid, 1234);
      EXPECT_EQ(e.gid, 5678);
    }
  }
}

TEST(LayerTarTest, ClampsOnlyNewerMtimes) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  WriteFile(src + "/old", "old");
  WriteFile(src + "/new", "new");
  SetMtime(src + "/old", 1000);
  SetMtime(src + "/new", 2000000000);
  std::string blob = tmp.Sub("layer");
  ASSERT_TRUE(WriteLayer(src, {Compression::kGzip, 1500000000, 0}, blob).ok());
  std::vector<TarEntry> entries = ListTar(blob);
  ASSERT_EQ(Names(entries), (std::vector<std::string>{"new", "old"}));
  EXPECT_EQ(entries[0].mtime, 1500000000);
  EXPECT_EQ(entries[1].mtime, 1000);
}

TEST(LayerTarTest, WhiteoutsAndOpaqueDirectoriesRoundTrip) {
  TempDir tmp;
  std::string upper = tmp.Dir("upper");
  ASSERT_EQ(mknod((upper + "/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
  MakeDir(upper + "/keep", 0755);
  WriteFile(upper + "/keep/file", "kept");
  ASSERT_EQ(mknod((upper + "/keep/removed").c_str(), S_IFCHR, makedev(0, 0)),
            0);
  MakeDir(upper + "/opq", 0750);
  ASSERT_EQ(
      lsetxattr((upper + "/opq").c_str(), "trusted.overlay.opaque", "y", 1, 0),
      0);
  WriteFile(upper + "/opq/new", "new");
  SetMtime(upper + "/keep", kBaseTime);
  SetMtime(upper + "/opq", kBaseTime + 1);

  std::string blob = tmp.Sub("layer");
  auto layer = WriteLayer(upper, {Compression::kGzip, std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();
  std::vector<TarEntry> entries = ListTar(blob);
  EXPECT_THAT(Names(entries),
              ::testing::ElementsAre(".wh.gone", "keep/", "keep/file",
                                     "keep/.wh.removed", "opq/",
                                     "opq/.wh..wh..opq", "opq/new"));
  EXPECT_EQ(layer->entries, 7);
  for (const TarEntry& e : entries) {
    SCOPED_TRACE(e.name);
    EXPECT_THAT(e.xattrs, ::testing::IsEmpty());  // no trusted.overlay.*
    if (absl::StrContains(e.name, ".wh.")) {
      EXPECT_EQ(e.type, static_cast<mode_t>(AE_IFREG));
      EXPECT_EQ(e.size, 0);
    }
  }

  std::string dest = tmp.Dir("dest");
  auto applied = ApplyLayerFile(blob, dest);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, layer->diff_id);
  EXPECT_EQ(applied->entries, 7);
  for (const char* whiteout : {"/gone", "/keep/removed"}) {
    struct stat st;
    ASSERT_EQ(lstat((dest + whiteout).c_str(), &st), 0) << whiteout;
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << whiteout;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << whiteout;
  }
  EXPECT_FALSE(Exists(dest + "/.wh.gone"));
  EXPECT_FALSE(Exists(dest + "/keep/.wh.removed"));
  EXPECT_FALSE(Exists(dest + "/opq/.wh..wh..opq"));
  EXPECT_EQ(GetXattr(dest + "/opq", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(GetXattr(dest + "/keep", "trusted.overlay.opaque"), "");
  EXPECT_EQ(ReadFile(dest + "/opq/new"), "new");
  // Directory times survive whiteouts created inside them later.
  auto upper_tree = Scan(upper);
  auto dest_tree = Scan(dest);
  EXPECT_EQ(dest_tree["keep"], upper_tree["keep"]);
  EXPECT_EQ(dest_tree["opq"], upper_tree["opq"]);
}

TEST(LayerTarTest, EmptyDirectoryGivesEmptyLayer) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  std::string blob = tmp.Sub("layer.tar");
  auto layer = WriteLayer(src, {Compression::kNone, std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->entries, 0);
  // Just the end-of-archive marker, no 10 KiB block padding.
  EXPECT_EQ(ReadFile(blob), std::string(1024, '\0'));
  EXPECT_EQ(layer->diff_id, "sha256:" + layer->digest.hash());

  auto applied = ApplyLayerFile(blob, tmp.Dir("dest"));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->entries, 0);
  EXPECT_EQ(applied->diff_id, layer->diff_id);
}

TEST(LayerTarTest, AppliesFromTinyChunksAndForeignGzip) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool cap = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &cap));
  std::string blob = tmp.Sub("layer");
  auto layer = WriteLayer(src, {Compression::kNone, std::nullopt, 0}, blob);
  ASSERT_TRUE(layer.ok()) << layer.status();
  const std::string tar = ReadFile(blob);

  // Two gzip members made by zlib, split mid-entry, served in small pieces
  // of varying size and in large ones.
  const size_t split = tar.size() / 2 + 7;
  const std::string gz = Gzip(tar.substr(0, split)) + Gzip(tar.substr(split));
  for (size_t chunk : {size_t{0}, size_t{1} << 20}) {
    SCOPED_TRACE(chunk);
    std::string dest = tmp.Dir(absl::StrCat("dest", chunk));
    auto applied = ApplyLayer(SourceOf(gz, chunk), dest);
    ASSERT_TRUE(applied.ok()) << applied.status();
    EXPECT_EQ(applied->diff_id, layer->diff_id);
    EXPECT_EQ(Scan(dest), Scan(src));
  }

  std::string zstd_blob = tmp.Sub("layer.zst");
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kZstd, std::nullopt, 0}, zstd_blob).ok());
  std::string dest = tmp.Dir("dest_zstd");
  auto applied = ApplyLayer(SourceOf(ReadFile(zstd_blob), 0), dest);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->diff_id, layer->diff_id);
}

// Applies a tar made of `members` into a fresh destination next to a
// directory "outside" (holding a file "victim") and returns the error.
class HostileLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    outside_ = tmp_.Dir("outside");
    WriteFile(outside_ + "/victim", "precious");
    dest_ = tmp_.Dir("dest");
  }

  absl::Status Apply(const std::vector<Member>& members) {
    std::string tar = tmp_.Sub("evil.tar");
    MakeTar(tar, members);
    auto applied = ApplyLayerFile(tar, dest_);
    return applied.status();
  }

  void ExpectVictimUntouched() {
    struct stat st;
    ASSERT_EQ(lstat((outside_ + "/victim").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(ReadFile(outside_ + "/victim"), "precious");
    EXPECT_EQ(GetXattr(outside_, "trusted.overlay.opaque"), "");
  }

  TempDir tmp_;
  std::string outside_;
  std::string dest_;
};

// A layer that unpacks past STAGEFARM_MAX_UNPACK_BYTES (a base image's tar
// bomb) stops there, like an ADD archive or an imported image.
TEST_F(HostileLayerTest, StopsAtTheUnpackBound) {
  setenv("STAGEFARM_MAX_UNPACK_BYTES", "50000", 1);
  absl::Status status = Apply(
      {File("a", std::string(40000, 'a')), File("b", std::string(40000, 'b'))});
  unsetenv("STAGEFARM_MAX_UNPACK_BYTES");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("STAGEFARM_MAX_UNPACK_BYTES"));
  EXPECT_THAT(status.message(), HasSubstr("\"b\""));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, RefusesAbsolutePaths) {
  std::string name = outside_ + "/planted";
  absl::Status status = Apply({File(name, "pwned")});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(name));
  EXPECT_FALSE(Exists(name));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, RefusesDotDot) {
  for (const char* name : {"../evil", "a/../../evil", "./../evil"}) {
    SCOPED_TRACE(name);
    absl::Status status = Apply({File(name, "pwned")});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(),
                HasSubstr(absl::StrCat("layer entry \"", name,
                                       "\" escapes the destination")));
    EXPECT_FALSE(Exists(tmp_.Sub("evil")));
  }
}

TEST_F(HostileLayerTest, RefusesPathsThroughSymlinks) {
  absl::Status status =
      Apply({Symlink("a", outside_), File("a/victim", "pwned")});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"a/victim\""));
  ExpectVictimUntouched();
  // The symlink itself was extracted, and left alone.
  struct stat st;
  ASSERT_EQ(lstat((dest_ + "/a").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));

  TempDir again;
  dest_ = again.Dir("dest");
  status = Apply({Directory("d"), Symlink("d/up", "../../outside"),
                  File("d/up/new", "pwned")});
  EXPECT_THAT(status.message(), HasSubstr("\"d/up/new\""));
  EXPECT_FALSE(Exists(outside_ + "/new"));
}

TEST_F(HostileLayerTest, RefusesWhiteoutsThroughSymlinks) {
  absl::Status status = Apply({Symlink("a", outside_), File("a/.wh.victim")});
  EXPECT_THAT(status.message(), HasSubstr("\"a/.wh.victim\""));
  ExpectVictimUntouched();

  TempDir again;
  dest_ = again.Dir("dest");
  status = Apply({Symlink("a", outside_), File("a/.wh..wh..opq")});
  EXPECT_THAT(status.message(), HasSubstr("\"a/.wh..wh..opq\""));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, RefusesHardLinksOutside) {
  WriteFile(tmp_.Sub("x"), "secret");
  absl::Status status = Apply({Hardlink("h", "../x")});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("\"h\""));
  EXPECT_FALSE(Exists(dest_ + "/h"));
  struct stat st;
  ASSERT_EQ(stat(tmp_.Sub("x").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);

  status = Apply({Hardlink("h2", outside_ + "/victim")});
  EXPECT_THAT(status.message(), HasSubstr("\"h2\""));
  status = Apply({Symlink("a", outside_), Hardlink("h3", "a/victim")});
  EXPECT_THAT(status.message(), HasSubstr("\"h3\""));
  EXPECT_FALSE(Exists(dest_ + "/h3"));
  ExpectVictimUntouched();
}

TEST_F(HostileLayerTest, ReplacesSymlinkInsteadOfWritingThroughIt) {
  // A later entry with the same name replaces the symlink itself.
  absl::Status status =
      Apply({Symlink("a", outside_ + "/victim"), File("a", "inside")});
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadFile(dest_ + "/a"), "inside");
  ExpectVictimUntouched();
}

// A layer written uncompressed and compressed later (an intermediate
// stage's layer that ends up in an image) is byte-identical to the layer
// written compressed in the first place, whatever the read sizes.
TEST(LayerTarTest, CompressingATarLaterGivesTheSameBlob) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool cap = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &cap));
  // Big enough for several 1 MiB gzip members.
  std::string big(3 << 20, 0);
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7 % 251);
  WriteFile(src + "/big", big);
  std::string plain = tmp.Sub("plain");
  auto tar = WriteLayer(src, {Compression::kNone, std::nullopt, 0}, plain);
  ASSERT_TRUE(tar.ok()) << tar.status();
  const std::string tar_bytes = ReadFile(plain);
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(Suffix(c));
    std::string direct = tmp.Sub(absl::StrCat("direct", Suffix(c)));
    auto want = WriteLayer(src, {c, std::nullopt, 0}, direct);
    ASSERT_TRUE(want.ok()) << want.status();
    for (size_t chunk : {size_t{0}, size_t{1} << 20}) {
      std::string later = tmp.Sub(absl::StrCat("later", Suffix(c), chunk));
      auto got = CompressLayer(SourceOf(tar_bytes, chunk), {c, std::nullopt, 0},
                               later);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->digest, want->digest);
      EXPECT_EQ(got->diff_id, tar->diff_id);
      EXPECT_EQ(got->media_type, want->media_type);
      EXPECT_TRUE(ReadFile(later) == ReadFile(direct));
    }
  }
  // A failing source fails the compression.
  auto failing = [](std::string*) -> absl::StatusOr<size_t> {
    return absl::DataLossError("source broke");
  };
  EXPECT_EQ(CompressLayer(failing, {Compression::kGzip, std::nullopt, 0},
                          tmp.Sub("broken"))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(LayerTarTest, CorruptOrTruncatedBlobsFail) {
  TempDir tmp;
  std::string src = tmp.Dir("src");
  bool cap = false;
  ASSERT_NO_FATAL_FAILURE(BuildTree(src, kBaseTime, &cap));
  std::string gz_blob = tmp.Sub("layer.gz");
  std::string zst_blob = tmp.Sub("layer.zst");
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kGzip, std::nullopt, 0}, gz_blob).ok());
  ASSERT_TRUE(
      WriteLayer(src, {Compression::kZstd, std::nullopt, 0}, zst_blob).ok());
  const std::string gz = ReadFile(gz_blob);
  const std::string zst = ReadFile(zst_blob);
  std::string flipped = gz;
  flipped[flipped.size() / 2] ^= 0x55;
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x01;  // the CRC32 in the trailer

  struct Case {
    const char* name;
    std::string bytes;
  };
  std::vector<Case> cases = {
      {"gzip cut in half", gz.substr(0, gz.size() / 2)},
      {"gzip without its trailer", gz.substr(0, gz.size() - 8)},
      {"gzip with a flipped byte", flipped},
      {"gzip with a wrong CRC", bad_crc},
      {"gzip header only", gz.substr(0, 10)},
      {"zstd cut in half", zst.substr(0, zst.size() / 2)},
      {"zstd without its checksum", zst.substr(0, zst.size() - 4)},
      {"not a tar", std::string(2000, 'x')},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto applied =
        ApplyLayer(SourceOf(c.bytes, 4096), tmp.Dir(absl::StrCat("d", i++)));
    EXPECT_FALSE(applied.ok());
  }
  // Corruption of the compressed stream is reported as such.
  auto cut =
      ApplyLayer(SourceOf(gz.substr(0, gz.size() / 2), 4096), tmp.Dir("cut"));
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(cut.status().message(), HasSubstr("gzip"));
}

TEST(LayerTarTest, SourceErrorsPropagate) {
  TempDir tmp;
  int calls = 0;
  ByteSource failing = [&calls](std::string* out) -> absl::StatusOr<size_t> {
    if (calls++ > 0) return absl::UnavailableError("network went away");
    out->assign("\x1f\x8b\x08\x00", 4);
    return 4;
  };
  auto applied = ApplyLayer(failing, tmp.Dir("dest"));
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(applied.status().message(), HasSubstr("network went away"));
}

TEST(LayerTarTest, RejectsBadArguments) {
  TempDir tmp;
  auto missing = WriteLayer(tmp.Sub("missing"), {}, tmp.Sub("out"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(tmp.Sub("missing")));

  std::string src = tmp.Dir("src");
  WriteFile(src + "/f", "x");
  std::string blob = tmp.Sub("layer");
  ASSERT_TRUE(WriteLayer(src, {}, blob).ok());
  std::string full = tmp.Dir("full");
  WriteFile(full + "/already", "here");
  EXPECT_EQ(ApplyLayerFile(blob, full).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ApplyLayerFile(tmp.Sub("nope"), tmp.Dir("d")).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace stagefarm::archives
