// Image references as a registry sees them, by Docker's grammar
// (distribution/reference, ParseNormalizedNamed): "busybox" is
// docker.io/library/busybox:latest, "127.0.0.1:5000/team/app:1" names a
// repository on that host.
//
//   reference  := name [ ":" tag ] [ "@" digest ]
//   name       := [ domain "/" ] path            (at most 255 bytes in all)
//   domain     := host [ ":" port ]               host: DNS labels or [IPv6]
//   path       := component ( "/" component )*
//   component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//   tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//   digest     := "sha256:" 64 lower-case hex digits
//
// The first component is a domain when it holds '.' or ':', is
// "localhost", or has an upper-case letter (as Docker decides). Pure.
#ifndef STAGEFARM_REGISTRY_REFERENCE_H_
#define STAGEFARM_REGISTRY_REFERENCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::registry {

inline constexpr char kDockerHub[] = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "127.0.0.1:5000", "ghcr.io"
  std::string repository;  // "library/busybox", "team/app"
  std::string tag;         // "latest" when neither tag nor digest is given
  std::string digest;      // "sha256:<hex>", or ""

  // The tag, or the digest when one is given: what /manifests/ is asked for.
  const std::string& ManifestRef() const {
    return digest.empty() ? tag : digest;
  }
  // "registry/repository:tag" (and "@digest"); docker.io is written out.
  std::string String() const;
};

// INVALID_ARGUMENT with Docker's message ("invalid reference format",
// "invalid reference format: repository name must be lowercase", ...)
// naming `text` (escaped: the message is printable ASCII whatever the
// bytes were).
absl::StatusOr<Reference> ParseReference(absl::string_view text);

// Whether `host` ("127.0.0.1:5000", "localhost", "[::1]:5000") is this
// machine's loopback.
bool IsLoopbackHost(absl::string_view host);

}  // namespace stagefarm::registry

#endif  // STAGEFARM_REGISTRY_REFERENCE_H_
