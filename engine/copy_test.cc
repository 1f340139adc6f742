#include "engine/copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "frontend/dockerfile/dockerignore.h"
#include "tests/status_code.h"

namespace stagefarm::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A copy source; the struct is filled field by field (no aggregate init, so
// -Wmissing-field-initializers stays quiet).
CopySource Src(const std::string& root,
               const dockerfile::DockerignoreMatcher* ignore = nullptr,
               bool keep_owners = false) {
  CopySource s;
  s.root = root;
  s.ignore = ignore;
  s.keep_owners = keep_owners;
  return s;
}

// Tests run as root: chown and arbitrary owners work.
class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/copy.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    ctx_ = base_ + "/ctx";
    dest_ = base_ + "/dest";
    ASSERT_EQ(mkdir(ctx_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(dest_.c_str(), 0755), 0);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }

  std::string C(const std::string& rel) const { return ctx_ + "/" + rel; }
  std::string D(const std::string& rel) const { return dest_ + "/" + rel; }

  static void WriteFile(const std::string& path, const std::string& content,
                        mode_t mode = 0644) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(write(fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    ASSERT_EQ(fchmod(fd, mode), 0);
    ASSERT_EQ(close(fd), 0);
  }
  static std::string ReadFile(const std::string& path) {
    std::string content;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "<unreadable>";
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) content.append(buf, n);
    close(fd);
    return content;
  }
  static void MakeDir(const std::string& path, mode_t mode = 0755) {
    ASSERT_EQ(mkdir(path.c_str(), 0700), 0) << path;
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
  }
  static bool Exists(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
  }
  static struct stat Lstat(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    return st;
  }
  static void SetMtime(const std::string& path, int64_t seconds) {
    struct timespec times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }

  // Matches `patterns` in `source` and copies them to `options.dest`.
  absl::Status Copy(const CopySource& source,
                    const std::vector<std::string>& patterns,
                    const CopyOptions& options) {
    auto matches = MatchSources(source, patterns, {});
    if (!matches.ok()) return matches.status();
    return CopyInto(source, *matches, {}, dest_, options);
  }
  absl::Status Copy(const std::vector<std::string>& patterns,
                    const std::string& dest) {
    CopyOptions options;
    options.dest = dest;
    return Copy(Src(ctx_), patterns, options);
  }

  static std::vector<std::string> Rels(const std::vector<SourceMatch>& m) {
    std::vector<std::string> out;
    for (const SourceMatch& s : m) out.push_back(s.rel);
    return out;
  }

  std::string base_, ctx_, dest_;
};

struct TarEntry {
  TarEntry(std::string n, std::string c, mode_t t = AE_IFREG,
           std::string l = "")
      : name(std::move(n)),
        content(std::move(c)),
        type(t),
        link(std::move(l)) {}
  std::string name;
  std::string content;
  mode_t type;
  std::string link;  // symlink target
};

void WriteTar(const std::string& path, const std::vector<TarEntry>& entries,
              bool gzip = false) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const TarEntry& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_filetype(e, t.type);
    archive_entry_set_perm(e, t.type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_mtime(e, 1600000000, 0);
    if (t.type == AE_IFLNK) archive_entry_set_symlink(e, t.link.c_str());
    archive_entry_set_size(e, t.type == AE_IFREG ? t.content.size() : 0);
    ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << t.name;
    if (t.type == AE_IFREG && !t.content.empty()) {
      ASSERT_EQ(archive_write_data(a, t.content.data(), t.content.size()),
                static_cast<la_ssize_t>(t.content.size()));
    }
    archive_entry_free(e);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

// --- ParseChmod ---

TEST(ParseChmodTest, ParsesOctal) {
  EXPECT_EQ(*ParseChmod("0644"), 0644u);
  EXPECT_EQ(*ParseChmod("777"), 0777u);
  EXPECT_EQ(*ParseChmod("0"), 0u);
  EXPECT_EQ(*ParseChmod("4755"), 04755u);
  EXPECT_EQ(*ParseChmod("07777"), 07777u);
}

TEST(ParseChmodTest, RejectsNonOctalWithBuildKitMessage) {
  auto m = ParseChmod("64a");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("invalid chmod parameter"));
  EXPECT_THAT(m.status().message(), HasSubstr("64a"));
  EXPECT_EQ(ParseChmod("8").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseChmod("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseChmod("-1").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseChmodTest, RejectsOutOfRange) {
  auto m = ParseChmod("10000");
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("invalid chmod parameter"));
  EXPECT_EQ(testing::CodeOf(ParseChmod("077777")),
            absl::StatusCode::kInvalidArgument);
}

// --- MatchSources ---

// --- FileMode (--chmod, octal or symbolic) ---

TEST(FileModeTest, OctalReplacesTheMode) {
  auto m = FileMode::Parse("0750");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->Apply(0644, false), 0750u);
}

