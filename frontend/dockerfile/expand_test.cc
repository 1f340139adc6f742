// ARG/ENV scoping cases of the behaviour spec (section B), checked on the
// expanded steps: what a RUN would see and what COPY, ENV, EXPOSE expand to.
#include "frontend/dockerfile/expand.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/status_code.h"

namespace stagefarm::dockerfile {
namespace {

absl::StatusOr<ExpandedStage> X(absl::string_view text, int stage,
                                PlanOptions options = {},
                                std::vector<std::string> base_env = {
                                    "PATH=/usr/bin"}) {
  auto plan = PlanDockerfile(text, options);
  if (!plan.ok()) return plan.status();
  return ExpandStage(*plan, stage, options, base_env);
}

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}
bool HasKey(const std::vector<std::string>& v, const std::string& key) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& kv) {
    return kv.rfind(key + "=", 0) == 0;
  });
}

TEST(ExpandSpecB, B3StageArgDefaultIsEvaluatedOnlyWithoutAValue) {
  const char* text = "FROM scratch\nARG FOO\nARG BAR=${FOO:?\"foo missing\"}\n";
  auto none = X(text, 0);
  ASSERT_EQ(testing::CodeOf(none), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("FOO: foo missing"),
            std::string::npos);
  PlanOptions foo;
  foo.build_args["FOO"] = "123";
  EXPECT_TRUE(X(text, 0, foo).ok());
  PlanOptions bar;
  bar.build_args["BAR"] = "123";
  EXPECT_TRUE(X(text, 0, bar).ok());
}

TEST(ExpandSpecB, B4GlobalArgsMustBeRedeclared) {
  auto s =
      X("ARG a1=\"foo bar\" a2=box\nARG a3=\"$a2-foo\"\nFROM busy$a2 AS build\n"
        "ARG a3 a4=\"123 456\" a1\nRUN echo -n \"$a1:$a3:$a4\" > /out\n"
        "FROM scratch\nCOPY --from=build /out .\n",
        0);
  ASSERT_TRUE(s.ok()) << s.status();
  const auto& env = s->steps[1].run_env;
  EXPECT_TRUE(Has(env, "a1=foo bar"));
  EXPECT_TRUE(Has(env, "a3=box-foo"));
  EXPECT_TRUE(Has(env, "a4=123 456"));
  EXPECT_FALSE(HasKey(env, "a2"));  // not redeclared in the stage
}

