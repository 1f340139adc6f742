#include "attest/attach.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace stagefarm::attest {

namespace {

using json = nlohmann::json;

constexpr char kRefType[] = "vnd.docker.reference.type";
constexpr char kRefDigest[] = "vnd.docker.reference.digest";
constexpr char kPredicateType[] = "in-toto.io/predicate-type";

// obj[key] when it is a string, else "" (the documents may come from
// anywhere: an import, a registry).
std::string Str(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_string()
             ? obj[key].get<std::string>()
             : std::string();
}

}  // namespace

absl::StatusOr<image::Descriptor> PutIndexWithAttestations(
    image::ImageStore* store, const std::vector<image::IndexEntry>& images,
    const std::vector<std::vector<Attestation>>& attestations) {
  json index = image::MakeIndex(images);
  for (size_t i = 0; i < images.size() && i < attestations.size(); ++i) {
    if (attestations[i].empty()) continue;
    json layers = json::array();
    json diff_ids = json::array();
    for (const Attestation& a : attestations[i]) {
      RETURN_IF_ERROR(store->blobs()->Put(store->ns(), a.statement));
      Digest d = Digest::Of(a.statement);
      layers.push_back({{"mediaType", a.media_type},
                        {"digest", image::OciDigest(d)},
                        {"size", d.size()},
                        {"annotations", {{kPredicateType, a.predicate_type}}}});
      diff_ids.push_back(image::OciDigest(d));
    }
    // As BuildKit writes it: a config for no platform whose diff_ids are
    // the statements' digests.
    std::string config = image::Serialize(
        json{{"architecture", "unknown"},
             {"os", "unknown"},
             {"config", json::object()},
             {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}});
    RETURN_IF_ERROR(store->blobs()->Put(store->ns(), config));
    Digest cd = Digest::Of(config);
    std::string manifest =
        image::Serialize(json{{"schemaVersion", 2},
                              {"mediaType", image::kMediaTypeManifest},
                              {"config",
                               {{"mediaType", image::kMediaTypeConfig},
                                {"digest", image::OciDigest(cd)},
                                {"size", cd.size()}}},
                              {"layers", layers}});
    RETURN_IF_ERROR(store->blobs()->Put(store->ns(), manifest));
    Digest md = Digest::Of(manifest);
    index["manifests"].push_back(
        {{"mediaType", image::kMediaTypeManifest},
         {"digest", image::OciDigest(md)},
         {"size", md.size()},
         {"platform", {{"architecture", "unknown"}, {"os", "unknown"}}},
         {"annotations",
          {{kRefType, "attestation-manifest"},
           {kRefDigest, image::OciDigest(images[i].manifest.digest)}}}});
  }
  std::string bytes = image::Serialize(index);
  RETURN_IF_ERROR(store->blobs()->Put(store->ns(), bytes));
  return image::Descriptor{image::kMediaTypeIndex, Digest::Of(bytes)};
}

absl::StatusOr<std::vector<Found>> ReadAttestations(image::ImageStore* store,
                                                    const Digest& index) {
  std::vector<Found> out;
  ASSIGN_OR_RETURN(std::string bytes, store->blobs()->Get(store->ns(), index));
  ASSIGN_OR_RETURN(json doc, image::ParseJson(bytes, "image index"));
  if (!image::IsIndex(doc)) return out;
  for (const json& m : doc["manifests"]) {
    if (!m.is_object() || !m.contains("annotations") ||
        Str(m["annotations"], kRefType) != "attestation-manifest") {
      continue;
    }
    ASSIGN_OR_RETURN(image::Descriptor d,
                     image::ParseDescriptor(m, "attestation manifest"));
    ASSIGN_OR_RETURN(Digest about,
                     image::ParseOciDigest(Str(m["annotations"], kRefDigest), 0,
                                           "vnd.docker.reference.digest"));
    ASSIGN_OR_RETURN(std::string mbytes,
                     store->blobs()->Get(store->ns(), d.digest));
    ASSIGN_OR_RETURN(json manifest,
                     image::ParseJson(mbytes, "attestation manifest"));
    if (!manifest.contains("layers") || !manifest["layers"].is_array()) {
      continue;
    }
    for (const json& l : manifest["layers"]) {
      ASSIGN_OR_RETURN(image::Descriptor ld,
                       image::ParseDescriptor(l, "attestation layer"));
      Found f;
      f.image = about;
      f.media_type = ld.media_type;
      if (l.contains("annotations")) {
        f.predicate_type = Str(l["annotations"], kPredicateType);
      }
      ASSIGN_OR_RETURN(f.statement,
                       store->blobs()->Get(store->ns(), ld.digest));
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace stagefarm::attest