TEST(FileModeTest, SymbolicClausesActLikeChmod) {
  EXPECT_EQ(FileMode::Parse("go-w")->Apply(0666, false), 0644u);
  EXPECT_EQ(FileMode::Parse("u=rw,g=r,o=r")->Apply(0777, false), 0644u);
  EXPECT_EQ(FileMode::Parse("u+rw,g+r,o-x,o+w")->Apply(0001, false), 0642u);
  EXPECT_EQ(FileMode::Parse("+x")->Apply(0600, false), 0711u);
  EXPECT_EQ(FileMode::Parse("u+s")->Apply(0755, false), 04755u);
}

TEST(FileModeTest, CapitalXOnlyForDirectoriesAndExecutables) {
  auto m = FileMode::Parse("a+X");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Apply(0600, false), 0600u);
  EXPECT_EQ(m->Apply(0700, false), 0711u);
  EXPECT_EQ(m->Apply(0700, true), 0711u);
}

TEST(FileModeTest, RejectsGarbage) {
  for (const char* bad : {"64a", "u+q", "u", "z+r", "", ",", "10000"}) {
    auto m = FileMode::Parse(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << bad;
  }
}

TEST_F(CopyTest, GlobMatchesAreSorted) {
  WriteFile(C("b.go"), "b");
  WriteFile(C("c.txt"), "c");
  WriteFile(C("a.go"), "a");
  MakeDir(C("z.go"));
  auto m = MatchSources(Src(ctx_), {"*.go"}, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Rels(*m), ElementsAre("a.go", "b.go", "z.go"));
  EXPECT_FALSE((*m)[0].is_dir);
  EXPECT_TRUE((*m)[2].is_dir);
  EXPECT_EQ((*m)[0].host, C("a.go"));
}

TEST_F(CopyTest, GlobAcrossDirectories) {
  MakeDir(C("sub"));
  MakeDir(C("sub/y"));
  MakeDir(C("sub/x"));
  MakeDir(C("sub/z"));  // no f inside
  WriteFile(C("sub/y/f"), "y");
  WriteFile(C("sub/x/f"), "x");
  WriteFile(C("sub/x/g"), "g");
  auto m = MatchSources(Src(ctx_), {"sub/*/f"}, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Rels(*m), ElementsAre("sub/x/f", "sub/y/f"));
}

TEST_F(CopyTest, PatternsKeepTheirOrder) {
  WriteFile(C("b"), "b");
  WriteFile(C("a"), "a");
  auto m = MatchSources(Src(ctx_), {"b", "/./a"}, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Rels(*m), ElementsAre("b", "a"));
}

TEST_F(CopyTest, MissingPlainPathIsNotFoundNamingIt) {
  WriteFile(C("present"), "p");
  auto m = MatchSources(Src(ctx_), {"present", "missing.txt"}, {});
  ASSERT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(m.status().message(), HasSubstr("missing.txt"));
}

TEST_F(CopyTest, GlobWithoutMatchNextToExistingSourceIsFine) {
  WriteFile(C("present"), "p");
  auto m = MatchSources(Src(ctx_), {"present", "*.nomatch"}, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Rels(*m), ElementsAre("present"));
}

TEST_F(CopyTest, NothingMatchedIsAnError) {
  WriteFile(C("present"), "p");
  auto m = MatchSources(Src(ctx_), {"*.nomatch", "x*"}, {});
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CopyTest, SourceSymlinkIsFollowedInsideTheRoot) {
  MakeDir(C("real"));
  WriteFile(C("real/f"), "inside");
  ASSERT_EQ(symlink("/real", C("abs").c_str()), 0);
  auto m = MatchSources(Src(ctx_), {"abs/f"}, {});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_EQ((*m)[0].host, C("real/f"));
}

TEST_F(CopyTest, DockerignoredPathIsNotFound) {
  WriteFile(C("secret.txt"), "s");
  WriteFile(C("public.txt"), "p");
  auto ignore = dockerfile::DockerignoreMatcher::Create({"secret.txt"});
  ASSERT_TRUE(ignore.ok()) << ignore.status();
  CopySource source = Src(ctx_, &*ignore);
  auto plain = MatchSources(source, {"secret.txt"}, {});
  EXPECT_EQ(plain.status().code(), absl::StatusCode::kNotFound);
  auto glob = MatchSources(source, {"*.txt"}, {});
  ASSERT_TRUE(glob.ok()) << glob.status();
  EXPECT_THAT(Rels(*glob), ElementsAre("public.txt"));
}

TEST_F(CopyTest, DockerignoredDirHidesItsFilesWhenCopyingTheParent) {
  MakeDir(C("app"));
  MakeDir(C("app/node_modules"));
  WriteFile(C("app/node_modules/m"), "m");
  WriteFile(C("app/main.js"), "js");
  auto ignore = dockerfile::DockerignoreMatcher::Create({"app/node_modules"});
  ASSERT_TRUE(ignore.ok()) << ignore.status();
  CopySource source = Src(ctx_, &*ignore);
  CopyOptions options;
  options.dest = "/app/";
  ASSERT_TRUE(Copy(source, {"app"}, options).ok());
  EXPECT_TRUE(Exists(D("app/main.js")));
  EXPECT_FALSE(Exists(D("app/node_modules")));
}

// BUG: a glob whose last component is a plain name ("sub/*/f") checks only
// the glob-expanded parents against .dockerignore, not the final path: an
// ignored "sub/a/f" is matched (and copied) although the header says excluded
// paths "do not exist for COPY". Enable once fixed.
TEST_F(CopyTest, DockerignoredFileIsHiddenFromAGlobWithPlainTail) {
  MakeDir(C("sub"));
  MakeDir(C("sub/a"));
  MakeDir(C("sub/b"));
  WriteFile(C("sub/a/f"), "secret");
  WriteFile(C("sub/b/f"), "public");
  auto ignore = dockerfile::DockerignoreMatcher::Create({"sub/a/f"});
  ASSERT_TRUE(ignore.ok()) << ignore.status();
  auto m = MatchSources(Src(ctx_, &*ignore), {"sub/*/f"}, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Rels(*m), ElementsAre("sub/b/f"));
}

// BUG: a source path that reaches an ignored directory through a symlink is
// not checked against .dockerignore after resolution: with "secret" ignored
// and link -> secret, COPY link copies secret's files (Docker never sends
// ignored files, so there the link dangles). Enable once fixed.
TEST_F(CopyTest, DockerignoredDirIsNotReachableThroughASymlink) {
  MakeDir(C("secret"));
  WriteFile(C("secret/key"), "private");
  ASSERT_EQ(symlink("secret", C("link").c_str()), 0);
  auto ignore = dockerfile::DockerignoreMatcher::Create({"secret"});
  ASSERT_TRUE(ignore.ok()) << ignore.status();
  CopySource source = Src(ctx_, &*ignore);
  CopyOptions options;
  options.dest = "/out/";
  absl::Status s = Copy(source, {"link"}, options);
  EXPECT_FALSE(Exists(D("out/key"))) << s;
}

TEST_F(CopyTest, ExcludesHideMatches) {
  WriteFile(C("a.txt"), "a");
  WriteFile(C("b.txt"), "b");
  auto m = MatchSources(Src(ctx_), {"*.txt"}, {"b.txt"});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(Rels(*m), ElementsAre("a.txt"));
}

// --- DigestSources ---

class DigestTest : public CopyTest {
 protected:
  absl::StatusOr<std::string> DigestOf(const std::string& root,
                                       const std::vector<std::string>& pat,
                                       bool keep_owners = false) {
    CopySource source = Src(root, nullptr, keep_owners);
    auto m = MatchSources(source, pat, {});
    if (!m.ok()) return m.status();
    return DigestSources(source, *m, {});
  }
  // Builds the same tree in `root`, with varying mtimes and owners.
  void BuildTree(const std::string& root, int64_t mtime, uid_t uid) {
    MakeDir(root);
    MakeDir(root + "/src");
    WriteFile(root + "/src/f", "hello");
    MakeDir(root + "/src/d");
    WriteFile(root + "/src/d/g", "world", 0600);
    ASSERT_EQ(symlink("f", (root + "/src/l").c_str()), 0);
    for (const char* p : {"/src/d/g", "/src/d", "/src/f", "/src"}) {
      ASSERT_EQ(lchown((root + p).c_str(), uid, uid), 0);
      SetMtime(root + p, mtime);
    }
  }
};

TEST_F(DigestTest, IgnoresMtimeOwnerAndLocation) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  BuildTree(base_ + "/r2", 1600000000, 1234);
  for (const char* pattern : {"src", "src/f", "src/*"}) {
    auto d1 = DigestOf(base_ + "/r1", {pattern});
    auto d2 = DigestOf(base_ + "/r2", {pattern});
    ASSERT_TRUE(d1.ok()) << d1.status();
    ASSERT_TRUE(d2.ok()) << d2.status();
    EXPECT_EQ(*d1, *d2) << pattern;
    EXPECT_TRUE(absl::StartsWith(*d1, "sha256:")) << *d1;
    EXPECT_EQ(d1->size(), 7u + 64u);
  }
}

