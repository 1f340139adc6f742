#include "frontend/dockerfile/shell_lex.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/shared_dir.h"
#include "tests/status_code.h"

namespace stagefarm::dockerfile {
namespace {

// BuildKit's envVarTest vectors: "P|input|expected", P in A (all), U (unix),
// W (windows); "error" expects an error.
TEST(ShellLexVectors, EnvVarTest) {
  std::string shared = stagefarm::testing::SharedDir();
  if (shared.empty())
    GTEST_SKIP() << "../shared is absent (set STAGEFARM_SHARED)";
  std::ifstream in(shared + "/corpus/buildkit-shell/envVarTest");
  ASSERT_TRUE(in) << "envVarTest missing";
  std::vector<std::string> env = {"PWD=/home", "SHELL=bash", "KOREAN=한국어",
                                  "NULL="};
  ShellLex lex;
  std::string line;
  int checked = 0, lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t.empty() || t[0] == '#') continue;
    std::vector<std::string> parts = absl::StrSplit(line, '|');
    ASSERT_EQ(parts.size(), 3u) << "line " << lineno;
    std::string platform(absl::StripAsciiWhitespace(parts[0]));
    if (platform == "W") continue;
    std::string input(absl::StripAsciiWhitespace(parts[1]));
    std::string expected(absl::StripAsciiWhitespace(parts[2]));
    auto got = lex.ProcessWord(input, EnvFromList(&env));
    ++checked;
    if (expected == "error") {
      EXPECT_EQ(testing::CodeOf(got), absl::StatusCode::kInvalidArgument)
          << "line " << lineno << ": " << input << " gave "
          << (got.ok() ? *got : "");
    } else {
      ASSERT_TRUE(got.ok())
          << "line " << lineno << ": " << input << ": " << got.status();
      EXPECT_EQ(*got, expected) << "line " << lineno << ": " << input;
    }
  }
  EXPECT_GT(checked, 200);
}

// BuildKit's wordsTest vectors: "input | w1,w2" with "ENV k=v" lines.
TEST(ShellLexVectors, WordsTest) {
  std::string shared = stagefarm::testing::SharedDir();
  if (shared.empty())
    GTEST_SKIP() << "../shared is absent (set STAGEFARM_SHARED)";
  std::ifstream in(shared + "/corpus/buildkit-shell/wordsTest");
  ASSERT_TRUE(in);
  std::vector<std::string> env;
  ShellLex lex;
  std::string line;
  int checked = 0, lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t.empty() || t[0] == '#') continue;
    if (absl::ConsumePrefix(&t, "ENV ")) {
      env.push_back(
          std::string(absl::StripLeadingAsciiWhitespace(line.substr(4))));
      continue;
    }
    size_t bar = line.find('|');
    ASSERT_NE(bar, std::string::npos) << "line " << lineno;
    std::string input(absl::StripAsciiWhitespace(line.substr(0, bar)));
    std::string expected(
        absl::StripLeadingAsciiWhitespace(line.substr(bar + 1)));
    auto got = lex.ProcessWords(input, EnvFromList(&env));
    ++checked;
    if (expected == "error") {
      EXPECT_EQ(testing::CodeOf(got), absl::StatusCode::kInvalidArgument)
          << "line " << lineno << ": " << input;
      continue;
    }
    ASSERT_TRUE(got.ok()) << "line " << lineno << ": " << got.status();
    std::vector<std::string> want = absl::StrSplit(expected, ',');
    EXPECT_EQ(*got, want) << "line " << lineno << ": " << input;
  }
  EXPECT_GT(checked, 20);
}

TEST(ShellLexTest, PatternOperators) {
  std::vector<std::string> env = {"P=/usr/local/bin/tool.tar.gz", "E="};
  ShellLex lex;
  auto x = [&](absl::string_view w) {
    auto r = lex.ProcessWord(w, EnvFromList(&env));
    return r.ok() ? *r : "ERROR: " + std::string(r.status().message());
  };
  EXPECT_EQ(x("${P#*/}"), "usr/local/bin/tool.tar.gz");
  EXPECT_EQ(x("${P##*/}"), "tool.tar.gz");
  EXPECT_EQ(x("${P%.*}"), "/usr/local/bin/tool.tar");
  EXPECT_EQ(x("${P%%.*}"), "/usr/local/bin/tool");
  EXPECT_EQ(x("${P/local/opt}"), "/usr/opt/bin/tool.tar.gz");
  EXPECT_EQ(x("${P//o/0}"), "/usr/l0cal/bin/t00l.tar.gz");
  EXPECT_EQ(x("${P/[lb]?[ac]*\\//X}"), "/usr/Xtool.tar.gz");
  EXPECT_EQ(x("${U-default}"), "default");
  EXPECT_EQ(x("${E-default}"), "");
  EXPECT_EQ(x("${E:-default}"), "default");
  EXPECT_EQ(x("${E+set}"), "set");
  EXPECT_EQ(x("${U+set}"), "");
  EXPECT_EQ(x("${U:?needs a value}"), "ERROR: U: needs a value");
}

TEST(ShellLexTest, ReferencedNamesAndSkipUnset) {
  ShellLex lex;
  EXPECT_EQ(lex.ReferencedNames("$A ${B:-$C} '$D' \\$E"),
            (std::vector<std::string>{"A", "C", "B"}));
  ShellLex keep({.escape = '\\',
                 .raw_quotes = false,
                 .raw_escapes = false,
                 .skip_unset = true});
  std::vector<std::string> env = {"A=1"};
  EXPECT_EQ(*keep.ProcessWord("$A-$B-${C:-x}", EnvFromList(&env)),
            "1-$B-${C:-x}");
}

TEST(ShellLexTest, BacktickEscape) {
  ShellLex lex({.escape = '`'});
  std::vector<std::string> env = {"X=1"};
  EXPECT_EQ(*lex.ProcessWord("a`$X\\b", EnvFromList(&env)), "a$X\\b");
}

TEST(ShellLexNestingTest, DeepNestingIsAnErrorNotACrash) {
  std::string word = "x";
  for (int i = 0; i < 20000; ++i) word = "${a:-" + word + "}";
  ShellLex lex;
  auto out = lex.ProcessWord(
      word, [](absl::string_view) { return std::optional<std::string>(); });
  ASSERT_EQ(testing::CodeOf(out), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("nested deeper than 100"),
            std::string::npos)
      << out.status();
  std::string fine = "x";
  for (int i = 0; i < 50; ++i) fine = "${a:-" + fine + "}";
  auto ok = lex.ProcessWord(
      fine, [](absl::string_view) { return std::optional<std::string>(); });
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "x");
}

}  // namespace
}  // namespace stagefarm::dockerfile
