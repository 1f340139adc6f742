#include "platform/platform.h"

#include <stdlib.h>

#include <fstream>

#include "gtest/gtest.h"
#include "platform/emulation.h"

namespace stagefarm::platform {
namespace {

std::string P(absl::string_view text) {
  absl::StatusOr<Platform> p = Parse(text);
  return p.ok() ? p->String() : "error: " + std::string(p.status().message());
}

TEST(Platform, NormalizesSpellings) {
  EXPECT_EQ(P("linux/amd64"), "linux/amd64");
  EXPECT_EQ(P("linux/x86_64"), "linux/amd64");
  EXPECT_EQ(P("amd64"), "linux/amd64");
  EXPECT_EQ(P("linux/aarch64"), "linux/arm64");
  EXPECT_EQ(P("linux/arm64/v8"), "linux/arm64");
  EXPECT_EQ(P("linux/arm"), "linux/arm/v7");
  EXPECT_EQ(P("linux/arm/6"), "linux/arm/v6");
  EXPECT_EQ(P("linux/armhf"), "linux/arm/v7");
  EXPECT_EQ(P("linux/i386"), "linux/386");
  EXPECT_EQ(P("Linux/RISCV64"), "linux/riscv64");
  EXPECT_EQ(P(" linux/ppc64le "), "linux/ppc64le");
}

TEST(Platform, RejectsWhatItCannotBuild) {
  EXPECT_EQ(Parse("windows/amd64").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_NE(P("windows/amd64").find("only linux"), std::string::npos);
  EXPECT_NE(P("linux/sparc").find("unknown architecture sparc"),
            std::string::npos);
  EXPECT_NE(P("linux//v7").find("empty part"), std::string::npos);
  EXPECT_NE(P("").find("empty part"), std::string::npos);
  EXPECT_NE(P("linux/arm/v7/x").find("too many"), std::string::npos);
}

TEST(Platform, ListsKeepOrderAndDropDuplicates) {
  auto list = ParseList("linux/arm64,linux/amd64,linux/aarch64");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].String(), "linux/arm64");
  EXPECT_EQ((*list)[1].String(), "linux/amd64");
  EXPECT_FALSE(ParseList("linux/amd64,").ok());
}

TEST(Platform, FromOciAndNames) {
  EXPECT_EQ(FromOci("linux", "arm64", "v8").String(), "linux/arm64");
  EXPECT_EQ(FromOci("linux", "arm", "").String(), "linux/arm/v7");
  Platform p = *Parse("linux/arm/v7");
  EXPECT_EQ(p.DirName(), "linux_arm_v7");
  EXPECT_EQ(KernelArch(p), "arm");
  EXPECT_EQ(KernelArch(*Parse("arm64")), "aarch64");
  EXPECT_EQ(KernelArch(*Parse("amd64")), "x86_64");
  EXPECT_TRUE(*Parse("arm64") == FromOci("linux", "aarch64", ""));
}

class EmulationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/binfmt-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  void Handler(const std::string& name, const std::string& body) {
    std::ofstream(dir_ + "/" + name) << body;
  }
  std::string dir_;
};

TEST_F(EmulationTest, ReportsHandlersAndWhetherASandboxCanUseThem) {
  Handler("register", "");
  Handler("status", "enabled\n");
  Handler("qemu-aarch64",
          "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
          "flags: POCF\noffset 0\n");
  Handler("qemu-riscv64", "enabled\ninterpreter /x/riscv64\nflags: PO\n");
  Handler("qemu-s390x", "disabled\ninterpreter /x/s390x\nflags: F\n");
  Handler("python3.11", "enabled\ninterpreter /usr/bin/python3.11\n");
  std::vector<Runner> runners = Runners(dir_);
  ASSERT_GE(runners.size(), 4u);
  EXPECT_TRUE(runners[0].native);
  EXPECT_EQ(runners[0].platform, Host());
  std::vector<Platform> usable = UsablePlatforms(dir_);
  auto has = [&](absl::string_view p) {
    for (const Platform& u : usable) {
      if (u == *Parse(p)) return true;
    }
    return false;
  };
  EXPECT_TRUE(has(Host().String()));
  if (Host().architecture != "arm64") {
    EXPECT_TRUE(has("linux/arm64"));
  }
  EXPECT_FALSE(has("linux/riscv64"));
  EXPECT_FALSE(has("linux/s390x"));

  EXPECT_TRUE(CheckRunnable(Host(), dir_).ok());
  absl::Status no_f = CheckRunnable(*Parse("riscv64"), dir_);
  EXPECT_EQ(no_f.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(no_f.message().find("without the F flag"), std::string::npos);
  absl::Status off = CheckRunnable(*Parse("s390x"), dir_);
  EXPECT_NE(off.message().find("disabled"), std::string::npos);
  absl::Status none = CheckRunnable(*Parse("ppc64le"), dir_);
  EXPECT_EQ(none.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(none.message().find("stagefarm emulation install"),
            std::string::npos);
}

TEST_F(EmulationTest, HandlerNames) {
  Platform p;
  EXPECT_TRUE(HandlerPlatform("qemu-aarch64", &p));
  EXPECT_EQ(p.String(), "linux/arm64");
  EXPECT_TRUE(HandlerPlatform("qemu-mips64el", &p));
  EXPECT_EQ(p.String(), "linux/mips64le");
  EXPECT_FALSE(HandlerPlatform("python3.11", &p));
  EXPECT_FALSE(HandlerPlatform("qemu-sparc", &p));
}

}  // namespace
}  // namespace stagefarm::platform
