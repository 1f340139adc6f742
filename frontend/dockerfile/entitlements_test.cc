#include "frontend/dockerfile/entitlements.h"

#include "gtest/gtest.h"

namespace stagefarm::dockerfile {
namespace {

Plan MustPlan(const std::string& text, const std::string& target = "") {
  PlanOptions o;
  o.target = target;
  absl::StatusOr<Plan> plan = PlanDockerfile(text, o, "Dockerfile");
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

TEST(EntitlementsTest, HostNetworkNeedsTheEntitlement) {
  Plan plan = MustPlan(
      "FROM scratch\nRUN --network=none true\nRUN --network=host true\n");
  absl::Status s = CheckEntitled(plan, {}, "Dockerfile");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "Dockerfile:3: RUN --network=host needs the network.host "
            "entitlement (build with --allow network.host)");
  EXPECT_TRUE(CheckEntitled(plan, {"network.host"}, "Dockerfile").ok());
  EXPECT_FALSE(CheckEntitled(plan, {"security.insecure"}, "Dockerfile").ok());
}

TEST(EntitlementsTest, InsecureSecurityNeedsItsOwn) {
  Plan plan = MustPlan("FROM scratch\nRUN --security=insecure true\n");
  absl::Status s = CheckEntitled(plan, {"network.host"}, "df");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("df:2: RUN --security=insecure needs the "
                             "security.insecure entitlement"),
            std::string::npos)
      << s;
  EXPECT_TRUE(CheckEntitled(plan, {"security.insecure"}, "df").ok());
}

TEST(EntitlementsTest, OnlyNeededStagesOrTheOneAsked) {
  Plan plan = MustPlan(
      "FROM scratch AS a\nRUN --network=host true\n"
      "FROM scratch AS b\nRUN true\n",
      "b");
  EXPECT_TRUE(CheckEntitled(plan, {}, "Dockerfile").ok());
  EXPECT_FALSE(CheckEntitled(plan, {}, "Dockerfile", 0).ok());
  EXPECT_TRUE(CheckEntitled(plan, {}, "Dockerfile", 1).ok());
}

TEST(EntitlementsTest, Names) {
  EXPECT_TRUE(
      CheckEntitlementNames({"network.host", "security.insecure"}).ok());
  absl::Status s = CheckEntitlementNames({"network.hots"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("network.hots"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::dockerfile
