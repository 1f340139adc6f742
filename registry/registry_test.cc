#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "registry/auth.h"
#include "registry/reference.h"
#include "tests/status_code.h"

namespace stagefarm::registry {
namespace {

TEST(ReferenceTest, DockerHubNamesGetLibraryAndLatest) {
  auto r = ParseReference("busybox");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "library/busybox");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->String(), "docker.io/library/busybox:latest");

  r = ParseReference("index.docker.io/team/app:1.2");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "team/app");
  EXPECT_EQ(r->tag, "1.2");
}

TEST(ReferenceTest, HostWithPortAndDigest) {
  std::string hex(64, 'a');
  auto r = ParseReference("127.0.0.1:5000/a/b-c:v1@sha256:" + hex);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "a/b-c");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_EQ(r->digest, "sha256:" + hex);
  EXPECT_EQ(r->ManifestRef(), "sha256:" + hex);

  r = ParseReference("localhost/app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "localhost");
  EXPECT_EQ(r->repository, "app");

  // A first component without '.', ':' or "localhost" is a path.
  r = ParseReference("team/app");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->repository, "team/app");
}

TEST(ReferenceTest, RejectsBadReferences) {
  for (const char* bad :
       {"", "Busybox", "host:5000/", "app:", "app:-x", "app@sha256:abc", "a//b",
        "app@md5:"
        "0123",
        "reg.io/a..b", "x:y/z"}) {
    auto r = ParseReference(bad);
    EXPECT_EQ(testing::CodeOf(r), absl::StatusCode::kInvalidArgument)
        << bad << " parsed as " << r->String();
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("invalid image reference"),
                std::string::npos);
    }
  }
  EXPECT_EQ(testing::CodeOf(ParseReference("app:" + std::string(129, 'x'))),
            absl::StatusCode::kInvalidArgument);
}

TEST(ReferenceTest, Loopback) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("[::1]:443"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1:5000"));
  EXPECT_FALSE(IsLoopbackHost("registry.example"));
}

TEST(ChallengeTest, Bearer) {
  auto c = ParseChallenge(
      "Bearer realm=\"https://auth.example/token\",service=\"reg\","
      "scope=\"repository:a/b:pull,push\"");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example/token");
  EXPECT_EQ(c->params["service"], "reg");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull,push");
}

TEST(ChallengeTest, BasicEscapesAndErrors) {
  auto c = ParseChallenge("Basic realm=\"say \\\"hi\\\"\"");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->scheme, "basic");
  EXPECT_EQ(c->params["realm"], "say \"hi\"");
  c = ParseChallenge("Basic realm=plain , charset=UTF-8");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->params["realm"], "plain");
  EXPECT_EQ(c->params["charset"], "UTF-8");
  EXPECT_EQ(testing::CodeOf(ParseChallenge("Bearer realm=\"open")),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(testing::CodeOf(ParseChallenge("Bearer realm")),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(testing::CodeOf(ParseChallenge("")),
            absl::StatusCode::kInvalidArgument);
}

class CredentialsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    std::string path =
        ::testing::TempDir() + "/config-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name() +
        ".json";
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(CredentialsTest, AuthFieldAndHubKey) {
  // "alice:s3cret:x" in base64; the password may hold ':'.
  std::string path = Write(R"({"auths": {
      "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcmV0Ong="},
      "https://index.docker.io/v1/": {"username": "bob", "password": "pw"}}})");
  auto c = LookupCredentials(path, "127.0.0.1:5000");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->username, "alice");
  EXPECT_EQ((*c)->password, "s3cret:x");
  c = LookupCredentials(path, "docker.io");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "bob");
  c = LookupCredentials(path, "other.example");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
  c = LookupCredentials("/nonexistent/config.json", "docker.io");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->has_value());
}

TEST_F(CredentialsTest, BadFilesAndHelpersAreErrors) {
  auto c = LookupCredentials(Write("{not json"), "h");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  c = LookupCredentials(Write(R"({"auths": {"h": {"auth": "!!!"}}})"), "h");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  // Members of the wrong type are named, not skipped.
  c = LookupCredentials(Write(R"({"auths": {"h": {"auth": 5}}})"), "h");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("field \"auth\" is a number"),
            std::string::npos)
      << c.status();
  c = LookupCredentials(Write(R"({"auths": []})"), "h");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  c = LookupCredentials(Write(R"({"auths": {"h": "x"}})"), "h");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  c = LookupCredentials(Write(R"({"credsStore": "desktop"})"), "h");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("credential helper"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::registry
