#include "gitsource/git_source.h"

#include "gtest/gtest.h"

namespace stagefarm::gitsource {
namespace {

TEST(ParseGitRefTest, WhatIsAGitSource) {
  for (const char* yes :
       {"https://github.com/moby/buildkit.git", "http://127.0.0.1:80/r.git",
        "https://h/r.git/", "git://h/r", "ssh://git@h/r.git",
        "git@github.com:moby/buildkit.git", "https://h/r.git#v1:sub"}) {
    EXPECT_TRUE(ParseGitRef(yes).has_value()) << yes;
  }
  for (const char* no : {"https://h/archive.tar.gz", "https://h/r.git.tar",
                         "./r.git", "r.git", "github.com/moby/buildkit",
                         "file:///tmp/r.git", "git@nohost", "/abs/r.git"}) {
    EXPECT_FALSE(ParseGitRef(no).has_value()) << no;
  }
}

TEST(ParseGitRefTest, Fragment) {
  std::optional<GitRef> r = ParseGitRef("https://h/r.git#v1.2:docs/api");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->remote, "https://h/r.git");
  EXPECT_EQ(r->ref, "v1.2");
  EXPECT_EQ(r->subdir, "docs/api");
  r = ParseGitRef("git@h:o/r.git#:sub");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->remote, "git@h:o/r.git");
  EXPECT_EQ(r->ref, "");
  EXPECT_EQ(r->subdir, "sub");
  r = ParseGitRef("https://h/r.git");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ref, "");
  EXPECT_EQ(r->subdir, "");
}

TEST(GitRefTest, RedactedDropsCredentials) {
  GitRef r;
  r.remote = "https://user:s3cret@h.example/o/r.git";
  EXPECT_EQ(r.Redacted(), "https://h.example/o/r.git");
  r.remote = "git@github.com:o/r.git";
  EXPECT_EQ(r.Redacted(), "git@github.com:o/r.git");
  r.remote = "https://h/o/r@x.git";
  EXPECT_EQ(r.Redacted(), "https://h/o/r@x.git");
}

TEST(ResolveCommitTest, AHashIsItsOwnCommit) {
  GitRef r;
  r.remote = "https://unreachable.invalid/r.git";
  r.ref = "0123456789ABCDEF0123456789abcdef01234567";
  absl::StatusOr<std::string> c = ResolveCommit(r);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, "0123456789abcdef0123456789abcdef01234567");
}

}  // namespace
}  // namespace stagefarm::gitsource
