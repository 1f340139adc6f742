#include "image/oci.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::image {

std::string OciDigest(const Digest& digest) {
  return absl::StrCat("sha256:", digest.hash());
}

absl::StatusOr<Digest> ParseOciDigest(absl::string_view text, int64_t size,
                                      absl::string_view field) {
  if (!absl::StartsWith(text, "sha256:")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unsupported digest \"", text,
                     "\" (only sha256 is supported)"));
  }
  return Digest::Parse(text.substr(7), size, field);
}

nlohmann::json DescriptorJson(const Descriptor& d) {
  return nlohmann::json{{"mediaType", d.media_type},
                        {"digest", OciDigest(d.digest)},
                        {"size", d.digest.size()}};
}

namespace {

// A required field: missing is as malformed as mistyped (json.h says
// NOT_FOUND, which would read as "no such image").
template <typename T>
absl::StatusOr<T> Required(absl::StatusOr<T> v) {
  if (absl::IsNotFound(v.status())) {
    return absl::InvalidArgumentError(v.status().message());
  }
  return v;
}

absl::Status NotAnObject(const nlohmann::json& j, absl::string_view field) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is a ", json::TypeName(j), ", not an object"));
}

// The optional string members of a platform object ("" when absent).
absl::StatusOr<platform::Platform> ParsePlatform(const nlohmann::json& p,
                                                 absl::string_view field) {
  std::string text[3];
  const char* keys[3] = {"os", "architecture", "variant"};
  for (int i = 0; i < 3; ++i) {
    ASSIGN_OR_RETURN(std::optional<std::string> v,
                     json::OptionalString(p, keys[i], field));
    text[i] = v.value_or("");
  }
  return platform::FromOci(text[0], text[1], text[2]);
}

}  // namespace

absl::Status CheckLayerCount(size_t layers, absl::string_view image) {
  if (layers <= static_cast<size_t>(kMaxImageLayers)) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "max depth exceeded: ", image, " has ", layers, " layers, more than the ",
      kMaxImageLayers, " an image may have"));
}

absl::StatusOr<Descriptor> ParseDescriptor(const nlohmann::json& j,
                                           absl::string_view field) {
  if (!j.is_object()) return NotAnObject(j, field);
  Descriptor d;
  ASSIGN_OR_RETURN(std::optional<std::string> media,
                   json::OptionalString(j, "mediaType", field));
  d.media_type = media.value_or("");
  ASSIGN_OR_RETURN(std::string digest,
                   Required(json::String(j, "digest", field)));
  ASSIGN_OR_RETURN(int64_t size, Required(json::Int(j, "size", field)));
  if (size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": field \"size\" is negative (", size, ")"));
  }
  ASSIGN_OR_RETURN(d.digest, ParseOciDigest(digest, size, field));
  return d;
}

nlohmann::json EmptyImageConfig(const platform::Platform& p) {
  nlohmann::json config{
      {"config", nlohmann::json::object()},
      {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}}},
      {"history", nlohmann::json::array()}};
  SetConfigPlatform(&config, p);
  return config;
}

bool ConfigPlatform(const nlohmann::json& config, platform::Platform* out) {
  if (!config.is_object() || !config.contains("architecture") ||
      !config["architecture"].is_string()) {
    return false;
  }
  auto text = [&](const char* key) {
    return config.contains(key) && config[key].is_string()
               ? config[key].get<std::string>()
               : std::string();
  };
  std::string os = text("os");
  *out = platform::FromOci(os.empty() ? "linux" : os, text("architecture"),
                           text("variant"));
  return true;
}

void SetConfigPlatform(nlohmann::json* config, const platform::Platform& p) {
  (*config)["os"] = p.os;
  (*config)["architecture"] = p.architecture;
  if (p.variant.empty()) {
    config->erase("variant");
  } else {
    (*config)["variant"] = p.variant;
  }
}

