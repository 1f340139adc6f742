#include "frontend/dockerfile/dockerignore.h"

#include <gtest/gtest.h>

#include "tests/status_code.h"

namespace stagefarm::dockerfile {
namespace {

DockerignoreMatcher M(absl::string_view text) {
  auto m = DockerignoreMatcher::Create(ReadDockerignore(text));
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

TEST(DockerignoreTest, SpecF1PatternsAndNegation) {
  auto m = M("ba*\nDockerfile\n!bay\n.dockerignore\n");
  EXPECT_FALSE(m.Excluded("foo"));
  EXPECT_TRUE(m.Excluded("bar"));
  EXPECT_TRUE(m.Excluded("baz"));
  EXPECT_FALSE(m.Excluded("bay"));
  EXPECT_TRUE(m.Excluded("Dockerfile"));
  EXPECT_TRUE(m.Excluded(".dockerignore"));
}

TEST(DockerignoreTest, SpecF2LoneBangIsAnError) {
  auto m = DockerignoreMatcher::Create(ReadDockerignore("!\n"));
  ASSERT_EQ(testing::CodeOf(m), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("illegal exclusion pattern"),
            std::string::npos);
  EXPECT_FALSE(DockerignoreMatcher::Create({"a[b"}).ok());
}

TEST(DockerignoreTest, ReadingCleansAndSkipsComments) {
  EXPECT_EQ(
      ReadDockerignore(
          "# comment\n\n  /abs/path/ \n./x/../y\n! /keep\n\xEF\xBB\xBFz\n"),
      (std::vector<std::string>{"abs/path", "y", "!keep", "\xEF\xBB\xBFz"}));
  EXPECT_EQ(ReadDockerignore("\xEF\xBB\xBF"
                             "a\n"),
            std::vector<std::string>{"a"});
  EXPECT_EQ(CleanPath("a//b/./c/.."), "a/b");
  EXPECT_EQ(CleanPath("../a"), "../a");
  EXPECT_EQ(CleanPath("/../a"), "/a");
}

TEST(DockerignoreTest, StarStaysInOneSegment) {
  auto m = M("*.md\ndocs/*.txt\n");
  EXPECT_TRUE(m.Excluded("README.md"));
  EXPECT_FALSE(m.Excluded("sub/README.md"));
  EXPECT_TRUE(m.Excluded("docs/a.txt"));
  EXPECT_FALSE(m.Excluded("docs/deep/a.txt"));
}

TEST(DockerignoreTest, DoubleStarCrossesSegments) {
  auto m = M("**/*.go\n");
  EXPECT_TRUE(m.Excluded("main.go"));
  EXPECT_TRUE(m.Excluded("a/b/c.go"));
  EXPECT_FALSE(m.Excluded("a/b/c.got"));
  auto rest = M("build/**\n");
  EXPECT_TRUE(rest.Excluded("build/x/y"));
  EXPECT_FALSE(rest.Excluded("builds/x"));
  auto middle = M("a/**/z\n");
  EXPECT_TRUE(middle.Excluded("a/z"));
  EXPECT_TRUE(middle.Excluded("a/b/c/z"));
  EXPECT_TRUE(M("**\n").Excluded("anything/at/all"));
}

TEST(DockerignoreTest, ParentDirectoryMatchExcludesChildren) {
  auto m = M("node_modules\n!node_modules/keep.js\n");
  EXPECT_TRUE(m.Excluded("node_modules/x/y.js"));
  EXPECT_FALSE(m.Excluded("node_modules/keep.js"));
  EXPECT_TRUE(m.has_exceptions());
}

TEST(DockerignoreTest, LastMatchWinsInOrder) {
  auto m = M("*.log\n!important.log\nimportant.log\n");
  EXPECT_TRUE(m.Excluded("important.log"));
  auto m2 = M("docs\n!docs/*.md\ndocs/secret.md\n");
  EXPECT_FALSE(m2.Excluded("docs/a.md"));
  EXPECT_TRUE(m2.Excluded("docs/secret.md"));
  EXPECT_TRUE(m2.Excluded("docs/a.txt"));
}

TEST(DockerignoreTest, QuestionClassesAndEscapes) {
  auto m = M("file?.txt\n[abc].dat\n[^x]y\nlit\\*\n");
  EXPECT_TRUE(m.Excluded("file1.txt"));
  EXPECT_FALSE(m.Excluded("file10.txt"));
  EXPECT_TRUE(m.Excluded("b.dat"));
  EXPECT_FALSE(m.Excluded("d.dat"));
  EXPECT_TRUE(m.Excluded("zy"));
  EXPECT_FALSE(m.Excluded("xy"));
  EXPECT_TRUE(m.Excluded("lit*"));
  EXPECT_FALSE(m.Excluded("litx"));
}

// Found by the fuzzer: many stars against a long path once took seconds
// (quadratic per star, and again per parent directory). It is linear now;
// the test's timeout guards it.
TEST(DockerignoreTest, ManyStarsAndDeepPathsStayLinear) {
  std::string pattern(2000, '*');
  pattern += "x";
  std::string path;
  for (int i = 0; i < 1500; ++i) path += "a/";
  path += "b";
  auto m = DockerignoreMatcher::Create(
      {pattern, "!" + pattern + "y", "**/" + pattern});
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->Excluded(path));
  // "**" not followed by "/" is "(.*/)?" in Docker's rules: the x must
  // start a path segment.
  EXPECT_FALSE(m->Excluded(path + "x"));
  EXPECT_TRUE(m->Excluded(path + "/x"));
}

TEST(DockerignoreTest, PerDockerfileIgnoreFileComesFirst) {
  EXPECT_EQ(IgnoreFileCandidates("ctx/Dockerfile2", "ctx"),
            (std::vector<std::string>{"ctx/Dockerfile2.dockerignore",
                                      "ctx/.dockerignore"}));
}

}  // namespace
}  // namespace stagefarm::dockerfile
