#include "executor/sandbox_network.h"

#include "gtest/gtest.h"

namespace stagefarm::executor {
namespace {

TEST(PoolSubnetTest, SlotsOfAPool) {
  int slots = 0;
  absl::StatusOr<Subnet> s = PoolSubnet("10.213.0.0/16", 7, &slots);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(slots, 256);
  EXPECT_EQ(s->Cidr(), "10.213.7.0/24");
  EXPECT_EQ(s->Address(1), "10.213.7.1");
  EXPECT_EQ(s->Address(254), "10.213.7.254");
  s = PoolSubnet("192.168.4.0/22", 3, &slots);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(slots, 4);
  EXPECT_EQ(s->Cidr(), "192.168.7.0/24");
}

TEST(PoolSubnetTest, BadPools) {
  for (const char* bad :
       {"10.213.0.0", "10.213.0.0/25", "10.213.0.0/7", "10.213.1.0/16",
        "fd00::/64", "10.213.0.0/x", "nonsense/16"}) {
    absl::StatusOr<Subnet> s = PoolSubnet(bad, 0);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(PoolSubnet("10.213.0.0/24", 1).ok());
  EXPECT_TRUE(PoolSubnet("10.213.0.0/24", 0).ok());
}

TEST(SandboxResolvConfTest, DropsLoopbackResolvers) {
  EXPECT_EQ(SandboxResolvConf("nameserver 10.255.255.53\nsearch example\n"),
            "nameserver 10.255.255.53\nsearch example\n");
  EXPECT_EQ(SandboxResolvConf("nameserver 127.0.0.53\nnameserver 1.1.1.1\n"
                              "options edns0\n"),
            "nameserver 1.1.1.1\noptions edns0\n");
  EXPECT_EQ(SandboxResolvConf("nameserver 127.0.0.53\nsearch lan\n"),
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  EXPECT_EQ(SandboxResolvConf(""), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  EXPECT_EQ(SandboxResolvConf("nameserver ::1\n"),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
}

TEST(TaggedRulesTest, FindsOnlyOurs) {
  const char* listing =
      "-P FORWARD DROP\n"
      "-N DOCKER\n"
      "-A FORWARD -i sfbr1 ! -o sfbr1 -m comment --comment "
      "\"stagefarm:sfbr1\" -j ACCEPT\n"
      "-A FORWARD -i sfbr10 -m comment --comment stagefarm:sfbr10 -j ACCEPT\n"
      "-A FORWARD -o docker0 -j DOCKER\n"
      "-A INPUT -i sfbr1 -m comment --comment stagefarm:sfbr1 -j REJECT "
      "--reject-with icmp-port-unreachable\n";
  std::vector<std::vector<std::string>> rules =
      TaggedRules(listing, "stagefarm:sfbr1");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0],
            (std::vector<std::string>{"-D", "FORWARD", "-i", "sfbr1", "!", "-o",
                                      "sfbr1", "-m", "comment", "--comment",
                                      "stagefarm:sfbr1", "-j", "ACCEPT"}));
  EXPECT_EQ(rules[1][0], "-D");
  EXPECT_EQ(rules[1][1], "INPUT");
  EXPECT_EQ(rules[1].back(), "icmp-port-unreachable");
}

}  // namespace
}  // namespace stagefarm::executor
