// Attestations stored as BuildKit stores them: for each image of an image
// index, an attestation manifest (an OCI image manifest whose layers are
// in-toto statements, `application/vnd.in-toto+json`, each annotated with
// its `in-toto.io/predicate-type`) named in the index with platform
// unknown/unknown and the annotations `vnd.docker.reference.type:
// attestation-manifest` and `vnd.docker.reference.digest: <the image's
// manifest digest>`. Thread-safe as the ImageStore is.
#ifndef STAGEFARM_ATTEST_ATTACH_H_
#define STAGEFARM_ATTEST_ATTACH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attest/provenance.h"
#include "attest/signing.h"
#include "image/image_store.h"

namespace stagefarm::attest {

struct Attestation {
  std::string predicate_type;
  std::string statement;  // the in-toto statement's JSON bytes
  // kMediaTypeInToto, or kMediaTypeDsse for a signed envelope of one.
  std::string media_type = kMediaTypeInToto;
};

// Stores an index over `images` followed by one attestation manifest for
// each image with attestations (`attestations[i]` for `images[i]`).
absl::StatusOr<image::Descriptor> PutIndexWithAttestations(
    image::ImageStore* store, const std::vector<image::IndexEntry>& images,
    const std::vector<std::vector<Attestation>>& attestations);

struct Found {
  Digest image;  // the image manifest the attestation is about
  std::string predicate_type;
  std::string statement;  // the layer's bytes (a statement or an envelope)
  std::string media_type;
};

// The attestations an index holds (none for a single image).
absl::StatusOr<std::vector<Found>> ReadAttestations(image::ImageStore* store,
                                                    const Digest& index);

}  // namespace stagefarm::attest

#endif  // STAGEFARM_ATTEST_ATTACH_H_