nlohmann::json MakeIndex(const std::vector<IndexEntry>& entries) {
  nlohmann::json manifests = nlohmann::json::array();
  for (const IndexEntry& e : entries) {
    nlohmann::json d = DescriptorJson(e.manifest);
    nlohmann::json p{{"os", e.platform.os},
                     {"architecture", e.platform.architecture}};
    if (!e.platform.variant.empty()) p["variant"] = e.platform.variant;
    d["platform"] = std::move(p);
    manifests.push_back(std::move(d));
  }
  return nlohmann::json{{"schemaVersion", 2},
                        {"mediaType", kMediaTypeIndex},
                        {"manifests", std::move(manifests)}};
}

bool IsIndex(const nlohmann::json& doc) {
  if (!doc.is_object()) return false;
  std::string type = doc.contains("mediaType") && doc["mediaType"].is_string()
                         ? doc["mediaType"].get<std::string>()
                         : "";
  return type == kMediaTypeIndex || type == kMediaTypeDockerManifestList ||
         (type.empty() && doc.contains("manifests") && !doc.contains("config"));
}

namespace {

// The "manifests" array of an index, its mediaType checked.
absl::StatusOr<const nlohmann::json*> IndexArray(const nlohmann::json& doc) {
  if (!doc.is_object()) return NotAnObject(doc, "image index");
  RETURN_IF_ERROR(
      json::OptionalString(doc, "mediaType", "image index").status());
  ASSIGN_OR_RETURN(const nlohmann::json* manifests,
                   json::OptionalArray(doc, "manifests", "image index"));
  if (!IsIndex(doc) || manifests == nullptr) {
    return absl::InvalidArgumentError("image index: no manifests array");
  }
  return manifests;
}

}  // namespace

