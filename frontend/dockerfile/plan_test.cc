// Planning cases from the behaviour spec
// (../shared/spec/dockerfile-semantics.md, sections A, B and I), with the
// expected result or error text.
#include "frontend/dockerfile/plan.h"

#include <gtest/gtest.h>

namespace stagefarm::dockerfile {
namespace {

absl::StatusOr<Plan> P(absl::string_view text, PlanOptions options = {}) {
  return PlanDockerfile(text, options);
}

std::string ErrorOf(absl::string_view text, PlanOptions options = {}) {
  auto plan = P(text, options);
  return plan.ok() ? "(no error)" : std::string(plan.status().message());
}

bool Contains(const std::string& s, absl::string_view part) {
  return s.find(std::string(part)) != std::string::npos;
}

TEST(PlanSpecA, A1ImplicitImageInCopyFrom) {
  auto plan = P("FROM scratch\nCOPY --from=busybox /etc/passwd test\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->stages[0].images, std::vector<std::string>{"busybox"});
  EXPECT_TRUE(plan->stages[0].depends_on.empty());
}

TEST(PlanSpecA, A2StageNameHidesImage) {
  auto plan =
      P("FROM busybox AS golang\nRUN echo\nFROM scratch\nCOPY --from=golang "
        "/usr/bin/go go\n");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->stages[1].depends_on, std::vector<int>{0});
  EXPECT_TRUE(plan->stages[1].images.empty());
}

TEST(PlanSpecA, A3CaseInsensitiveNamesAndTarget) {
  const char* text =
      "FROM scratch AS STAge0\nCOPY foo bar\nFROM scratch AS staGE1\n"
      "COPY --from=staGE0 bar baz\nFROM scratch\nCOPY --from=stage1 baz bax\n";
  PlanOptions options;
  options.target = "Stage1";
  auto plan = P(text, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->target, 1);
  EXPECT_TRUE(plan->stages[0].needed);
  EXPECT_TRUE(plan->stages[1].needed);
  EXPECT_FALSE(plan->stages[2].needed);
  EXPECT_EQ(plan->schedule, (std::vector<std::vector<int>>{{0}, {1}}));
}

TEST(PlanSpecA, A4LaterStageIsRejected) {
  std::string e = ErrorOf(
      "FROM busybox AS target\nCOPY --from=build / /out\nFROM alpine AS build\n"
      "COPY /Dockerfile /d2\nFROM target\n");
  EXPECT_TRUE(Contains(e, "cannot copy from stage")) << e;
  EXPECT_TRUE(Contains(e, "needs to be defined before current stage")) << e;
  EXPECT_TRUE(Contains(e, "Dockerfile:2:")) << e;
}

TEST(PlanSpecA, A5NumericIndex) {
  auto plan =
      P("FROM scratch AS foo\nENV FOO bar\nFROM foo\nCOPY --from=foo f1 "
        "/\nCOPY --from=0 f2 /\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->stages[1].base_stage, 0);
  EXPECT_EQ(plan->stages[1].depends_on, std::vector<int>{0});
}

TEST(PlanSpecA, A6UnknownTargetSuggests) {
  PlanOptions options;
  options.target = "bulid";
  EXPECT_EQ(
      ErrorOf("FROM scratch AS build\nCOPY Dockerfile /out\nFROM scratch\n"
              "COPY --from=build /out /\n",
              options),
      "target stage \"bulid\" could not be found (did you mean build?)");
  options.target = "nosuch";
  EXPECT_TRUE(Contains(ErrorOf("FROM scratch AS foo\nFROM foo\n", options),
                       "target stage \"nosuch\" could not be found"));
}

TEST(PlanSpecA, A7OnlyArgsHasNoStages) {
  EXPECT_TRUE(Contains(ErrorOf("ARG foo=bar\n"),
                       "dockerfile contains no stages to build"));
}

TEST(PlanSpecA, A8CircularDependencies) {
  EXPECT_TRUE(
      Contains(ErrorOf("FROM busybox AS stage0\nCOPY --from=stage0 f1 /sub/\n"),
               "circular dependency detected on stage: stage0"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\n"
                       "FROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\n"
                       "FROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n"),
               "circular dependency detected on stage: stage0"));
}

TEST(PlanSpecA, A9EmptyImageReference) {
  EXPECT_TRUE(Contains(ErrorOf("FROM \"\" AS foo\n"), "should not be blank"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM ${BLANK} AS foo\n"), "should not be blank"));
}

TEST(PlanSpecA, A10DefaultTargetIsLastStage) {
  auto plan = P(
      "\n# build defines stage for compiling the binary\nFROM alpine AS build\n"
      "RUN true\n\nFROM busybox as second\nRUN false\n\nFROM alpine\nRUN "
      "false\n\n"
      "# binary returns the compiled binary\nFROM second AS binary\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->stages.size(), 4u);
  EXPECT_EQ(plan->target, 3);
  EXPECT_EQ(plan->stages[0].line, 3);
  EXPECT_EQ(plan->stages[1].name, "second");
  EXPECT_EQ(plan->stages[2].DisplayName(), "stage-2");
  EXPECT_EQ(plan->stages[3].line, 13);
  EXPECT_EQ(plan->stages[3].base_stage, 1);
  EXPECT_FALSE(plan->stages[0].needed);
  EXPECT_FALSE(plan->stages[2].needed);
}

TEST(PlanSpecA, A13VariableInFromIsRejected) {
  EXPECT_TRUE(
      Contains(ErrorOf("FROM scratch\nCOPY --from=$FOO . .\n"),
               "variable expansion is not supported for --from, define a new "
               "stage with FROM using ARG from global scope as a workaround"));
  EXPECT_TRUE(Contains(
      ErrorOf("FROM busybox\nENV ttt=test\nRUN "
              "--mount=from=$ttt,type=cache,target=/tmp ls\n"),
      "'from' doesn't support variable expansion, define alias stage instead"));
}

TEST(PlanSpecA, A14CopyCannotTakeAUrl) {
  EXPECT_TRUE(Contains(
      ErrorOf("FROM scratch\nCOPY "
              "http://github.com/moby/buildkit/blob/master/README.md /\n"),
      "source can't be a URL for COPY"));
  EXPECT_TRUE(P("FROM scratch\nADD "
                "http://github.com/moby/buildkit/blob/master/README.md /\n")
                  .ok());
}

TEST(PlanSpecB, B1GlobalArgOverriddenByBuildArg) {
  PlanOptions options;
  options.build_args["tag"] = "latest";
  auto plan = P("ARG tag=nosuchtag\nFROM busybox:${tag}\n", options);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->stages[0].base, "busybox:latest");
  EXPECT_EQ(P("ARG tag=nosuchtag\nFROM busybox:${tag}\n")->stages[0].base,
            "busybox:nosuchtag");
}

TEST(PlanSpecB, B2RequiredGlobalArg) {
  const char* text = "ARG FOO=${FOO:?\"custom error\"}\nFROM busybox\n";
  EXPECT_TRUE(Contains(ErrorOf(text), "FOO: custom error"));
  PlanOptions options;
  options.build_args["FOO"] = "bar";
  EXPECT_TRUE(P(text, options).ok());
}

TEST(PlanSpecB, B4B5GlobalArgsUseEarlierOnes) {
  auto plan = P(
      "ARG a1=\"foo bar\" a2=box\nARG a3=\"$a2-foo\"\nFROM busy$a2 AS build\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->stages[0].base, "busybox");
  ASSERT_EQ(plan->global_args.size(), 3u);
  EXPECT_EQ(plan->global_args[0].value, "foo bar");
  EXPECT_EQ(plan->global_args[2].value, "box-foo");
  auto quoted =
      P("ARG a1=\"box\"\nARG a2=\"$a1-foo\"\nFROM busy$a1 AS build\n");
  EXPECT_EQ(quoted->stages[0].base, "busybox");
  EXPECT_EQ(quoted->global_args[1].value, "box-foo");
}

TEST(PlanSpecB, B8PatternOperatorInFrom) {
  auto plan = P("ARG image=idlebox\nFROM busy${image#idle} AS build\n");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->stages[0].base, "busybox");
}

TEST(PlanSpecB, B12PlatformArgsInFromWithoutDeclaration) {
  auto plan =
      P("FROM scratch AS build-linux\nCOPY foo bar\nFROM "
        "build-${TARGETOS}\nCOPY foo2 bar2\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->stages[1].base, "build-linux");
  EXPECT_EQ(plan->stages[1].base_stage, 0);
}

TEST(PlanSpecB, B14UndeclaredArgInFrom) {
  std::string e = ErrorOf("FROM --platform=$BULIDPLATFORM scratch\n");
  EXPECT_TRUE(Contains(e,
                       "empty platform value from expression $BULIDPLATFORM "
                       "(did you mean BUILDPLATFORM?)"))
      << e;
  auto plan = P("ARG tag=latest\nFROM busybox:${tag}${version} AS b\n");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->stages[0].base, "busybox:latest");
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_TRUE(Contains(plan->warnings[0], "$version"));
  auto quiet = P("ARG DEBUG\nFROM scra${DEBUG:-tch}\n");
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ(quiet->stages[0].base, "scratch");
  EXPECT_TRUE(quiet->warnings.empty());
  auto set_empty = P("ARG DEBUG=\"\"\nFROM scratch${DEBUG-@bogus}\n");
  ASSERT_TRUE(set_empty.ok());
  EXPECT_EQ(set_empty->stages[0].base, "scratch");
  EXPECT_TRUE(P("FROM --platform=$BUILDPLATFORM scratch\n")->warnings.empty());
}

TEST(PlanSpecI, I1ErrorLocations) {
  EXPECT_TRUE(Contains(ErrorOf("from alpine\nenv\n"), "Dockerfile:2:"));
  EXPECT_EQ(ErrorOf("from alpine\n\nrun what\nwhat x\n"),
            "Dockerfile:4:1: unknown instruction: what");
  EXPECT_EQ(ErrorOf("from alpine\n\ncopy --foo=bar / /\n"),
            "Dockerfile:3:6: unknown flag: --foo (did you mean from?)");
  EXPECT_EQ(
      ErrorOf(
          "FROM alpine\nRUN --mount=type=cache,target=/x --netwrk=none true\n"),
      "Dockerfile:2:34: unknown flag: --netwrk (did you mean network?)");
  EXPECT_EQ(ErrorOf("FROM alpine\nRUNN echo\n"),
            "Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)");
}

TEST(PlanSpecA, A10TargetDescriptions) {
  auto plan = P(
      "\n# build defines stage for compiling the binary\nFROM alpine AS build\n"
      "RUN true\n\n# binary returns the compiled binary\nFROM build AS "
      "binary\n");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->target_description, "returns the compiled binary");
  EXPECT_EQ(DescriptionFor("build", plan->stages[0].comments),
            "defines stage for compiling the binary");
}

TEST(PlanSpecB, B17ArgsThatAffectTheTarget) {
  const char* text =
      "ARG inherited=box\nARG inherited2=box2\nARG unused=abc${inherited2}\n"
      "# sfx is a suffix\nARG sfx=\"usy${inherited}\"\nFROM b${sfx} AS first\n"
      "# this is not assigned to anything\n\nARG FOO=123\n# BAR is a "
      "number\nARG BAR=456\n"
      "RUN true\nFROM alpine${unused} AS second\nARG BAZ\nRUN true\n"
      "FROM scratch AS third\nARG ABC=a\n# check=skip=all\nARG password\n"
      "# alternate_password will show up in the outline\n# check=skip=all\n"
      "ARG alternate_password\n# target defines build target\nFROM third AS "
      "target\n"
      "COPY --from=first /etc/passwd /\nFROM second\n";
  PlanOptions options;
  options.target = "target";
  options.build_args["BAR"] = "678";
  auto plan = P(text, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<std::string> got;
  for (const OutlineArg& a : plan->outline) {
    got.push_back(a.name + "=" + a.value.value_or("<unset>") +
                  (a.description.empty() ? "" : " (" + a.description + ")"));
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{
                "inherited=box", "sfx=usybox (is a suffix)", "FOO=123",
                "BAR=678 (is a number)", "ABC=a", "password=<unset>",
                "alternate_password=<unset> (will show up in the outline)"}));
  EXPECT_EQ(plan->target_description, "defines build target");
}

TEST(PlanSpecD, D6UnknownInstructions) {
  std::string e = ErrorOf("FROM busybox\nFNTRYPOINT [\"a\"]\n");
  EXPECT_TRUE(Contains(e, "unknown instruction: FNTRYPOINT")) << e;
  EXPECT_TRUE(Contains(e, "did you mean ENTRYPOINT?")) << e;
  EXPECT_TRUE(
      Contains(ErrorOf("FROM busybox\nFOO bar\n"), "unknown instruction: FOO"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM busybox\nfoo bar\n"), "unknown instruction: foo"));
}

TEST(PlanSpecD, D7ArgumentCountsAndFlags) {
  for (const char* k : {"MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"}) {
    EXPECT_TRUE(Contains(ErrorOf(std::string("FROM a\n") + k + "\n"),
                         "exactly one argument"))
        << k;
  }
  for (const char* k :
       {"ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME"}) {
    EXPECT_TRUE(Contains(ErrorOf(std::string("FROM a\n") + k + "\n"),
                         "at least one argument"))
        << k;
  }
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nCOPY\t\nRUN x\n"),
                       "COPY requires at least two arguments"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nADD arg1\n"),
                       "Destination could not be determined"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM a\nMAINTAINER --boo x\n"), "unknown flag: --boo"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nONBUILD ONBUILD RUN x\n"),
                       "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nHEALTHCHECK --interval=50ns CMD x\n"),
                       "cannot be less than 1ms"));
  EXPECT_TRUE(P("FROM a\nHEALTHCHECK --interval=0ms CMD x\n").ok());
  std::string mont = ErrorOf("FROM a\nRUN --mont=type=cache,target=/x true\n");
  EXPECT_TRUE(Contains(mont, "unknown flag: --mont")) << mont;
  EXPECT_TRUE(Contains(mont, "did you mean mount?")) << mont;
  std::string typ = ErrorOf("FROM a\nRUN --mount=typ=tmpfs,target=/x true\n");
  EXPECT_TRUE(Contains(typ, "unexpected key 'typ'")) << typ;
  EXPECT_TRUE(Contains(typ, "did you mean type?")) << typ;
  std::string tmp = ErrorOf("FROM a\nRUN --mount=type=tmp,target=/x true\n");
  EXPECT_TRUE(Contains(tmp, "unsupported mount type \"tmp\"")) << tmp;
  EXPECT_TRUE(Contains(tmp, "did you mean tmpfs?")) << tmp;
}

TEST(PlanSpecG, G1G2OnbuildTriggersOfAStageBringDependencies) {
  auto plan =
      P("FROM alpine AS src\nRUN true\nFROM busybox AS base\n"
        "ONBUILD COPY --from=src /in/file /out/foo\nFROM base AS mid\n"
        "RUN cp /out/foo /out/bar\nFROM scratch\nCOPY --from=mid /out/bar /\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->stages[2].depends_on, (std::vector<int>{0, 1}));
  EXPECT_TRUE(plan->stages[0].depends_on.empty());
  EXPECT_TRUE(
      plan->stages[1].depends_on.empty());  // the trigger does not run in base
  EXPECT_EQ(plan->schedule, (std::vector<std::vector<int>>{{0, 1}, {2}, {3}}));
}

TEST(PlanSpecH, H6H7Heredocs) {
  auto plan = P(
      "FROM busybox AS build\nWORKDIR /dest\n"
      "RUN cat <<EOF1 | tr '[:upper:]' '[:lower:]' > ./out1; \\\n"
      "\tcat <<EOF2 | tr '[:lower:]' '[:upper:]' > ./out2\nhello WORLD\nEOF1\n"
      "HELLO world\nEOF2\nRUN <<EOF 3<<IN1 awk -f -\nBEGIN "
      "{}\nEOF\nhello\nIN1\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  const auto& steps = plan->stages[0].instructions;
  ASSERT_EQ(steps.size(), 3u);
  ASSERT_EQ(steps[1].heredocs.size(), 2u);
  EXPECT_EQ(steps[1].heredocs[0].content, "hello WORLD\n");
  EXPECT_EQ(steps[1].heredocs[1].content, "HELLO world\n");
  ASSERT_EQ(steps[2].heredocs.size(), 2u);
  EXPECT_EQ(steps[2].heredocs[1].fd, 3);
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nCOPY /foo <<EOF\nEOF\n"),
                       "COPY cannot accept a heredoc as a destination"));
  auto exec = P("FROM a\nRUN [\"<<EOF\"]\n");
  ASSERT_TRUE(exec.ok());
  EXPECT_TRUE(exec->stages[0].instructions[0].heredocs.empty());
}

TEST(PlanSchedule, IndependentStagesRunTogether) {
  auto plan =
      P("FROM busybox AS a\nRUN sleep 3\nFROM busybox AS b\nRUN sleep 3\n"
        "FROM busybox AS c\nRUN sleep 3\nFROM busybox AS unused\nRUN true\n"
        "FROM a AS d\nCOPY --from=b / /b\nFROM scratch\nCOPY --from=c / /c\n"
        "COPY --from=d / /d\nRUN --mount=from=b,target=/m true\n");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->schedule,
            (std::vector<std::vector<int>>{{0, 1, 2}, {4}, {5}}));
  EXPECT_FALSE(plan->stages[3].needed);
  EXPECT_EQ(plan->stages[5].depends_on, (std::vector<int>{1, 2, 4}));
}

