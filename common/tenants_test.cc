#include "common/tenants.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/status_code.h"

namespace stagefarm {
namespace {

const std::string kHash(64, 'a');

TEST(TenantsTest, ParsesAndChecks) {
  auto t = Tenants::Parse(
      R"({"tenants": [
        {"name": "team-a", "tokens_sha256": [")" +
          kHash + R"("],
         "instances": ["team-a", "shared"]},
        {"name": "workers", "certificates": ["worker"], "instances": ["*"],
         "worker": true, "max_builds": 3}]})",
      "tenants.json");
  ASSERT_TRUE(t.ok()) << t.status();
  Tenant a{"team-a", {"team-a", "shared"}, false};
  Tenant w{"workers", {"*"}, true};
  EXPECT_TRUE(Tenants::CheckInstance(a, "team-a").ok());
  EXPECT_TRUE(Tenants::CheckInstance(a, "shared").ok());
  absl::Status denied = Tenants::CheckInstance(a, "team-b");
  EXPECT_TRUE(absl::IsPermissionDenied(denied)) << denied;
  EXPECT_NE(denied.message().find("tenant team-a may not use instance"),
            std::string::npos);
  EXPECT_TRUE(Tenants::CheckInstance(w, "anything").ok());
  EXPECT_TRUE(Tenants::CheckWorker(w, "lease").ok());
  EXPECT_TRUE(absl::IsPermissionDenied(Tenants::CheckWorker(a, "lease")));
}

TEST(TenantsTest, BadFilesNameTheField) {
  struct Case {
    std::string json, needle;
  };
  for (const Case& c : std::vector<Case>{
           {"[]", "expected {\"tenants\""},
           {R"({"tenants": [{"instances": ["x"]}]})", "tenants[0].name"},
           {R"({"tenants": [{"name": "a", "instances": ["x"]}]})",
            "needs tokens_sha256 or certificates"},
           {R"({"tenants": [{"name": "a", "tokens_sha256": ["abc"]}]})",
            "64 hex digits"},
           {R"({"tenants": [{"name": "a", "tokens_sha256": [")" + kHash +
                R"("]}, {"name": "b", "tokens_sha256": [")" + kHash +
                R"("]}]})",
            "belongs to two tenants"},
           {R"({"tenants": [{"name": "a", "certificates": "c"}]})",
            "certificates: a list of strings"},
           {R"({"tenants": [{"name": "a", "certificates": ["c"],
                "max_builds": -1}]})",
            "max_builds: a whole number"},
       }) {
    auto t = Tenants::Parse(c.json, "f.json");
    ASSERT_EQ(testing::CodeOf(t), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(t.status().message().find(c.needle), std::string::npos)
        << t.status();
    EXPECT_NE(t.status().message().find("f.json"), std::string::npos);
  }
  EXPECT_FALSE(Tenants::Load("/nonexistent/tenants.json").ok());
}

}  // namespace
}  // namespace stagefarm