absl::StatusOr<std::vector<IndexEntry>> ParseIndex(const nlohmann::json& doc) {
  ASSIGN_OR_RETURN(const nlohmann::json* manifests, IndexArray(doc));
  std::vector<IndexEntry> out;
  int i = 0;
  for (const nlohmann::json& m : *manifests) {
    std::string field = absl::StrCat("index.manifests[", i++, "]");
    if (!m.is_object()) return NotAnObject(m, field);
    ASSIGN_OR_RETURN(const nlohmann::json* p,
                     json::OptionalObject(m, "platform", field));
    if (p == nullptr) continue;  // not an image of a platform
    std::string pfield = absl::StrCat(field, ".platform");
    ASSIGN_OR_RETURN(std::optional<std::string> os,
                     json::OptionalString(*p, "os", pfield));
    if (os == "unknown") continue;  // attestations
    IndexEntry e;
    ASSIGN_OR_RETURN(e.manifest, ParseDescriptor(m, field));
    ASSIGN_OR_RETURN(e.platform, ParsePlatform(*p, pfield));
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<Descriptor>> IndexManifests(
    const nlohmann::json& doc) {
  ASSIGN_OR_RETURN(const nlohmann::json* manifests, IndexArray(doc));
  std::vector<Descriptor> out;
  int i = 0;
  for (const nlohmann::json& m : *manifests) {
    ASSIGN_OR_RETURN(
        Descriptor d,
        ParseDescriptor(m, absl::StrCat("index.manifests[", i++, "]")));
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text,
                                         absl::string_view what) {
  return json::Parse(text, what);
}

absl::StatusOr<std::vector<Descriptor>> ParseManifestLayers(
    const nlohmann::json& manifest) {
  if (!manifest.is_object()) return NotAnObject(manifest, "image manifest");
  ASSIGN_OR_RETURN(const nlohmann::json* layers,
                   json::OptionalArray(manifest, "layers", "image manifest"));
  if (layers == nullptr) {
    return absl::InvalidArgumentError("image manifest: no layers array");
  }
  std::vector<Descriptor> out;
  out.reserve(layers->size());
  int i = 0;
  for (const auto& l : *layers) {
    ASSIGN_OR_RETURN(
        Descriptor d,
        ParseDescriptor(l, absl::StrCat("manifest.layers[", i++, "]")));
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<Image> ParseImage(absl::string_view manifest_bytes,
                                 absl::string_view config_bytes) {
  ASSIGN_OR_RETURN(nlohmann::json manifest,
                   ParseJson(manifest_bytes, "image manifest"));
  ASSIGN_OR_RETURN(nlohmann::json config,
                   ParseJson(config_bytes, "image config"));
  Image image;
  ASSIGN_OR_RETURN(image.layers, ParseManifestLayers(manifest));
  if (!config.is_object()) return NotAnObject(config, "image config");
  ASSIGN_OR_RETURN(const nlohmann::json* rootfs,
                   json::OptionalObject(config, "rootfs", "image config"));
  const nlohmann::json* diff_ids = nullptr;
  if (rootfs != nullptr) {
    ASSIGN_OR_RETURN(diff_ids, json::OptionalArray(*rootfs, "diff_ids",
                                                   "image config.rootfs"));
  }
  if (diff_ids == nullptr) {
    return absl::InvalidArgumentError("image config: no rootfs.diff_ids");
  }
  for (const auto& d : *diff_ids) {
    if (!d.is_string() ||
        !absl::StartsWith(d.get_ref<const std::string&>(), "sha256:")) {
      return absl::InvalidArgumentError(
          "image config: rootfs.diff_ids holds a non-sha256 entry");
    }
    image.diff_ids.push_back(d.get<std::string>());
  }
  if (image.diff_ids.size() != image.layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image: the manifest has ", image.layers.size(),
        " layers but the config lists ", image.diff_ids.size(), " diff_ids"));
  }
  ASSIGN_OR_RETURN(const nlohmann::json* inner,
                   json::OptionalObject(config, "config", "image config"));
  if (inner == nullptr) config["config"] = nlohmann::json::object();
  image.config = std::move(config);
  return image;
}

nlohmann::json MakeManifest(const Descriptor& config,
                            const std::vector<Descriptor>& layers) {
  nlohmann::json l = nlohmann::json::array();
  for (const Descriptor& d : layers) l.push_back(DescriptorJson(d));
  return nlohmann::json{{"schemaVersion", 2},
                        {"mediaType", kMediaTypeManifest},
                        {"config", DescriptorJson(config)},
                        {"layers", std::move(l)}};
}

std::string Serialize(const nlohmann::json& j) {
  return stagefarm::json::Dump(j);
}

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (const std::string& d : diff_ids) {
    if (out.empty()) {
      out.push_back(d);
    } else {
      out.push_back(absl::StrCat(
          "sha256:", Sha256::HexOf(absl::StrCat(out.back(), " ", d))));
    }
  }
  return out;
}

absl::StatusOr<std::string> NormalizeReference(absl::string_view ref) {
  std::string r(ref);
  if (r.empty()) return absl::InvalidArgumentError("empty image reference");
  for (char c : r) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid image reference \"", ref, "\""));
    }
  }
  for (absl::string_view prefix :
       {"docker.io/library/", "index.docker.io/library/", "docker.io/"}) {
    if (absl::StartsWith(r, prefix)) {
      r = r.substr(prefix.size());
      break;
    }
  }
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid image reference \"", ref, "\": ", why));
  };
  std::string name = r;
  std::string suffix;
  if (size_t at = r.find('@'); at != std::string::npos) {
    name = r.substr(0, at);
    std::string digest = r.substr(at + 1);
    if (!absl::StartsWith(digest, "sha256:") || digest.size() != 71 ||
        digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
      return invalid("the digest must be sha256:<64 lowercase hex digits>");
    }
    suffix = "@" + digest;
  }
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  std::string tag;
  if (colon != std::string::npos &&
      (slash == std::string::npos || colon > slash)) {
    tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (tag.empty() || tag.size() > 128 ||
        tag.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
                              "VWXYZ0123456789_.-") != std::string::npos ||
        tag[0] == '.' || tag[0] == '-') {
      return invalid("bad tag");
    }
  }
  if (name.empty()) return invalid("no name");
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty()) return invalid("empty path component");
  }
  if (!tag.empty()) return absl::StrCat(name, ":", tag, suffix);
  if (!suffix.empty()) return absl::StrCat(name, suffix);
  return absl::StrCat(name, ":latest");
}

}  // namespace stagefarm::image
