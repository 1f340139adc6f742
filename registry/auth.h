// Registry authentication pieces: the WWW-Authenticate challenge a registry
// answers 401 with, and credentials from Docker's config file
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json) as `docker
// login` writes them. Pure but for reading that file.
#ifndef STAGEFARM_REGISTRY_AUTH_H_
#define STAGEFARM_REGISTRY_AUTH_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::registry {

struct Challenge {
  std::string scheme;                         // lower case: "basic", "bearer"
  std::map<std::string, std::string> params;  // realm, service, scope, ...
};

// Parses `Bearer realm="https://auth/token",service="reg",scope="..."`.
// INVALID_ARGUMENT for a header that is not a challenge.
absl::StatusOr<Challenge> ParseChallenge(absl::string_view header);

struct Credentials {
  std::string username;
  std::string password;  // or an identity token (username "<token>")
};

// The credentials saved for `registry` ("docker.io" also matches
// "https://index.docker.io/v1/"), from the config file's "auths" section
// ("auth": base64 of user:password, or "username"/"password"). nullopt when
// the file or the entry is absent; an error for a file that is not JSON or an
// entry that does not decode. Credential helpers (credsStore, credHelpers)
// are not run: an entry kept only by a helper is reported as such.
absl::StatusOr<std::optional<Credentials>> LookupCredentials(
    const std::string& config_path, const std::string& registry);

// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json ("" if
// neither variable is set).
std::string DefaultDockerConfig();

}  // namespace stagefarm::registry

#endif  // STAGEFARM_REGISTRY_AUTH_H_
