#include "registry/responses.h"

#include <cstdint>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace stagefarm::registry {

absl::StatusOr<std::string> ParseErrorBody(absl::string_view body) {
  absl::StatusOr<nlohmann::json> j = json::Parse(body, "error body");
  if (!j.ok() || !j->is_object()) return std::string();
  ASSIGN_OR_RETURN(const nlohmann::json* errors,
                   json::OptionalArray(*j, "errors", "error body"));
  if (errors == nullptr || errors->empty()) return std::string();
  const nlohmann::json& first = (*errors)[0];
  if (!first.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("error body: errors[0] is a ", json::TypeName(first),
                     ", not an object"));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> code,
                   json::OptionalString(first, "code", "error body.errors[0]"));
  ASSIGN_OR_RETURN(
      std::optional<std::string> message,
      json::OptionalString(first, "message", "error body.errors[0]"));
  std::string out = code.value_or("");
  if (message.has_value() && !message->empty()) {
    absl::StrAppend(&out, out.empty() ? "" : ": ", *message);
  }
  return out;
}

absl::StatusOr<std::string> ParseTokenAnswer(absl::string_view body) {
  ASSIGN_OR_RETURN(nlohmann::json j, json::Parse(body, "token answer"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token answer: a ", json::TypeName(j), ", not an object"));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> token,
                   json::OptionalString(j, "token", "token answer"));
  if (token.has_value() && !token->empty()) return *std::move(token);
  ASSIGN_OR_RETURN(std::optional<std::string> access,
                   json::OptionalString(j, "access_token", "token answer"));
  if (access.has_value() && !access->empty()) return *std::move(access);
  return absl::UnauthenticatedError(
      "token answer: no \"token\" or \"access_token\"");
}

absl::StatusOr<ManifestAnswer> ParseManifestAnswer(
    absl::string_view body, absl::string_view content_type) {
  ASSIGN_OR_RETURN(nlohmann::json doc, json::Parse(body, "manifest"));
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: a ", json::TypeName(doc), ", not an object"));
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> version,
                   json::OptionalInt(doc, "schemaVersion", "manifest"));
  if (version == 1) {
    return absl::UnimplementedError(
        "manifest: schema 1, which is deprecated and not supported; push "
        "the image again with a current tool");
  }
  if (version.has_value() && *version != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "manifest: schemaVersion ", *version, " is not supported (2 is)"));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> doc_type,
                   json::OptionalString(doc, "mediaType", "manifest"));
  ManifestAnswer out;
  if (doc_type.has_value()) {
    out.media_type = *doc_type;
  } else {
    // "application/vnd.oci.image.index.v1+json; charset=utf-8"
    absl::string_view t = content_type.substr(0, content_type.find(';'));
    out.media_type = std::string(absl::StripAsciiWhitespace(t));
  }
  out.is_index = out.media_type == image::kMediaTypeIndex ||
                 out.media_type == image::kMediaTypeDockerManifestList ||
                 image::IsIndex(doc);
  if (out.is_index) {
    ASSIGN_OR_RETURN(out.platforms, image::ParseIndex(doc));
    return out;
  }
  ASSIGN_OR_RETURN(const nlohmann::json* config,
                   json::OptionalObject(doc, "config", "manifest"));
  if (config == nullptr) {
    return absl::InvalidArgumentError("manifest: no config");
  }
  ASSIGN_OR_RETURN(out.config,
                   image::ParseDescriptor(*config, "manifest.config"));
  ASSIGN_OR_RETURN(out.layers, image::ParseManifestLayers(doc));
  return out;
}

}  // namespace stagefarm::registry
