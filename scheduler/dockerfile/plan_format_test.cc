#include "scheduler/dockerfile/plan_format.h"

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
  std::string dot = PlanAsDot(*plan);
  EXPECT_NE(dot.find("s0 -> s2;"), std::string::npos);
  EXPECT_NE(dot.find("s1 -> s2;"), std::string::npos);
  EXPECT_NE(dot.find("{ rank=same; s0; s1; }"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::dockerfile
