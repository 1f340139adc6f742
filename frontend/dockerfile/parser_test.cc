#include "frontend/dockerfile/parser.h"

#include <gtest/gtest.h>

#include "frontend/dockerfile/dump.h"
#include "frontend/dockerfile/text.h"
#include "tests/status_code.h"

namespace stagefarm::dockerfile {
namespace {

std::string DumpOf(absl::string_view text) {
  auto parsed = Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? DumpBuildkitResult(*parsed) : "";
}

// A byte that is not UTF-8 inside a JSON array is read as U+FFFD, as Go's
// decoder does; the array stays an array (exec form), never shell form.
TEST(ParserTest, JsonArraysTakeBytesThatAreNotUtf8) {
  auto parsed = Parse(
      "FROM busybox\n"
      "CMD [\"echo\", \"caf\xe9\"]\n"
      "ENTRYPOINT [\"a\\u00e9\", \"\xff\xfe x\"]\n"
      "RUN echo caf\xe9\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->children.size(), 4u);
  const Node& cmd = parsed->children[1];
  EXPECT_TRUE(cmd.json);
  ASSERT_EQ(cmd.args.size(), 2u);
  EXPECT_EQ(cmd.args[1], "caf\xEF\xBF\xBD");
  const Node& entrypoint = parsed->children[2];
  EXPECT_TRUE(entrypoint.json);
  ASSERT_EQ(entrypoint.args.size(), 2u);
  EXPECT_EQ(entrypoint.args[0], "a\xC3\xA9");
  EXPECT_EQ(entrypoint.args[1], "\xEF\xBF\xBD\xEF\xBF\xBD x");
  // Shell form keeps the bytes as written.
  const Node& run = parsed->children[3];
  EXPECT_FALSE(run.json);
  ASSERT_EQ(run.args.size(), 1u);
  EXPECT_EQ(run.args[0], "echo caf\xe9");
}

TEST(ParserTest, HeredocBodiesAreReadAndNotParsed) {
  auto parsed = Parse(
      "FROM busybox\n"
      "RUN <<EOF\n"
      "FROM not-an-instruction\n"
      "echo $HOME\n"
      "EOF\n"
      "COPY <<-'A' 3<<B /dest/\n"
      "\t\tfirst $X\n"
      "\tA\n"
      "second\n"
      "B\n"
      "CMD [\"sh\"]\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->children.size(), 4u);
  const Node& run = parsed->children[1];
  ASSERT_EQ(run.heredocs.size(), 1u);
  EXPECT_EQ(run.heredocs[0].name, "EOF");
  EXPECT_EQ(run.heredocs[0].content, "FROM not-an-instruction\necho $HOME\n");
  EXPECT_TRUE(run.heredocs[0].expand);
  EXPECT_EQ(run.start_line, 2);
  EXPECT_EQ(run.end_line, 5);
  const Node& copy = parsed->children[2];
  ASSERT_EQ(copy.heredocs.size(), 2u);
  EXPECT_EQ(copy.heredocs[0].name, "A");
  EXPECT_TRUE(copy.heredocs[0].chomp);
  EXPECT_FALSE(copy.heredocs[0].expand);
  EXPECT_EQ(copy.heredocs[0].content, "first $X\n");
  EXPECT_EQ(copy.heredocs[1].name, "B");
  EXPECT_EQ(copy.heredocs[1].fd, 3);
  EXPECT_EQ(copy.heredocs[1].content, "second\n");
  EXPECT_EQ(DumpBuildkitResult(*parsed),
            "(from \"busybox\")\n(run \"<<EOF\")\n"
            "(copy \"<<-'A'\" \"3<<B\" \"/dest/\")\n(cmd \"sh\")\n");
}

TEST(ParserTest, QuotedOrJsonHeredocMarkersAreNotHeredocs) {
  auto parsed = Parse("FROM x\nRUN \"<<EOF\"\nRUN [\"<<EOF\"]\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->children[1].heredocs.empty());
  EXPECT_TRUE(parsed->children[2].heredocs.empty());
}

// Found by the fuzzer: a file-descriptor prefix too long for an int threw.
TEST(ParserTest, HugeHeredocFdIsNotAHeredoc) {
  auto parsed = Parse("FROM x\nCOPY 07777777777777777777<<y /d\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->children[1].heredocs.empty());
}

TEST(ParserTest, UnterminatedHeredocNamesFileAndLine) {
  auto parsed = Parse("FROM x\n\nRUN <<EOF\necho\n", "app/Dockerfile");
  ASSERT_EQ(testing::CodeOf(parsed), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message().substr(0, 19), "app/Dockerfile:3:5:");
  EXPECT_NE(parsed.status().message().find("unterminated heredoc"),
            std::string::npos);
}

TEST(ParserTest, Directives) {
  auto parsed = Parse(
      "# syntax=docker/dockerfile:1\n# ESCAPE = `\n# check=skip=all\nFROM "
      "x\nRUN a `\n  b\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->directives.syntax, "docker/dockerfile:1");
  EXPECT_EQ(parsed->directives.escape, '`');
  EXPECT_EQ(parsed->directives.check, "skip=all");
  EXPECT_EQ(parsed->children[1].args[0], "a   b");

  auto twice = Parse("# escape=`\n# escape=\\\nFROM x\n");
  ASSERT_EQ(testing::CodeOf(twice), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(twice.status().message().find("only one escape parser directive"),
            std::string::npos);
  auto bad = Parse("# escape=x\nFROM x\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("invalid escape token"),
            std::string::npos);
  // After an instruction, a directive is just a comment.
  auto late = Parse("FROM x\n# escape=`\nRUN a \\\n b\n");
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->directives.escape, '\\');
}

TEST(ParserTest, ByteOrderMarkAndCrlf) {
  EXPECT_EQ(DumpOf("\xEF\xBB\xBF"
                   "FROM x\r\nRUN a \\\r\n b\r\n"),
            "(from \"x\")\n(run \"a  b\")\n");
}

TEST(ParserTest, FlagsKeepTheirOwnQuotingRules) {
  auto parsed = Parse(
      "FROM x\nCOPY --chown=\"a b\" --from=build 'x y' /d\n"
      "ONBUILD COPY --from=x . /\nRUN --mount=type=cache,target=/root/.cache "
      "go build\n");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->children[1].flags,
            (std::vector<std::string>{"--chown=a b", "--from=build"}));
  EXPECT_EQ(parsed->children[1].args,
            (std::vector<std::string>{"'x", "y'", "/d"}));
  ASSERT_NE(parsed->children[2].inner, nullptr);
  EXPECT_EQ(parsed->children[2].inner->flags,
            std::vector<std::string>{"--from=x"});
  EXPECT_EQ(
      DumpBuildkitResult(*parsed),
      "(from \"x\")\n(copy [\"--chown=a b\" \"--from=build\"] \"'x\" \"y'\" "
      "\"/d\")\n"
      "(onbuild (copy [\"--from=x\"] \".\" \"/\"))\n"
      "(run [\"--mount=type=cache,target=/root/.cache\"] \"go build\")\n");
}

TEST(ParserTest, UnknownInstructionKeepsOneEmptyArgument) {
  EXPECT_EQ(DumpOf("FROM x\nFOO bar baz\n"), "(from \"x\")\n(foo \"\")\n");
}

TEST(ParserTest, EnvNewFormNeedsEquals) {
  auto parsed = Parse("FROM x\nENV a=b c\n");
  ASSERT_EQ(testing::CodeOf(parsed), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(),
            "Dockerfile:2:1: Syntax error - can't find = in \"c\". Must be of "
            "the form: name=value");
}

TEST(GoQuoteTest, MatchesStrconvQuote) {
  EXPECT_EQ(GoQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(GoQuote(std::string("\x00\x7f\t", 3)), "\"\\x00\\x7f\\t\"");
  EXPECT_EQ(GoQuote("\xE2\x99\xA5"), "\"\xE2\x99\xA5\"");  // U+2665 printable
  EXPECT_EQ(GoQuote("\xC2\xA0"), "\"\\u00a0\"");           // no-break space
  EXPECT_EQ(GoQuote("\xff"), "\"\\xff\"");                 // invalid UTF-8
  EXPECT_EQ(GoQuote("\xEF\xBB\xBF"), "\"\\ufeff\"");
}

}  // namespace
}  // namespace stagefarm::dockerfile
