#include "frontend/dockerfile/plan_format.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace stagefarm::dockerfile {
namespace {

const char* kText =
    "FROM golang:1.19 AS build\nRUN go build\n"
    "FROM busybox AS assets\nRUN true\n"
    "FROM scratch\nCOPY --from=build /app /app\nCOPY --from=assets /a /a\n";

TEST(PlanFormatTest, JsonHasStagesAndSchedule) {
  auto plan = PlanDockerfile(kText, {});
  ASSERT_TRUE(plan.ok());
  auto j = nlohmann::json::parse(PlanAsJson(*plan));
  ASSERT_EQ(j["stages"].size(), 3u);
  EXPECT_EQ(j["stages"][0]["index"], 0);
  EXPECT_EQ(j["stages"][0]["name"], "build");
  EXPECT_EQ(j["stages"][0]["base"], "golang:1.19");
  EXPECT_EQ(j["stages"][2]["depends_on"], nlohmann::json({0, 1}));
  EXPECT_EQ(j["stages"][2]["needed"], true);
  EXPECT_EQ(j["schedule"], nlohmann::json({{0, 1}, {2}}));
}

TEST(PlanFormatTest, TextAndDot) {
  auto plan = PlanDockerfile(kText, {});
  ASSERT_TRUE(plan.ok());
  std::string text = PlanAsText(*plan);
  EXPECT_NE(text.find("stage 2 stage-2 (line 5): FROM scratch  [target]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  1: build, assets\n  2: stage-2\n"), std::string::npos)
      << text;
  auto with_args =
      PlanDockerfile("ARG V=1\n# V is the version\nFROM x:$V\n", {});
  ASSERT_TRUE(with_args.ok());
  EXPECT_NE(PlanAsText(*with_args)
                .find("build args that affect the target:\n  V=1\n"),
            std::string::npos)
      << PlanAsText(*with_args);
  auto j = nlohmann::json::parse(PlanAsJson(*with_args));
  EXPECT_EQ(j["args"][0]["name"], "V");
  EXPECT_EQ(j["args"][0]["value"], "1");
  std::string dot = PlanAsDot(*plan);
  EXPECT_NE(dot.find("s0 -> s2;"), std::string::npos);
  EXPECT_NE(dot.find("s1 -> s2;"), std::string::npos);
  EXPECT_NE(dot.find("{ rank=same; s0; s1; }"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::dockerfile
