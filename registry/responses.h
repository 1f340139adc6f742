// What a registry answers in JSON, parsed without trusting it: the error
// body of a failed request, a token service's answer, and a manifest or
// image index. Every member is type-checked; a wrong type is an error naming
// the field, never an exception. Pure; thread-safe (no shared state).
#ifndef STAGEFARM_REGISTRY_RESPONSES_H_
#define STAGEFARM_REGISTRY_RESPONSES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "image/oci.h"

namespace stagefarm::registry {

// The detail of an error body, {"errors":[{"code":"MANIFEST_UNKNOWN",
// "message":"..."}]}: "MANIFEST_UNKNOWN: ..." from its first entry, or ""
// for a body that is no such document (a proxy's HTML page, an empty
// body). INVALID_ARGUMENT naming the member when one has the wrong type;
// the caller keeps the HTTP status as the error either way.
absl::StatusOr<std::string> ParseErrorBody(absl::string_view body);

// The bearer token of a token service's answer: "token", else
// "access_token" (Docker's token protocol). INVALID_ARGUMENT for an answer
// that is not a JSON object or a member that is not a string;
// UNAUTHENTICATED when it holds no token.
absl::StatusOr<std::string> ParseTokenAnswer(absl::string_view body);

// A manifest as a registry answers it: an image manifest, or an index
// (manifest list) of per-platform images.
struct ManifestAnswer {
  std::string media_type;  // the document's mediaType, else Content-Type
  bool is_index = false;
  std::vector<image::IndexEntry> platforms;  // an index's images
  image::Descriptor config;                  // an image's config
  std::vector<image::Descriptor> layers;     // an image's layers
};

// Parses `body`, served with `content_type`. UNIMPLEMENTED for a schema 1
// manifest; INVALID_ARGUMENT for text that is not JSON, a schemaVersion
// other than 2, a member of the wrong type ("manifest: field
// \"schemaVersion\" is a string, not a integer"), or a missing config or
// layers array. Any number of layers is returned: the puller checks
// image::CheckLayerCount.
absl::StatusOr<ManifestAnswer> ParseManifestAnswer(
    absl::string_view body, absl::string_view content_type);

}  // namespace stagefarm::registry

#endif  // STAGEFARM_REGISTRY_RESPONSES_H_
