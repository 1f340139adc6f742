#include "farmapi/build_spec.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "platform/platform.h"

namespace stagefarm::farmapi {
namespace {

// An unknown name (the scheduler refuses them) counts as gzip.
archives::Compression CompressionOf(const std::string& name) {
  return archives::ParseCompression(name).value_or(
      archives::Compression::kGzip);
}

}  // namespace

absl::Status CheckMapKey(absl::string_view flag, absl::string_view key) {
  if (stagefarm::json::IsValidUtf8(key)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      flag, ": the name \"", absl::CHexEscape(key),
      "\" is not UTF-8; a farm build's names must be (values may be any "
      "bytes)"));
}

absl::Status ToSpec(const engine::BuildRequest& request, v1::BuildSpec* spec) {
  for (const auto& [k, v] : request.plan_options.build_args) {
    RETURN_IF_ERROR(CheckMapKey("--build-arg", k));
  }
  for (const auto& [k, v] : request.labels) {
    RETURN_IF_ERROR(CheckMapKey("--label", k));
  }
  spec->set_dockerfile(request.dockerfile);
  spec->set_dockerfile_name(request.dockerfile_name);
  spec->set_dockerignore(request.dockerignore);
  for (const auto& [k, v] : request.plan_options.build_args) {
    (*spec->mutable_build_args())[k] = v;
  }
  spec->set_target(request.plan_options.target);
  spec->set_target_platform(request.plan_options.target_platform);
  spec->set_build_platform(request.plan_options.build_platform);
  spec->set_no_cache(request.no_cache);
  for (const auto& [k, v] : request.labels) (*spec->mutable_labels())[k] = v;
  if (request.source_date_epoch) {
    spec->set_has_source_date_epoch(true);
    spec->set_source_date_epoch(*request.source_date_epoch);
  }
  spec->set_compression(archives::CompressionName(request.compression));
  spec->set_compression_level(request.compression_level);
  spec->set_log_max_bytes(request.log_max_bytes);
  for (const std::string& e : request.entitlements) spec->add_entitlements(e);
  for (const auto& [name, d] : request.images) {
    d.ToProto(&(*spec->mutable_images())[name]);
  }
  return absl::OkStatus();
}

absl::StatusOr<engine::BuildRequest> FromSpec(const v1::BuildSpec& spec) {
  engine::BuildRequest r;
  r.dockerfile = spec.dockerfile();
  r.dockerfile_name =
      spec.dockerfile_name().empty() ? "Dockerfile" : spec.dockerfile_name();
  r.dockerignore = spec.dockerignore();
  r.plan_options.target = spec.target();
  std::string host = platform::Host().String();
  r.plan_options.target_platform =
      spec.target_platform().empty() ? host : spec.target_platform();
  r.plan_options.build_platform =
      spec.build_platform().empty() ? host : spec.build_platform();
  for (const auto& [k, v] : spec.build_args()) {
    r.plan_options.build_args[k] = v;
  }
  r.no_cache = spec.no_cache();
  for (const auto& [k, v] : spec.labels()) r.labels[k] = v;
  if (spec.has_source_date_epoch()) {
    r.source_date_epoch = spec.source_date_epoch();
  }
  r.compression = CompressionOf(spec.compression());
  r.compression_level = spec.compression_level();
  r.log_max_bytes = spec.log_max_bytes();
  r.entitlements.insert(spec.entitlements().begin(), spec.entitlements().end());
  for (const auto& [name, d] : spec.images()) {
    absl::StatusOr<Digest> digest = Digest::FromProto(d);
    if (!digest.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "build spec: image ", name, ": ", digest.status().message()));
    }
    r.images[name] = *digest;
  }
  return r;
}

}  // namespace stagefarm::farmapi