TEST(ExpandSpecB, B5QuotedGlobalArgs) {
  auto s =
      X("ARG a1=\"box\"\nARG a2=\"$a1-foo\"\nFROM busy$a1 AS build\nARG a2\n"
        "ARG a3=\"bar-$a2\"\nRUN echo -n $a3 > /out\n",
        0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(Has(s->steps[2].run_env, "a3=bar-box-foo"));
}

TEST(ExpandSpecB, B6TargetStageArg) {
  const char* text =
      "FROM alpine AS base\nWORKDIR /out\nRUN echo -n \"value:$TARGETSTAGE\" > "
      "/out/first\n"
      "ARG TARGETSTAGE\nRUN echo -n \"value:$TARGETSTAGE\" > /out/second\n"
      "FROM scratch AS foo\nCOPY --from=base /out/ /\nFROM scratch\nCOPY "
      "--from=base /out/ /\n";
  auto s = X(text, 0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(HasKey(s->steps[1].run_env, "TARGETSTAGE"));
  EXPECT_TRUE(Has(s->steps[3].run_env, "TARGETSTAGE=default"));
  PlanOptions foo;
  foo.target = "foo";
  EXPECT_TRUE(Has(X(text, 0, foo)->steps[3].run_env, "TARGETSTAGE=foo"));
}

TEST(ExpandSpecB, B7ProxyArgsAndDeclaredArgs) {
  PlanOptions options;
  options.build_args = {{"FOO", "foocontents"},
                        {"http_proxy", "hpvalue"},
                        {"NO_PROXY", "npvalue"}};
  auto s =
      X("FROM busybox AS build\nARG FOO\nARG BAR\nARG BAZ=bazcontent\n"
        "RUN echo -n $HTTP_PROXY::$NO_PROXY::$FOO::$BAR::$BAZ > /out\n",
        0, options);
  ASSERT_TRUE(s.ok()) << s.status();
  const auto& env = s->steps[3].run_env;
  EXPECT_TRUE(Has(env, "HTTP_PROXY=hpvalue"));
  EXPECT_TRUE(Has(env, "http_proxy=hpvalue"));
  EXPECT_TRUE(Has(env, "NO_PROXY=npvalue"));
  EXPECT_TRUE(Has(env, "FOO=foocontents"));
  EXPECT_FALSE(HasKey(env, "BAR"));
  EXPECT_TRUE(Has(env, "BAZ=bazcontent"));
  // Proxies are not recorded as build args of the step (they do not bust the
  // cache).
  for (const KeyValue& kv : s->steps[3].run_args)
    EXPECT_NE(kv.key, "http_proxy");
}

TEST(ExpandSpecB, B8EnvShadowsArgAndOperators) {
  const char* text =
      "ARG image=idlebox\nFROM busy${image#idle} AS build\nARG my_arg\n"
      "ENV my_arg \"my_arg=${my_arg:-def_val}\"\nENV my_trimmed_arg "
      "\"${my_arg%%e*}\"\n"
      "RUN ./myscript.sh $my_arg $my_trimmed_arg\n";
  auto check = [&](PlanOptions options, const std::string& arg,
                   const std::string& trimmed) {
    auto s = X(text, 0, options);
    ASSERT_TRUE(s.ok()) << s.status();
    const auto& env = s->steps[3].run_env;
    EXPECT_TRUE(Has(env, "my_arg=" + arg)) << arg;
    EXPECT_TRUE(Has(env, "my_trimmed_arg=" + trimmed)) << trimmed;
  };
  check({}, "my_arg=def_val", "my_arg=d");
  PlanOptions empty;
  empty.build_args["my_arg"] = "";
  check(empty, "my_arg=def_val", "my_arg=d");
  PlanOptions over;
  over.build_args["my_arg"] = "override";
  check(over, "my_arg=override", "my_arg=ov");
}

TEST(ExpandSpecB, B9UnsetArgIsNotInTheEnvironment) {
  auto s =
      X("FROM busybox AS build\nARG FOO\nARG BAR=\nRUN env > env.txt\n", 0);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(Has(s->steps[2].run_env, "BAR="));
  EXPECT_FALSE(HasKey(s->steps[2].run_env, "FOO"));
}

TEST(ExpandSpecB, B10PercentIsNotSpecial) {
  auto s = X("FROM busybox\nENV myenv foo%sbar\nRUN true\n", 0);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(Has(s->steps[1].run_env, "myenv=foo%sbar"));
}

TEST(ExpandSpecB, B11ExposeExpandsThenSplits) {
  auto s = X(
      "FROM scratch\nARG PORTS=\"3000 4000/udp\"\nEXPOSE $PORTS\nEXPOSE 5000\n",
      0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->steps[1].words, (std::vector<std::string>{"3000", "4000/udp"}));
  EXPECT_EQ(s->steps[2].words, std::vector<std::string>{"5000"});
}

TEST(ExpandSpecB, B13PlatformArgsMustBeDeclaredAndCanBeOverridden) {
  PlanOptions options;
  options.target_platform = "darwin/ppc64le";
  options.build_args["TARGETOS"] = "freebsd";
  auto s =
      X("FROM --platform=$BUILDPLATFORM busybox AS build\nARG "
        "TARGETPLATFORM\nARG TARGETOS\n"
        "RUN echo -n $TARGETPLATFORM $TARGETOS $TARGETARCH\n",
        0, options);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(Has(s->steps[2].run_env, "TARGETPLATFORM=darwin/ppc64le"));
  EXPECT_TRUE(Has(s->steps[2].run_env, "TARGETOS=freebsd"));
  EXPECT_FALSE(HasKey(s->steps[2].run_env, "TARGETARCH"));
}

TEST(ExpandSpecB, B15UndefinedVariableWarnings) {
  auto s =
      X("FROM alpine\nCOPY $foo .\nARG foo=bar\nRUN echo $foo\nCOPY $foo/x "
        "$PATH/y\n",
        0);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->warnings.size(), 1u);
  EXPECT_EQ(s->warnings[0], "Dockerfile:2: Usage of undefined variable '$foo'");
  EXPECT_EQ(s->steps[3].words,
            (std::vector<std::string>{"bar/x", "/usr/bin/y"}));
}

TEST(ExpandSpecB, B16RunHistoryListsArgs) {
  auto s =
      X("FROM busybox\nARG foo=bar\nARG bar=123\nARG foo=bar2\nRUN ls /etc/\n",
        0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->steps[3].history,
            "RUN |2 foo=bar2 bar=123 /bin/sh -c ls /etc/ # buildkit");
}

Heredoc Doc(const std::string& content, bool expand) {
  Heredoc h;
  h.name = "EOF";
  h.content = content;
  h.expand = expand;
  return h;
}

TEST(ExpandSpecH, H2BackslashesAndDollar) {
  std::vector<std::string> env;
  EXPECT_EQ(*ExpandHeredoc(Doc("\\\n", true), env), "\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("\\\\\n", true), env), "\\\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("\\$\n", true), env), "$\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("\"quotes in file\"\n", true), env),
            "\"quotes in file\"\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("\\\n", false), env), "\\\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("\\$\n", false), env), "\\$\n");
}

TEST(ExpandSpecH, H3VariablesInHeredocs) {
  std::vector<std::string> env = {"name=world"};
  EXPECT_EQ(*ExpandHeredoc(Doc("Hello ${name}!\n", true), env),
            "Hello world!\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("Hello ${name}!\n", false), env),
            "Hello ${name}!\n");
  EXPECT_EQ(*ExpandHeredoc(Doc("'${name}'\n", true), env), "'world'\n");
}

TEST(ExpandSpecH, H4DashStripsLeadingTabs) {
  auto parsed =
      Parse("FROM a\nCOPY <<EOF a\n\tfoo\nEOF\nCOPY <<-EOF b\n\tbar\n\tEOF\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->children[1].heredocs[0].content, "\tfoo\n");
  EXPECT_EQ(parsed->children[2].heredocs[0].content, "bar\n");
}

TEST(ExpandTest, EnvPairsSeeThePreviousScopeAndLabelsExpand) {
  auto s = X(
      "FROM x\nENV a=1\nENV a=2 b=$a\nLABEL \"k-$a\"=\"v $b\"\nWORKDIR /w/$b\n"
      "USER ${U:-app}\nCOPY --chown=$a:$b src* /dst/$a/\n",
      0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->steps[1].pairs[1].value, "1");
  EXPECT_EQ(s->steps[2].pairs[0].key, "k-2");
  EXPECT_EQ(s->steps[2].pairs[0].value, "v 1");
  EXPECT_EQ(s->steps[3].words, std::vector<std::string>{"/w/1"});
  EXPECT_EQ(s->steps[4].words, std::vector<std::string>{"app"});
  EXPECT_EQ(s->steps[5].chown, "2:1");
  EXPECT_EQ(s->steps[5].words, (std::vector<std::string>{"src*", "/dst/2/"}));
  EXPECT_TRUE(Has(s->env, "b=1"));
}

}  // namespace
}  // namespace stagefarm::dockerfile
