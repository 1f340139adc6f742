#include "farmapi/build_spec.h"

#include "gtest/gtest.h"

namespace stagefarm::farmapi {
namespace {

engine::BuildRequest Full() {
  engine::BuildRequest r;
  r.dockerfile = std::string("FROM scratch\n\xff\0", 15);
  r.dockerfile_name = "build/Dockerfile.prod";
  r.dockerignore = "*.log\n";
  r.plan_options.target = "runtime";
  r.plan_options.target_platform = "linux/arm64";
  r.plan_options.build_platform = "linux/amd64";
  r.plan_options.build_args = {{"A", "1"}, {"B", ""}};
  r.no_cache = true;
  r.labels = {{"org.example", "x"}};
  r.source_date_epoch = 0;
  r.compression = archives::Compression::kZstd;
  r.compression_level = 9;
  r.log_max_bytes = 4096;
  r.images = {{"busybox", Digest::Of("manifest")}};
  r.entitlements = {"network.host", "security.insecure"};
  return r;
}

TEST(BuildSpecTest, RoundTripKeepsEveryField) {
  engine::BuildRequest in = Full();
  v1::BuildSpec spec;
  ASSERT_TRUE(ToSpec(in, &spec).ok());
  absl::StatusOr<engine::BuildRequest> out = FromSpec(spec);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->dockerfile, in.dockerfile);
  EXPECT_EQ(out->dockerfile_name, in.dockerfile_name);
  EXPECT_EQ(out->dockerignore, in.dockerignore);
  EXPECT_EQ(out->plan_options.target, in.plan_options.target);
  EXPECT_EQ(out->plan_options.target_platform, "linux/arm64");
  EXPECT_EQ(out->plan_options.build_platform, "linux/amd64");
  EXPECT_EQ(out->plan_options.build_args, in.plan_options.build_args);
  EXPECT_EQ(out->no_cache, in.no_cache);
  EXPECT_EQ(out->labels, in.labels);
  ASSERT_TRUE(out->source_date_epoch.has_value());
  EXPECT_EQ(*out->source_date_epoch, 0);
  EXPECT_EQ(out->compression, in.compression);
  EXPECT_EQ(out->compression_level, in.compression_level);
  EXPECT_EQ(out->log_max_bytes, in.log_max_bytes);
  EXPECT_EQ(out->images, in.images);
  EXPECT_EQ(out->entitlements, in.entitlements);
}

TEST(BuildSpecTest, EachCompressionAndNoEpochSurvive) {
  for (archives::Compression c :
       {archives::Compression::kGzip, archives::Compression::kZstd,
        archives::Compression::kNone}) {
    engine::BuildRequest in;
    in.compression = c;
    v1::BuildSpec spec;
    ASSERT_TRUE(ToSpec(in, &spec).ok());
    absl::StatusOr<engine::BuildRequest> out = FromSpec(spec);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->compression, c);
    EXPECT_FALSE(out->source_date_epoch.has_value());
  }
}

// Arg and label values are bytes; their names are proto map keys, which
// must be UTF-8: refused naming the flag, never a spec that fails to parse.
TEST(BuildSpecTest, NamesThatAreNotUtf8AreRefusedValuesAreBytes) {
  engine::BuildRequest in;
  in.plan_options.build_args["A"] = "caf\xe9";
  in.labels["l"] = "\xff";
  in.dockerfile_name = "Dockerfile.\xe9";
  v1::BuildSpec spec;
  ASSERT_TRUE(ToSpec(in, &spec).ok());
  std::string wire = spec.SerializeAsString();
  v1::BuildSpec back;
  ASSERT_TRUE(back.ParseFromString(wire));
  absl::StatusOr<engine::BuildRequest> out = FromSpec(back);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->plan_options.build_args["A"], "caf\xe9");
  EXPECT_EQ(out->labels["l"], "\xff");
  EXPECT_EQ(out->dockerfile_name, "Dockerfile.\xe9");

  in.plan_options.build_args["caf\xe9"] = "1";
  absl::Status s = ToSpec(in, &spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--build-arg"), absl::string_view::npos);
  EXPECT_NE(s.message().find("caf\\xe9"), absl::string_view::npos);
}

TEST(BuildSpecTest, EmptyNameIsDockerfile) {
  absl::StatusOr<engine::BuildRequest> out = FromSpec(v1::BuildSpec());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->dockerfile_name, "Dockerfile");
  EXPECT_EQ(out->compression, archives::Compression::kGzip);
}

TEST(BuildSpecTest, BadImageDigestNamesTheImage) {
  v1::BuildSpec spec;
  auto& d = (*spec.mutable_images())["alpine"];
  d.set_hash("not-hex");
  d.set_size_bytes(1);
  absl::StatusOr<engine::BuildRequest> out = FromSpec(spec);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("alpine"), absl::string_view::npos);
}

}  // namespace
}  // namespace stagefarm::farmapi
