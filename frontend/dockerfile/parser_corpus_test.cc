// BuildKit's parser test cases (../shared/corpus): every positive case dumps
// byte-identical to its result file, every negative case is an error, the
// line spans of the line case match, and every real-world Dockerfile parses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "frontend/dockerfile/dump.h"
#include "frontend/dockerfile/parser.h"
#include "frontend/dockerfile/plan.h"
#include "tests/shared_dir.h"
#include "tests/status_code.h"

namespace stagefarm::dockerfile {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_ = stagefarm::testing::SharedDir();
    if (shared_.empty()) {
      GTEST_SKIP() << "../shared is absent (set STAGEFARM_SHARED): the corpus "
                      "tests cannot run";
    }
  }
  fs::path Corpus(const std::string& sub) {
    return fs::path(shared_) / "corpus" / sub;
  }
  std::string shared_;
};

TEST_F(CorpusTest, PositiveCasesDumpExactly) {
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(Corpus("buildkit-parser"))) {
    if (!entry.is_directory()) continue;
    ++cases;
    std::string name = entry.path().filename().string();
    auto parsed =
        Parse(ReadFile(entry.path() / "Dockerfile"), name + "/Dockerfile");
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.status();
    EXPECT_EQ(DumpBuildkitResult(*parsed), ReadFile(entry.path() / "result"))
        << "case " << name;
  }
  EXPECT_GE(cases, 30);
}

TEST_F(CorpusTest, NegativeCasesFail) {
  int cases = 0;
  for (const auto& entry :
       fs::directory_iterator(Corpus("buildkit-parser-negative"))) {
    if (!entry.is_directory()) continue;
    ++cases;
    auto parsed = Parse(ReadFile(entry.path() / "Dockerfile"));
    EXPECT_EQ(testing::CodeOf(parsed), absl::StatusCode::kInvalidArgument)
        << entry.path().filename();
  }
  EXPECT_EQ(cases, 4);
}

TEST_F(CorpusTest, NegativeCasesSayWhy) {
  auto empty = Parse("", "empty");
  EXPECT_NE(empty.status().message().find("file with no instructions"),
            std::string::npos);
  auto comments = Parse("# just\n# comments\n");
  EXPECT_NE(comments.status().message().find("file with no instructions"),
            std::string::npos);
  auto env = Parse("FROM x\nENV PATH\n", "Dockerfile");
  EXPECT_EQ(env.status().message(),
            "Dockerfile:2:1: ENV must have two arguments");
  auto nested = Parse("  CMD [ \"echo\", [ \"nested json\" ] ]\n");
  EXPECT_EQ(nested.status().message().substr(0, 15), "Dockerfile:1:7:");
  EXPECT_NE(nested.status().message().find(
                "arrays must be comprised of strings only"),
            std::string::npos);
}

TEST_F(CorpusTest, LineSpans) {
  auto parsed = Parse(ReadFile(Corpus("buildkit-parser-line") / "Dockerfile"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->start_line, 5);
  EXPECT_EQ(parsed->end_line, 31);
  ASSERT_EQ(parsed->children.size(), 3u);
  EXPECT_EQ(parsed->children[0].start_line, 5);
  EXPECT_EQ(parsed->children[0].end_line, 5);
  EXPECT_EQ(parsed->children[1].start_line, 11);
  EXPECT_EQ(parsed->children[1].end_line, 12);
  EXPECT_EQ(parsed->children[2].start_line, 17);
  EXPECT_EQ(parsed->children[2].end_line, 31);
}

TEST_F(CorpusTest, RealDockerfilesParse) {
  int files = 0;
  for (const char* dir : {"real-dockerfiles", "real-multistage"}) {
    for (const auto& entry : fs::recursive_directory_iterator(Corpus(dir))) {
      if (!entry.is_regular_file()) continue;
      std::string fname = entry.path().filename().string();
      if (fname.find("Dockerfile") == std::string::npos &&
          entry.path().extension() != ".dockerfile") {
        continue;
      }
      ++files;
      auto parsed = Parse(ReadFile(entry.path()), entry.path().string());
      EXPECT_TRUE(parsed.ok()) << parsed.status();
      // Real-world files also convert and plan (stages, DAG, schedule).
      auto plan =
          PlanDockerfile(ReadFile(entry.path()), {}, entry.path().string());
      EXPECT_TRUE(plan.ok()) << plan.status();
      if (plan.ok()) {
        EXPECT_FALSE(plan->schedule.empty()) << entry.path();
      }
    }
  }
  EXPECT_GE(files, 50);
}

}  // namespace
}  // namespace stagefarm::dockerfile
