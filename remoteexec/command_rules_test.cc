#include "remoteexec/command_rules.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stagefarm::remoteexec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

reapi::Command Echo() {
  reapi::Command c;
  c.add_arguments("/bin/echo");
  c.add_arguments("hi");
  auto* v = c.add_environment_variables();
  v->set_name("PATH");
  v->set_value("/bin");
  c.add_output_paths("out/a.txt");
  return c;
}

TEST(CheckCommandTest, AnOrdinaryCommandPasses) {
  EXPECT_TRUE(CheckCommand(Echo()).ok());
}

TEST(CheckCommandTest, ANulInTheEnvironmentNamesTheVariable) {
  reapi::Command c = Echo();
  auto* v = c.add_environment_variables();
  v->set_name("GREETING");
  v->set_value(std::string("caf\0e", 5));
  absl::Status s = CheckCommand(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "Command.environment_variables[1]: the value of \"GREETING\" has "
            "a NUL byte, which no environment can hold");

  c = Echo();
  c.mutable_environment_variables(0)->set_name(std::string("PA\0TH", 5));
  s = CheckCommand(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("environment_variables[0]: the name "
                                     "\"PA\\x00TH\" has a NUL byte"));

  c = Echo();
  c.mutable_environment_variables(0)->set_name("A=B");
  EXPECT_EQ(CheckCommand(c).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckCommandTest, ANulInAnArgumentOrPathIsRefused) {
  reapi::Command c = Echo();
  c.set_arguments(1, std::string("h\0i", 3));
  absl::Status s = CheckCommand(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("Command.arguments[1]: \"h\\x00i\""));

  c = Echo();
  c.set_output_paths(0, std::string("o\0ut", 4));
  s = CheckCommand(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("Command.output_paths"));

  c = Echo();
  c.set_working_directory(std::string("w\0", 2));
  EXPECT_EQ(CheckCommand(c).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckCommandTest, PathsAreRelativeWithoutDotComponents) {
  for (const char* bad : {"/abs", "a/../b", "./a", "a//b", "a/"}) {
    reapi::Command c = Echo();
    c.set_output_paths(0, bad);
    EXPECT_EQ(CheckCommand(c).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  reapi::Command c = Echo();
  c.clear_arguments();
  EXPECT_EQ(CheckCommand(c).code(), absl::StatusCode::kInvalidArgument);
}

class InputRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string base =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/command_rules.XXXXXX");
    ASSERT_NE(mkdtemp(base.data()), nullptr);
    root_ = base;
    fs::create_directories(root_ + "/sub/deeper");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void Link(const std::string& target, const std::string& name) {
    ASSERT_EQ(symlink(target.c_str(), (root_ + "/" + name).c_str()), 0);
  }
  absl::StatusOr<std::string> Resolve(const std::string& rel,
                                      bool follow_last = false) {
    return ResolveInInputRoot(root_, rel, follow_last, "output \"x\"");
  }
  std::string root_;
};

TEST_F(InputRootTest, PlainPathsAndMissingComponents) {
  EXPECT_EQ(*Resolve("sub/deeper/f"), root_ + "/sub/deeper/f");
  EXPECT_EQ(*Resolve("new/dir/f"), root_ + "/new/dir/f");
  EXPECT_EQ(*Resolve(""), root_);
}

TEST_F(InputRootTest, AnEtcSymlinkIsNotALoop) {
  // As Bazel's sandboxes have it: etc -> /etc. In the sandbox that is the
  // image's /etc, not the input root's etc.
  Link("/etc", "etc");
  absl::StatusOr<std::string> r = Resolve("etc/out.txt");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "output \"x\": the symlink \"etc\" -> \"/etc\" leads out of the "
            "input root (outputs are files of the input root; an absolute "
            "target is inside it only below /stagefarm/exec)");
  EXPECT_THAT(r.status().message(), Not(HasSubstr("levels")));
  // The link itself as an output is a symlink output, not followed.
  EXPECT_EQ(*Resolve("etc"), root_ + "/etc");
  // Other outputs are not concerned.
  EXPECT_EQ(*Resolve("sub/f"), root_ + "/sub/f");
}

TEST_F(InputRootTest, SymlinksInsideTheRootAreFollowed) {
  Link("sub/deeper", "rel");
  Link("/stagefarm/exec/sub", "abs");
  Link("../../sub", "sub/deeper/up");
  EXPECT_EQ(*Resolve("rel/f"), root_ + "/sub/deeper/f");
  EXPECT_EQ(*Resolve("abs/deeper/f"), root_ + "/sub/deeper/f");
  EXPECT_EQ(*Resolve("sub/deeper/up/f"), root_ + "/sub/f");
  EXPECT_EQ(*Resolve("rel", true), root_ + "/sub/deeper");
  EXPECT_EQ(*Resolve("rel", false), root_ + "/rel");
}

TEST_F(InputRootTest, EscapesAndLoopsAreInvalidArguments) {
  Link("../..", "sub/out");
  Link("/stagefarm/executor", "near");
  Link("loop2", "loop1");
  Link("loop1", "loop2");
  absl::StatusOr<std::string> r = Resolve("sub/out/f");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("the symlink \"sub/out\" -> \"../..\" leads out"));
  r = Resolve("near/f");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("leads out of the input root"));
  r = Resolve("loop1/f");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("a loop of symlinks"));
}

}  // namespace
}  // namespace stagefarm::remoteexec