TEST_F(DigestTest, OwnersCountWhenKept) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  BuildTree(base_ + "/r2", 1000000000, 1234);
  auto d1 = DigestOf(base_ + "/r1", {"src"}, /*keep_owners=*/true);
  auto d2 = DigestOf(base_ + "/r2", {"src"}, /*keep_owners=*/true);
  ASSERT_TRUE(d1.ok() && d2.ok());
  EXPECT_NE(*d1, *d2);
}

TEST_F(DigestTest, ContentChangeChangesDigest) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  auto before = DigestOf(base_ + "/r1", {"src"});
  auto before_file = DigestOf(base_ + "/r1", {"src/f"});
  WriteFile(base_ + "/r1/src/f", "hellO");
  auto after = DigestOf(base_ + "/r1", {"src"});
  auto after_file = DigestOf(base_ + "/r1", {"src/f"});
  ASSERT_TRUE(before.ok() && after.ok() && before_file.ok() && after_file.ok());
  EXPECT_NE(*before, *after);
  EXPECT_NE(*before_file, *after_file);
}

TEST_F(DigestTest, NestedContentChangeChangesDigest) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  auto before = DigestOf(base_ + "/r1", {"src"});
  WriteFile(base_ + "/r1/src/d/g", "worle", 0600);
  auto after = DigestOf(base_ + "/r1", {"src"});
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_NE(*before, *after);
}