TEST(PlanWarnings, UnusedBuildArgs) {
  PlanOptions options;
  options.build_args = {{"USED", "1"}, {"NOPE", "2"}, {"http_proxy", "x"}};
  auto plan = P("FROM busybox\nARG USED\n", options);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_EQ(plan->warnings[0],
            "one or more build args [NOPE] were not consumed");
}

TEST(Instructions, FlagAndArgumentErrors) {
  EXPECT_TRUE(Contains(ErrorOf("FROM a b\n"),
                       "FROM requires either one or three arguments"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM a AS 1x\n"), "invalid name for build stage"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nCOPY --link=maybe a b\n"),
                       "expecting boolean value for flag --link"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nCOPY onlyone\n"),
                       "requires at least two arguments"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM a\nADD --from=x a b\n"), "unknown flag: --from"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nSHELL sh -c\n"), "JSON form"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nHEALTHCHECK --interval=5x CMD true\n"),
                       "invalid duration for --interval"));
  EXPECT_TRUE(
      Contains(ErrorOf("FROM a\nRUN --mount=type=weird,target=/x true\n"),
               "unsupported mount type"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nONBUILD FROM b\n"),
                       "FROM isn't allowed as an ONBUILD trigger"));
  EXPECT_TRUE(Contains(ErrorOf("FROM a\nUSER\n"),
                       "USER requires exactly one argument"));
  EXPECT_TRUE(Contains(ErrorOf("RUN x\nFROM a\n"),
                       "no build stage in current context"));
  EXPECT_TRUE(
      P("FROM a\nCOPY --chown=1:1 --chmod=0755 --link --parents --exclude=*.md "
        "--exclude=x . /\nADD --checksum=sha256:abc https://x/y.tgz /\n"
        "HEALTHCHECK --interval=30s --retries=3 CMD curl -f x\n")
          .ok());
}

