// Makes real bridges, namespaces and iptables rules. Needs root, iproute2
// and iptables; skipped otherwise.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "executor/sandbox_network.h"
#include "gtest/gtest.h"

namespace stagefarm::executor {
namespace {

std::string HostOutput(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool LinkExists(const std::string& name) {
  return system(("ip link show dev " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// Rules tagged for `bridge` in both tables.
int RulesOf(const std::string& bridge) {
  std::string all = HostOutput("iptables -w -S; iptables -w -t nat -S");
  int n = 0;
  const std::string tag = "\"stagefarm:" + bridge + "\"";
  for (size_t at = all.find(tag); at != std::string::npos;
       at = all.find(tag, at + 1)) {
    ++n;
  }
  return n;
}

class SandboxNetworkIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    if (system("command -v iptables >/dev/null && command -v ip "
               ">/dev/null") != 0) {
      GTEST_SKIP() << "needs iproute2 and iptables";
    }
  }
};

TEST_F(SandboxNetworkIntegrationTest, EverythingGoesAwayWithItsOwner) {
  std::string bridge, netns;
  {
    absl::StatusOr<std::unique_ptr<SandboxNetwork>> net =
        SandboxNetwork::Create({});
    ASSERT_TRUE(net.ok()) << net.status();
    bridge = (*net)->bridge();
    EXPECT_TRUE(LinkExists(bridge));
    // NAT, INPUT, two FORWARD accepts (no denials asked).
    EXPECT_EQ(RulesOf(bridge), 4);
    {
      absl::StatusOr<std::unique_ptr<SandboxNetwork::Attachment>> a =
          (*net)->Attach();
      ASSERT_TRUE(a.ok()) << a.status();
      netns = (*a)->netns_path();
      EXPECT_TRUE(Exists(netns));
      EXPECT_TRUE(absl::StartsWith((*a)->address(), "10.213."));
      std::string name = netns.substr(netns.rfind('/') + 1);
      std::string inside = HostOutput("ip -n " + name + " -4 -o addr");
      EXPECT_NE(inside.find((*a)->address() + "/24"), std::string::npos)
          << inside;
    }
    // A helper thread deletes a finished sandbox's namespace.
    for (int i = 0; i < 200 && Exists(netns); ++i) usleep(10000);
    EXPECT_FALSE(Exists(netns));
  }
  // A child removes the bridge and the rules.
  for (int i = 0; i < 300 && (LinkExists(bridge) || RulesOf(bridge) > 0); ++i) {
    usleep(10000);
  }
  EXPECT_FALSE(LinkExists(bridge));
  EXPECT_EQ(RulesOf(bridge), 0);
}

TEST_F(SandboxNetworkIntegrationTest, DeniedAddressesGetARule) {
  SandboxNetworkOptions o;
  o.deny = {"192.0.2.77", "198.51.100.0/24"};
  absl::StatusOr<std::unique_ptr<SandboxNetwork>> net =
      SandboxNetwork::Create(o);
  ASSERT_TRUE(net.ok()) << net.status();
  std::string rules = HostOutput("iptables -w -S FORWARD");
  for (const char* d : {"192.0.2.77/32", "198.51.100.0/24"}) {
    EXPECT_NE(rules.find(absl::StrCat("-d ", d, " -i ", (*net)->bridge())),
              std::string::npos)
        << rules;
  }
  EXPECT_EQ(RulesOf((*net)->bridge()), 6);
}

// A process killed with its network set up leaves it all behind; the next
// SandboxNetwork made on the machine removes it.
TEST_F(SandboxNetworkIntegrationTest, TheNextOneCleansUpAfterADeadProcess) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<std::unique_ptr<SandboxNetwork>> net =
        SandboxNetwork::Create({});
    if (!net.ok()) _exit(1);
    absl::StatusOr<std::unique_ptr<SandboxNetwork::Attachment>> a =
        (*net)->Attach();
    if (!a.ok()) _exit(1);
    std::string msg = (*net)->bridge() + " " + (*a)->netns_path();
    if (write(fds[1], msg.data(), msg.size()) < 0) _exit(1);
    _exit(0);  // no destructors: as if killed
  }
  close(fds[1]);
  char buf[256] = {0};
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_GT(n, 0);
  std::string msg(buf, static_cast<size_t>(n));
  std::string bridge = msg.substr(0, msg.find(' '));
  std::string netns = msg.substr(msg.find(' ') + 1);
  ASSERT_TRUE(LinkExists(bridge));
  ASSERT_TRUE(Exists(netns));
  ASSERT_EQ(RulesOf(bridge), 4);

  absl::StatusOr<std::unique_ptr<SandboxNetwork>> next =
      SandboxNetwork::Create({});
  ASSERT_TRUE(next.ok()) << next.status();
  // It takes the freed slot again, or another; either way the dead one's
  // namespace and rules are gone, and its bridge unless it is the new one.
  EXPECT_FALSE(Exists(netns));
  if ((*next)->bridge() != bridge) {
    EXPECT_FALSE(LinkExists(bridge));
    EXPECT_EQ(RulesOf(bridge), 0);
  } else {
    EXPECT_EQ(RulesOf(bridge), 4);
  }
}

}  // namespace
}  // namespace stagefarm::executor