TEST_F(DigestTest, ModeChangeChangesDigest) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  auto before = DigestOf(base_ + "/r1", {"src"});
  auto before_file = DigestOf(base_ + "/r1", {"src/f"});
  ASSERT_EQ(chmod((base_ + "/r1/src/f").c_str(), 0755), 0);
  auto after = DigestOf(base_ + "/r1", {"src"});
  auto after_file = DigestOf(base_ + "/r1", {"src/f"});
  ASSERT_TRUE(before.ok() && after.ok() && before_file.ok() && after_file.ok());
  EXPECT_NE(*before, *after);
  EXPECT_NE(*before_file, *after_file);
}

TEST_F(DigestTest, SymlinkTargetChangeChangesDigest) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  auto before = DigestOf(base_ + "/r1", {"src"});
  ASSERT_EQ(unlink((base_ + "/r1/src/l").c_str()), 0);
  ASSERT_EQ(symlink("d/g", (base_ + "/r1/src/l").c_str()), 0);
  auto after = DigestOf(base_ + "/r1", {"src"});
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_NE(*before, *after);
}

TEST_F(DigestTest, RenameChangesDigest) {
  BuildTree(base_ + "/r1", 1000000000, 0);
  auto before = DigestOf(base_ + "/r1", {"src"});
  ASSERT_EQ(
      rename((base_ + "/r1/src/d/g").c_str(), (base_ + "/r1/src/d/h").c_str()),
      0);
  auto after = DigestOf(base_ + "/r1", {"src"});
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_NE(*before, *after);
}

// --- CopyInto ---

TEST_F(CopyTest, FileToSlashDestGoesInsideAsBasename) {
  MakeDir(C("sub"));
  WriteFile(C("sub/f.txt"), "content");
  ASSERT_TRUE(Copy({"sub/f.txt"}, "/dir/").ok());
  EXPECT_EQ(ReadFile(D("dir/f.txt")), "content");
}

TEST_F(CopyTest, FileToExistingDirWithoutSlashGoesInside) {
  WriteFile(C("f.txt"), "content");
  MakeDir(D("existing"));
  ASSERT_TRUE(Copy({"f.txt"}, "/existing").ok());
  EXPECT_EQ(ReadFile(D("existing/f.txt")), "content");
}

