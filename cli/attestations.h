// Attestations of a build (`stagefarm build --provenance`, `--sbom`,
// `--attest`): what was asked, and the statements for each platform's
// image, stored with the images as an index (attest/attach.h).
#ifndef STAGEFARM_CLI_ATTESTATIONS_H_
#define STAGEFARM_CLI_ATTESTATIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/local.h"
#include "engine/build_engine.h"
#include "image/oci.h"

namespace stagefarm::cli {

struct AttestOptions {
  bool provenance = false;
  bool provenance_max = false;
  bool sbom = false;
  bool any() const { return provenance || sbom; }
};

// Parses --provenance VALUE (true, false, min, max, mode=min|max),
// --sbom and each --attest type=provenance[,mode=..]|type=sbom.
absl::StatusOr<AttestOptions> ParseAttestFlags(
    const std::string& provenance, bool sbom,
    const std::vector<std::string>& attest);

struct BuiltImage {
  image::IndexEntry entry;  // platform and manifest
  engine::ImageState state;
  std::string provenance;  // the farm's envelope (engine::BuildResult)
  std::string reproduced;  // the verified rebuild's manifest, hex
};

// Stores an index over `images` with their attestations; returns it.
// `request` is the build's (its target platform is each image's);
// `names` the tags; `builder_id` who built (the farm or this machine);
// `started`/`finished` RFC 3339.
absl::StatusOr<image::Descriptor> AttachAttestations(
    Local* local, const AttestOptions& options,
    const engine::BuildRequest& request, const std::vector<BuiltImage>& images,
    const std::vector<std::string>& names, const std::string& builder_id,
    const std::string& started, const std::string& finished);

// `stagefarm attest show NAME [--type provenance|sbom] [--platform P]`:
// prints the statements (one JSON document a line).
int AttestShowCommand(const LocalOptions& local, const std::string& name,
                      const std::string& type);

// `stagefarm attest verify NAME --key PUB [--policy FILE] [--platform P]`:
// for each image of the index (or P's), its signed provenance verifies
// with the key, is about that image, matches the statement stored beside
// it, and meets the policy (docs/operations.md). Prints one line an image;
// exits 1 at the first failure, saying why.
int AttestVerifyCommand(const LocalOptions& local, const std::string& name,
                        const std::string& key_file,
                        const std::string& policy_file);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_ATTESTATIONS_H_
