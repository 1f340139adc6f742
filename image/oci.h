// OCI image documents: descriptors, manifests and image configs as JSON, and
// the reference names images are tagged with. Pure; thread-compatible.
//
// Documents are nlohmann::json objects with sorted keys, so serializing the
// same document always gives the same bytes (and the same digest).
#ifndef STAGEFARM_IMAGE_OCI_H_
#define STAGEFARM_IMAGE_OCI_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"
#include "nlohmann/json.hpp"
#include "platform/platform.h"

namespace stagefarm::image {

inline constexpr char kMediaTypeManifest[] =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kMediaTypeIndex[] =
    "application/vnd.oci.image.index.v1+json";
inline constexpr char kMediaTypeConfig[] =
    "application/vnd.oci.image.config.v1+json";
inline constexpr char kMediaTypeDockerManifest[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kMediaTypeDockerConfig[] =
    "application/vnd.docker.container.image.v1+json";
inline constexpr char kMediaTypeDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kMediaTypeDockerLayer[] =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";

// Docker's default PATH, which a RUN gets when the image sets none.
inline constexpr char kDefaultPath[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The most layers an image may have: Docker's bound (its layer store refuses
// a deeper chain with "max depth exceeded"), which also keeps an image's
// lower directories within what one overlay mount takes. Pull, import and
// build refuse more, each through CheckLayerCount.
inline constexpr int kMaxImageLayers = 127;

// RESOURCE_EXHAUSTED "max depth exceeded: <image> has <n> layers, more than
// the 127 an image may have" when `layers` > kMaxImageLayers; `image` names
// the image (a reference, a file, a build stage).
absl::Status CheckLayerCount(size_t layers, absl::string_view image);

struct Descriptor {
  std::string media_type;
  Digest digest;
};

// "sha256:<hex>".
std::string OciDigest(const Digest& digest);
// Parses "sha256:<hex>" plus a size.
absl::StatusOr<Digest> ParseOciDigest(absl::string_view text, int64_t size,
                                      absl::string_view field);

nlohmann::json DescriptorJson(const Descriptor& d);
// A descriptor object: "digest" a sha256 string, "size" a non-negative
// integer, "mediaType" a string if present. INVALID_ARGUMENT naming `field`
// and the member otherwise.
absl::StatusOr<Descriptor> ParseDescriptor(const nlohmann::json& j,
                                           absl::string_view field);

// A parsed image: the manifest's config and layers, and the config document.
struct Image {
  nlohmann::json config;  // the whole image config document
  std::vector<Descriptor> layers;
  // diff_ids from config.rootfs, one per layer.
  std::vector<std::string> diff_ids;
};

// A new empty image config for `p` (no layers, empty config).
nlohmann::json EmptyImageConfig(const platform::Platform& p = platform::Host());

// The platform an image config names (os, architecture, variant); false
// when it names no architecture.
bool ConfigPlatform(const nlohmann::json& config, platform::Platform* out);
// Sets a config's os, architecture and variant (removing an old variant).
void SetConfigPlatform(nlohmann::json* config, const platform::Platform& p);

// One image of an image index (manifest list).
struct IndexEntry {
  platform::Platform platform;
  Descriptor manifest;
};

// An OCI image index over `entries`, in their order.
nlohmann::json MakeIndex(const std::vector<IndexEntry>& entries);
// True for a document that is an image index or a Docker manifest list.
bool IsIndex(const nlohmann::json& doc);
// The entries of an index with a platform (others, such as attestation
// manifests, are skipped). INVALID_ARGUMENT for a malformed entry or a
// member of the wrong type (a mediaType that is no string, an entry that is
// no object, a platform whose os is a number, ...).
absl::StatusOr<std::vector<IndexEntry>> ParseIndex(const nlohmann::json& doc);
// Every manifest an index names, attestation manifests included, in order.
absl::StatusOr<std::vector<Descriptor>> IndexManifests(
    const nlohmann::json& doc);

// The "layers" of an image manifest, each a descriptor (any count: the
// callers that take an image check CheckLayerCount).
absl::StatusOr<std::vector<Descriptor>> ParseManifestLayers(
    const nlohmann::json& manifest);

// Checks a config document: rootfs.diff_ids present, one per layer.
absl::StatusOr<Image> ParseImage(absl::string_view manifest_bytes,
                                 absl::string_view config_bytes);

// The manifest for a config blob and layers.
nlohmann::json MakeManifest(const Descriptor& config,
                            const std::vector<Descriptor>& layers);

// Canonical serialization (sorted keys, no spaces).
std::string Serialize(const nlohmann::json& j);

// Parses JSON without throwing; `what` names the document in the error.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text,
                                         absl::string_view what);

// The layer chain ids of a list of diff ids (OCI image spec: ChainID(L0) =
// DiffID(L0), ChainID(Ln) = SHA256(ChainID(Ln-1) + " " + DiffID(Ln))).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

// Normalizes an image reference the way Docker names local images:
// "busybox" -> "busybox:latest", "docker.io/library/x:1" -> "x:1",
// "host:5000/a/b" -> "host:5000/a/b:latest"; "name@sha256:..." stays.
// INVALID_ARGUMENT for an empty or malformed reference.
absl::StatusOr<std::string> NormalizeReference(absl::string_view ref);

}  // namespace stagefarm::image

#endif  // STAGEFARM_IMAGE_OCI_H_