TEST_F(CopyTest, FileToNonSlashDestBecomesThatFile) {
  WriteFile(C("f.txt"), "content");
  ASSERT_TRUE(Copy({"f.txt"}, "/a/b/renamed").ok());
  struct stat st = Lstat(D("a/b/renamed"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadFile(D("a/b/renamed")), "content");
}

TEST_F(CopyTest, FileOverwritesExistingFile) {
  WriteFile(C("f.txt"), "new");
  WriteFile(D("f.txt"), "old old old");
  ASSERT_TRUE(Copy({"f.txt"}, "/f.txt").ok());
  EXPECT_EQ(ReadFile(D("f.txt")), "new");
}

TEST_F(CopyTest, DirSourceCopiesItsContents) {
  MakeDir(C("dir"));
  WriteFile(C("dir/x"), "x");
  MakeDir(C("dir/sub"));
  WriteFile(C("dir/sub/y"), "y");
  ASSERT_TRUE(Copy({"dir"}, "/out").ok());
  EXPECT_EQ(ReadFile(D("out/x")), "x");
  EXPECT_EQ(ReadFile(D("out/sub/y")), "y");
  EXPECT_FALSE(Exists(D("out/dir")));
}

TEST_F(CopyTest, TwoSourcesToNonDirDestIsInvalid) {
  WriteFile(C("a"), "a");
  WriteFile(C("b"), "b");
  absl::Status s = Copy({"a", "b"}, "/target");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(D("target")));
}

TEST_F(CopyTest, TwoSourcesToSlashDest) {
  WriteFile(C("a"), "a");
  WriteFile(C("b"), "b");
  ASSERT_TRUE(Copy({"a", "b"}, "/target/").ok());
  EXPECT_EQ(ReadFile(D("target/a")), "a");
  EXPECT_EQ(ReadFile(D("target/b")), "b");
}

