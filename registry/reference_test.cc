// Docker's reference grammar, checked with the valid and invalid names of
// distribution/reference's own tests (normalize_test.go, reference_test.go)
// as facts, and the untidy names users type.
#include "registry/reference.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/status_code.h"

namespace stagefarm::registry {
namespace {

const std::string kHex64(64, 'f');

TEST(ReferenceGrammarTest, DockerValidNames) {
  for (const std::string& name : std::vector<std::string>{
           "docker/docker",
           "library/debian",
           "debian",
           "docker.io/docker/docker",
           "docker.io/library/debian",
           "docker.io/debian",
           "index.docker.io/docker/docker",
           "index.docker.io/library/debian",
           "index.docker.io/debian",
           "127.0.0.1:5000/docker/docker",
           "127.0.0.1:5000/library/debian",
           "127.0.0.1:5000/debian",
           "192.168.0.1",
           "192.168.0.1:80",
           "192.168.0.1:8/debian",
           "192.168.0.2:25000/debian",
           "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
           "[fc00::1]:5000/docker",
           "[fc00::1]:5000/docker/docker",
           "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
           "docker.io/"
           "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
           // An upper-case first component is a domain, so these pass.
           "Docker/docker",
           "DOCKER/docker",
           "docker-rules/docker",
           "docker---rules/docker",
           "doc/docker",
           "d/docker",
           "jess/t",
           "dock__er/docker",
           "test_com",
           "test.com:tag",
           "test.com:5000",
           "test.com/repo:tag",
           "test:5000/repo",
           "test:5000/repo:tag",
           "test:5000/repo@sha256:" + kHex64,
           "test:5000/repo:tag@sha256:" + kHex64,
           "lowercase:Uppercase",
           "sub-dom1.foo.com/bar/baz/quux",
           "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
           "b.gcr.io/test.example.com/my-app:test.example.com",
           "xn--n3h.com/myimage:xn--n3h.com",
           "foo_bar.com:8080",
           "foo/foo_bar.com:8080",
           "192.168.1.1",
           "192.168.1.1:tag",
           "192.168.1.1:5000",
           "192.168.1.1/repo",
           "192.168.1.1:5000/repo",
           "192.168.1.1:5000/repo:5050",
           "[2001:db8::1]/repo",
           "[2001:db8:1:2:3:4:5:6]/repo:tag",
           "[2001:db8::1]:5000/repo",
           "[2001:db8::1]:5000/repo:tag",
           "[2001:db8::1]:5000/repo@sha256:" + kHex64,
           "[2001:db8::]:5000/repo",
           "[::1]:5000/repo",
           "busybox:latest@sha256:" + kHex64,
       }) {
    absl::StatusOr<Reference> r = ParseReference(name);
    EXPECT_TRUE(r.ok()) << name << ": " << r.status();
  }
}

TEST(ReferenceGrammarTest, DockerInvalidNames) {
  for (const std::string& name : std::vector<std::string>{
           "https://github.com/docker/docker",
           "docker/Docker",
           "-docker",
           "-docker/docker",
           "-docker.io/docker/docker",
           "docker///docker",
           "docker.io/docker/Docker",
           "docker.io/docker///docker",
           "[fc00::1]",
           "[fc00::1]:5000",
           "fc00::1:5000/debian",
           "[fe80::1%eth0]:5000/debian",
           "[2001:db8:3:4::192.0.2.33]:5000/debian",
           "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
           "docker-/docker",
           "-docker-/docker",
           "____/____",
           "_docker/_docker",
           "dock..er/docker",
           "dock_.er/docker",
           "dock-.er/docker",
           "docker/",
           "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_"
           "255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_"
           "than_255_this_is_not_a_valid_namespace_because_its_lenth_is_"
           "greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_"
           "is_greater_than_255/docker",
           "",
           ":justtag",
           "@sha256:" + kHex64,
           "repo@sha256:ffffffffffffffffffffffffffffffffff",
           "validname@invaliddigest:" + kHex64,
           "Uppercase:tag",
           "test:5000/Uppercase/lowercase:tag",
           "aa/asdf$$^/aa",
           "[2001:db8::1]",
           "[2001:db8::1]:5000",
           "[2001:db8::1]:tag",
           "[fe80::1%eth0]:5000/repo",
           "[fe80::1%@invalidzone]:5000/repo",
           "-foo",
           "busybox:-foo",
           "busybox@foo",
       }) {
    absl::StatusOr<Reference> r = ParseReference(name);
    EXPECT_EQ(testing::CodeOf(r), absl::StatusCode::kInvalidArgument)
        << name << " parsed as " << (r.ok() ? r->String() : "");
  }
}

TEST(ReferenceGrammarTest, NormalizesAsDocker) {
  struct Case {
    std::string in, registry, repository, tag;
  };
  for (const Case& c : std::vector<Case>{
           {"fooo/bar", "docker.io", "fooo/bar", "latest"},
           {"index.docker.io/fooo/bar", "docker.io", "fooo/bar", "latest"},
           {"ubuntu", "docker.io", "library/ubuntu", "latest"},
           {"docker.io/ubuntu:22.04", "docker.io", "library/ubuntu", "22.04"},
           {"library/foo/bar", "docker.io", "library/foo/bar", "latest"},
           {"127.0.0.1:8000/private/moonbase", "127.0.0.1:8000",
            "private/moonbase", "latest"},
           {"example.com:8000/privatebasee", "example.com:8000", "privatebasee",
            "latest"},
           {"Foo/bar", "Foo", "bar", "latest"},
           {"test_com/foo", "docker.io", "test_com/foo", "latest"},
           {"localhost/app", "localhost", "app", "latest"},
           {"test.com:5000", "docker.io", "library/test.com", "5000"},
       }) {
    absl::StatusOr<Reference> r = ParseReference(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.status();
    EXPECT_EQ(r->registry, c.registry) << c.in;
    EXPECT_EQ(r->repository, c.repository) << c.in;
    EXPECT_EQ(r->tag, c.tag) << c.in;
  }
}

TEST(ReferenceGrammarTest, NameLengthCountsTheDomain) {
  // registry + "/" + path: 255 bytes pass, 256 do not.
  std::string domain = "reg.io";
  std::string path(255 - domain.size() - 1, 'a');
  EXPECT_TRUE(ParseReference(domain + "/" + path + ":1").ok());
  absl::StatusOr<Reference> r = ParseReference(domain + "/" + path + "a:1");
  ASSERT_EQ(testing::CodeOf(r), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not be more than 255"),
            std::string::npos);
  // A tag of 128 passes, 129 do not.
  EXPECT_TRUE(ParseReference("app:" + std::string(128, 'x')).ok());
  EXPECT_FALSE(ParseReference("app:" + std::string(129, 'x')).ok());
}

TEST(ReferenceGrammarTest, UntidyTagsGetDockersMessageNamingTheValue) {
  struct Case {
    std::string in, message;
  };
  for (const Case& c : std::vector<Case>{
           {"a<b>c:1",
            "invalid image reference \"a<b>c:1\": invalid reference format"},
           {"upper/X:1",
            "invalid image reference \"upper/X:1\": invalid reference "
            "format: repository name must be lowercase"},
           {"UPPER:1",
            "invalid image reference \"UPPER:1\": invalid reference format: "
            "repository name must be lowercase"},
           {"../../x",
            "invalid image reference \"../../x\": invalid reference format"},
           {"./x", "invalid image reference \"./x\": invalid reference format"},
           {"caf\xe9:1",
            "invalid image reference \"caf\\xe9:1\": invalid reference "
            "format"},
           {"app:caf\xe9",
            "invalid image reference \"app:caf\\xe9\": invalid reference "
            "format"},
           {std::string("a\0z", 3),
            "invalid image reference \"a\\x00z\": invalid reference format"},
           {"a b:1",
            "invalid image reference \"a b:1\": invalid reference format"},
           {"repo@sha256:abc" + std::string(64, '0'),
            "invalid image reference \"repo@sha256:abc" + std::string(64, '0') +
                "\": invalid checksum digest length"},
       }) {
    absl::StatusOr<Reference> r = ParseReference(c.in);
    ASSERT_FALSE(r.ok()) << c.in;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(ReferenceGrammarTest, AHugeValueIsShownCut) {
  std::string huge(100000, '<');
  absl::StatusOr<Reference> r = ParseReference(huge);
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 700u);
  EXPECT_NE(r.status().message().find("...\": invalid reference format"),
            std::string::npos);
}

}  // namespace
}  // namespace stagefarm::registry
