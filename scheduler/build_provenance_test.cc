#include "scheduler/build_provenance.h"

#include "attest/signing_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace stagefarm::scheduler {
namespace {

using json = nlohmann::json;

std::unique_ptr<attest::Key> NewKey() {
  return *attest::Key::PrivateFromPem(attest::testing::NewKeyPem("ED25519"),
                                      "key");
}

// A finished build (BuildState holds a CondVar: filled in place).
void Fill(BuildState& b) {
  b.id = "0123456789abcdef01234567";
  b.submitted = 1700000000;
  v1::BuildSpec& spec = b.spec;
  spec.set_dockerfile(
      "FROM golang:1.19 AS build\n"
      "RUN --mount=type=secret,id=token --network=host go version\n"
      "FROM busybox\n"
      "ADD --checksum=sha256:"
      "24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d "
      "https://example.com/a.txt /a.txt\n"
      "COPY --from=build /etc/hostname /h\n");
  spec.set_dockerfile_name("Dockerfile");
  spec.set_target_platform("linux/amd64");
  spec.set_build_platform("linux/amd64");
  spec.set_provenance("min");
  spec.set_subject_name("docker.io/library/app:1");
  (*spec.mutable_build_args())["VERSION"] = "1.2";
  (*spec.mutable_secrets())["token"] = "hunter2";
  spec.add_secret_ids("token");
  auto* ctx = spec.mutable_context();
  ctx->set_hash(std::string(64, 'c'));
  ctx->set_size_bytes(99);
  auto set = [&spec](const char* name, char c) {
    auto& d = (*spec.mutable_images())[name];
    d.set_hash(std::string(64, c));
    d.set_size_bytes(500);
  };
  set("golang:1.19", 'a');
  set("busybox", 'b');
  auto* m = b.result.mutable_manifest();
  m->set_hash(std::string(64, 'e'));
  m->set_size_bytes(700);
}

TEST(BuildProvenance, SignedStatementOfWhatTheSchedulerHolds) {
  std::unique_ptr<attest::Key> key = NewKey();
  BuildState b;
  Fill(b);
  auto text = MakeProvenance(b, {key.get(), "stagefarm-scheduler://farm", "1"},
                             "", 1700000100);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->find("hunter2"), std::string::npos);  // no secret value
  auto env = attest::ParseEnvelope(*text);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_TRUE(attest::VerifyEnvelope(*env, *key).ok());
  EXPECT_EQ(env->payload_type, "application/vnd.in-toto+json");
  json st = json::parse(env->payload);
  EXPECT_EQ(st["predicateType"], "https://slsa.dev/provenance/v1");
  EXPECT_EQ(st["subject"][0]["digest"]["sha256"], std::string(64, 'e'));
  EXPECT_EQ(st["subject"][0]["name"],
            "pkg:docker/docker.io/library/app@1?platform=linux%2Famd64");
  const json& def = st["predicate"]["buildDefinition"];
  EXPECT_EQ(def["externalParameters"]["configSource"]["uri"],
            "context:sha256:" + std::string(64, 'c') + "/99");
  EXPECT_EQ(def["externalParameters"]["request"]["secrets"][0]["id"], "token");
  // mode=min: the arg is named, its value is not given.
  EXPECT_EQ(def["externalParameters"]["request"]["args"]["build-arg:VERSION"],
            "");
  EXPECT_EQ(def["internalParameters"]["network"], json::array({"host"}));
  std::set<std::string> deps;
  for (const json& d : def["resolvedDependencies"]) {
    deps.insert(d["uri"].get<std::string>() + " " +
                d["digest"]["sha256"].get<std::string>());
  }
  EXPECT_EQ(deps.count("pkg:docker/golang@1.19?platform=linux%2Famd64 " +
                       std::string(64, 'a')),
            1u);
  EXPECT_EQ(deps.count("pkg:docker/busybox@latest?platform=linux%2Famd64 " +
                       std::string(64, 'b')),
            1u);
  EXPECT_EQ(deps.count("https://example.com/a.txt "
                       "24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1"
                       "036d1dc68d"),
            1u);
  const json& run = st["predicate"]["runDetails"];
  EXPECT_EQ(run["builder"]["id"], "stagefarm-scheduler://farm");
  EXPECT_EQ(run["metadata"]["invocationID"], b.id);
  EXPECT_EQ(run["metadata"]["hermetic"], false);
  EXPECT_FALSE(run["metadata"].contains("reproducible"));
}

TEST(BuildProvenance, RecordsAVerifiedRebuildAndModeMax) {
  BuildState b;
  Fill(b);
  b.spec.set_provenance("max");
  auto text =
      MakeProvenance(b, {nullptr, "b", "1"}, std::string(64, 'e'), 1700000100);
  ASSERT_TRUE(text.ok()) << text.status();
  auto env = attest::ParseEnvelope(*text);
  ASSERT_TRUE(env.ok());
  EXPECT_TRUE(env->signatures.empty());  // no key: unsigned
  json st = json::parse(env->payload);
  const json& meta = st["predicate"]["runDetails"]["metadata"];
  EXPECT_EQ(meta["reproducible"]["verified"], true);
  EXPECT_EQ(meta["reproducible"]["rebuild"]["sha256"], std::string(64, 'e'));
  const json& def = st["predicate"]["buildDefinition"];
  EXPECT_EQ(def["externalParameters"]["request"]["args"]["build-arg:VERSION"],
            "1.2");
  ASSERT_EQ(def["internalParameters"]["buildConfig"].size(), 2u);
  EXPECT_EQ(def["internalParameters"]["buildConfig"][0]["stage"], "build");
}

TEST(BuildProvenance, AnImageTheSpecDidNotResolveIsAnError) {
  BuildState b;
  Fill(b);
  b.spec.mutable_images()->erase("busybox");
  auto text = MakeProvenance(b, {nullptr, "b", "1"}, "", 1700000100);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(text.status().message().find("busybox"), std::string::npos);
}

}  // namespace
}  // namespace stagefarm::scheduler