TEST_F(CopyTest, ChownAppliesToFilesAndCreatedParents) {
  MakeDir(C("dir"));
  WriteFile(C("dir/f"), "f");
  WriteFile(C("top"), "t");
  MakeDir(D("existing"));
  CopyOptions options;
  options.dest = "/existing/new/deeper/";
  options.uid = 1000;
  options.gid = 1001;
  ASSERT_TRUE(Copy(Src(ctx_), {"top", "dir"}, options).ok());
  for (const char* rel : {"existing/new", "existing/new/deeper",
                          "existing/new/deeper/top", "existing/new/deeper/f"}) {
    struct stat st = Lstat(D(rel));
    EXPECT_EQ(st.st_uid, 1000u) << rel;
    EXPECT_EQ(st.st_gid, 1001u) << rel;
  }
  // A directory that existed before keeps its owner.
  struct stat st = Lstat(D("existing"));
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(CopyTest, ChmodAppliesToCopiedFiles) {
  WriteFile(C("f"), "f", 0644);
  MakeDir(C("dir"));
  WriteFile(C("dir/g"), "g", 0600);
  CopyOptions options;
  options.dest = "/out/";
  options.mode = 0751;
  ASSERT_TRUE(Copy(Src(ctx_), {"f", "dir"}, options).ok());
  EXPECT_EQ(Lstat(D("out/f")).st_mode & 07777, 0751u);
  EXPECT_EQ(Lstat(D("out/g")).st_mode & 07777, 0751u);
}

TEST_F(CopyTest, ModesArePreservedWithoutChmod) {
  WriteFile(C("exe"), "#!/bin/sh\n", 04755);
  MakeDir(C("dir"), 0750);
  WriteFile(C("dir/private"), "p", 0600);
  ASSERT_TRUE(Copy({"exe"}, "/exe").ok());
  ASSERT_TRUE(Copy({"dir"}, "/copied/dir").ok());
  EXPECT_EQ(Lstat(D("exe")).st_mode & 07777, 04755u);
  EXPECT_EQ(Lstat(D("copied/dir/private")).st_mode & 07777, 0600u);
}

TEST_F(CopyTest, ContextFilesBecomeRootOwned) {
  WriteFile(C("f"), "f");
  ASSERT_EQ(chown(C("f").c_str(), 1234, 5678), 0);
  MakeDir(C("dir"));
  WriteFile(C("dir/g"), "g");
  ASSERT_EQ(chown(C("dir/g").c_str(), 1234, 5678), 0);
  ASSERT_TRUE(Copy({"f", "dir"}, "/out/").ok());
  for (const char* rel : {"out/f", "out/g"}) {
    struct stat st = Lstat(D(rel));
    EXPECT_EQ(st.st_uid, 0u) << rel;
    EXPECT_EQ(st.st_gid, 0u) << rel;
  }
}

TEST_F(CopyTest, KeepOwnersKeepsSourceOwners) {
  WriteFile(C("f"), "f");
  ASSERT_EQ(chown(C("f").c_str(), 1234, 5678), 0);
  MakeDir(C("dir"));
  WriteFile(C("dir/g"), "g");
  ASSERT_EQ(chown(C("dir/g").c_str(), 1234, 5678), 0);
  CopyOptions options;
  options.dest = "/out/";
  ASSERT_TRUE(Copy(Src(ctx_, nullptr, true), {"f", "dir"}, options).ok());
  for (const char* rel : {"out/f", "out/g"}) {
    struct stat st = Lstat(D(rel));
    EXPECT_EQ(st.st_uid, 1234u) << rel;
    EXPECT_EQ(st.st_gid, 5678u) << rel;
  }
}

TEST_F(CopyTest, ChownOverridesKeptOwners) {
  WriteFile(C("f"), "f");
  ASSERT_EQ(chown(C("f").c_str(), 1234, 5678), 0);
  CopyOptions options;
  options.dest = "/f";
  options.uid = 42;
  ASSERT_TRUE(Copy(Src(ctx_, nullptr, true), {"f"}, options).ok());
  struct stat st = Lstat(D("f"));
  EXPECT_EQ(st.st_uid, 42u);
  EXPECT_EQ(st.st_gid, 5678u);
}

TEST_F(CopyTest, SymlinksInsideACopiedDirStaySymlinks) {
  MakeDir(C("dir"));
  WriteFile(C("dir/target"), "t");
  ASSERT_EQ(symlink("target", C("dir/rel").c_str()), 0);
  ASSERT_EQ(symlink("/nonexistent/abs", C("dir/abs").c_str()), 0);
  ASSERT_TRUE(Copy({"dir"}, "/out").ok());
  for (auto [name, target] : std::vector<std::pair<std::string, std::string>>{
           {"rel", "target"}, {"abs", "/nonexistent/abs"}}) {
    struct stat st = Lstat(D("out/" + name));
    ASSERT_TRUE(S_ISLNK(st.st_mode)) << name;
    char buf[256];
    ssize_t n = readlink(D("out/" + name).c_str(), buf, sizeof(buf));
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, n), target);
  }
}

TEST_F(CopyTest, HardLinksInsideACopiedDirStayHardLinks) {
  MakeDir(C("dir"));
  WriteFile(C("dir/a"), "shared");
  ASSERT_EQ(link(C("dir/a").c_str(), C("dir/b").c_str()), 0);
  WriteFile(C("dir/c"), "alone");
  ASSERT_TRUE(Copy({"dir"}, "/out").ok());
  struct stat a = Lstat(D("out/a"));
  struct stat b = Lstat(D("out/b"));
  struct stat c = Lstat(D("out/c"));
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_NE(a.st_ino, c.st_ino);
  EXPECT_EQ(ReadFile(D("out/b")), "shared");
  // Not linked to the source.
  EXPECT_NE(a.st_ino, Lstat(C("dir/a")).st_ino);
}

TEST_F(CopyTest, AbsoluteDestSymlinkResolvesInsideDestRoot) {
  // The link's target is a real host directory: following it on the host
  // would write outside the destination root.
  std::string outside = base_ + "/outside";
  MakeDir(outside);
  ASSERT_EQ(symlink(outside.c_str(), D("link").c_str()), 0);
  WriteFile(C("f"), "f");
  ASSERT_TRUE(Copy({"f"}, "/link/").ok());
  EXPECT_FALSE(Exists(outside + "/f"));
  EXPECT_EQ(ReadFile(dest_ + outside + "/f"), "f");
}

TEST_F(CopyTest, DotDotDestStaysInsideDestRoot) {
  WriteFile(C("f"), "f");
  ASSERT_TRUE(Copy({"f"}, "/../../escaped").ok());
  EXPECT_FALSE(Exists(base_ + "/escaped"));
  EXPECT_EQ(ReadFile(D("escaped")), "f");
}