TEST(FindStage, NumbersNamesAndImages) {
  auto plan = PlanDockerfile(
      "FROM busybox AS Build\nFROM busybox AS build\nFROM scratch\n", {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(FindStage(plan->stages, "0"), 0);
  EXPECT_EQ(FindStage(plan->stages, "2"), 2);
  EXPECT_EQ(FindStage(plan->stages, "3"), -1);     // no such stage: an image
  EXPECT_EQ(FindStage(plan->stages, "+1"), -1);    // not a stage number
  EXPECT_EQ(FindStage(plan->stages, "BUILD"), 0);  // the first of the name
  EXPECT_EQ(FindStage(plan->stages, "alpine"), -1);
  EXPECT_EQ(FindStage(plan->stages, ""), -1);
}

TEST(PlanPlatforms, StagesBuildForTheirOwnPlatformOrTheirBases) {
  PlanOptions o;
  o.target_platform = "linux/arm64";
  o.build_platform = "linux/amd64";
  auto plan =
      P("FROM --platform=$BUILDPLATFORM busybox AS build\n"
        "FROM build AS more\n"
        "FROM busybox AS run\n"
        "FROM --platform=linux/$TARGETARCH scratch AS pinned\n"
        "FROM more\n",
        o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(StagePlatform(*plan, 0, o), "linux/amd64");
  EXPECT_EQ(StagePlatform(*plan, 1, o), "linux/amd64");
  EXPECT_EQ(StagePlatform(*plan, 2, o), "linux/arm64");
  EXPECT_EQ(StagePlatform(*plan, 3, o), "linux/arm64");
  EXPECT_EQ(StagePlatform(*plan, 4, o), "linux/amd64");
  auto args = PlatformArgs(o);
  EXPECT_EQ(args["TARGETARCH"], "arm64");
  EXPECT_EQ(args["BUILDARCH"], "amd64");
  EXPECT_EQ(args["TARGETVARIANT"], "");
}

}  // namespace
}  // namespace stagefarm::dockerfile
