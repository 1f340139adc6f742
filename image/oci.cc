#include "image/oci.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

absl::StatusOr<Descriptor> ParseDescriptor(const nlohmann::json& j,
                                           absl::string_view field) {
  if (!j.is_object() || !j.contains("digest") || !j["digest"].is_string() ||
      !j.contains("size") || !j["size"].is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a descriptor needs a digest and a size"));
  }
  Descriptor d;
  if (j.contains("mediaType") && j["mediaType"].is_string()) {
    d.media_type = j["mediaType"].get<std::string>();
  }
  ASSIGN_OR_RETURN(d.digest, ParseOciDigest(j["digest"].get<std::string>(),
                                            j["size"].get<int64_t>(), field));
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

absl::StatusOr<std::vector<IndexEntry>> ParseIndex(const nlohmann::json& doc) {
  if (!IsIndex(doc) || !doc["manifests"].is_array()) {
    return absl::InvalidArgumentError("image index: no manifests array");
  }
  std::vector<IndexEntry> out;
  int i = 0;
  for (const nlohmann::json& m : doc["manifests"]) {
    std::string field = absl::StrCat("index.manifests[", i++, "]");
    if (!m.is_object() || !m.contains("platform") ||
        !m["platform"].is_object()) {
      continue;
    }
    const nlohmann::json& p = m["platform"];
    auto text = [&p](const char* key) {
      return p.contains(key) && p[key].is_string() ? p[key].get<std::string>()
                                                   : std::string();
    };
    if (text("os") == "unknown") continue;  // attestations
    IndexEntry e;
    ASSIGN_OR_RETURN(e.manifest, ParseDescriptor(m, field));
    e.platform =
        platform::FromOci(text("os"), text("architecture"), text("variant"));
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<Descriptor>> IndexManifests(
    const nlohmann::json& doc) {
  if (!IsIndex(doc) || !doc["manifests"].is_array()) {
    return absl::InvalidArgumentError("image index: no manifests array");
  }
  std::vector<Descriptor> out;
  int i = 0;
  for (const nlohmann::json& m : doc["manifests"]) {
    ASSIGN_OR_RETURN(
        Descriptor d,
        ParseDescriptor(m, absl::StrCat("index.manifests[", i++, "]")));
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text,
                                         absl::string_view what) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": invalid JSON"));
  }
  return j;
}

absl::StatusOr<Image> ParseImage(absl::string_view manifest_bytes,
                                 absl::string_view config_bytes) {
  ASSIGN_OR_RETURN(nlohmann::json manifest,
                   ParseJson(manifest_bytes, "image manifest"));
  ASSIGN_OR_RETURN(nlohmann::json config,
                   ParseJson(config_bytes, "image config"));
  if (!manifest.is_object() || !manifest.contains("layers") ||
      !manifest["layers"].is_array()) {
    return absl::InvalidArgumentError("image manifest: no layers array");
  }
  Image image;
  int i = 0;
  for (const auto& l : manifest["layers"]) {
    ASSIGN_OR_RETURN(
        Descriptor d,
        ParseDescriptor(l, absl::StrCat("manifest.layers[", i++, "]")));
    image.layers.push_back(std::move(d));
  }
  if (!config.is_object() || !config.contains("rootfs") ||
      !config["rootfs"].is_object() || !config["rootfs"].contains("diff_ids") ||
      !config["rootfs"]["diff_ids"].is_array()) {
    return absl::InvalidArgumentError("image config: no rootfs.diff_ids");
  }
  for (const auto& d : config["rootfs"]["diff_ids"]) {
    if (!d.is_string() || !absl::StartsWith(d.get<std::string>(), "sha256:")) {
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
  if (!config.contains("config") || !config["config"].is_object()) {
    config["config"] = nlohmann::json::object();
  }
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
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