TEST_F(CopyTest, ExistingSymlinkAtTargetIsReplacedNotWrittenThrough) {
  std::string outside = base_ + "/outside-file";
  WriteFile(outside, "precious");
  MakeDir(D("out"));
  // An absolute host path: inside the root it means dest_/<outside>.
  ASSERT_EQ(symlink(outside.c_str(), D("out/f").c_str()), 0);
  MakeDir(C("dir"));
  WriteFile(C("dir/f"), "new");
  ASSERT_TRUE(Copy({"dir"}, "/out").ok());
  EXPECT_EQ(ReadFile(outside), "precious");
  EXPECT_EQ(ReadFile(D("out/f")), "new");
}

TEST_F(CopyTest, ArchiveIsUnpackedWhenAsked) {
  WriteTar(C("a.tar.gz"),
           {{"top.txt", "top"},
            {"dir/", "", AE_IFDIR},
            {"dir/inner.txt", "inner"},
            {"dir/link", "", AE_IFLNK, "inner.txt"}},
           /*gzip=*/true);
  CopyOptions options;
  options.dest = "/x/";
  options.unpack_archives = true;
  ASSERT_TRUE(Copy(Src(ctx_), {"a.tar.gz"}, options).ok());
  EXPECT_EQ(ReadFile(D("x/top.txt")), "top");
  EXPECT_EQ(ReadFile(D("x/dir/inner.txt")), "inner");
  EXPECT_TRUE(S_ISLNK(Lstat(D("x/dir/link")).st_mode));
  EXPECT_FALSE(Exists(D("x/a.tar.gz")));
}

TEST_F(CopyTest, ArchiveIsCopiedAsAFileWithoutUnpack) {
  WriteTar(C("a.tar"), {{"top.txt", "top"}});
  ASSERT_TRUE(Copy({"a.tar"}, "/x/").ok());
  EXPECT_TRUE(S_ISREG(Lstat(D("x/a.tar")).st_mode));
  EXPECT_FALSE(Exists(D("x/top.txt")));
}

TEST_F(CopyTest, NonArchiveIsCopiedEvenWithUnpack) {
  WriteFile(C("notes.tar"), "just text, not a tar");
  CopyOptions options;
  options.dest = "/x/";
  options.unpack_archives = true;
  ASSERT_TRUE(Copy(Src(ctx_), {"notes.tar"}, options).ok());
  EXPECT_EQ(ReadFile(D("x/notes.tar")), "just text, not a tar");
}

TEST_F(CopyTest, ArchiveEntryWithDotDotIsRefused) {
  WriteTar(C("evil.tar"), {{"ok.txt", "ok"}, {"../evil", "pwned"}});
  CopyOptions options;
  options.dest = "/";
  options.unpack_archives = true;
  absl::Status s = Copy(Src(ctx_), {"evil.tar"}, options);
  EXPECT_EQ(testing::CodeOf(s), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("../evil"));
  EXPECT_FALSE(Exists(base_ + "/evil"));
  EXPECT_FALSE(Exists(D("evil")));
}

TEST_F(CopyTest, ArchiveEntryThroughSymlinkNeverWritesOutside) {
  std::string outside = base_ + "/outside";
  MakeDir(outside);
  WriteTar(C("evil.tar"), {{"l", "", AE_IFLNK, outside}, {"l/evil", "pwned"}});
  CopyOptions options;
  options.dest = "/";
  options.unpack_archives = true;
  absl::Status s = Copy(Src(ctx_), {"evil.tar"}, options);
  EXPECT_FALSE(Exists(outside + "/evil"));
  // libarchive (secure symlinks + unlink) replaces the symlink with a real
  // directory, so the entry lands inside the destination.
  if (s.ok()) {
    EXPECT_TRUE(S_ISDIR(Lstat(D("l")).st_mode));
    EXPECT_EQ(ReadFile(D("l/evil")), "pwned");
  }
}

TEST_F(CopyTest, ArchiveEntryWithAbsolutePathStaysInside) {
  std::string outside = base_ + "/abs-evil";
  WriteTar(C("evil.tar"), {{outside, "pwned"}});
  CopyOptions options;
  options.dest = "/";
  options.unpack_archives = true;
  // Refused or written inside: either way never at the host path.
  (void)Copy(Src(ctx_), {"evil.tar"}, options);
  EXPECT_FALSE(Exists(outside));
}

}  // namespace
}  // namespace stagefarm::engine
