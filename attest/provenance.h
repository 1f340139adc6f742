// Build provenance: an in-toto Statement (v1) whose predicate is SLSA
// provenance v1, with the fields BuildKit's provenance carries where the
// concepts match (docs/compatibility.md): the build definition (the
// Dockerfile as config source, the request's target, platform, build args
// and secret ids, never secret values), resolved dependencies (base images
// by digest), the builder and run times, and with mode max the stages and
// steps. Pure; thread-compatible.
#ifndef STAGEFARM_ATTEST_PROVENANCE_H_
#define STAGEFARM_ATTEST_PROVENANCE_H_

#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace stagefarm::attest {

inline constexpr char kStatementType[] = "https://in-toto.io/Statement/v1";
inline constexpr char kSlsaProvenanceV1[] = "https://slsa.dev/provenance/v1";
inline constexpr char kSpdxPredicate[] = "https://spdx.dev/Document";
inline constexpr char kBuildType[] =
    "https://stagefarm.invalid/provenance/dockerfile/v1";

struct Subject {
  std::string name;    // "pkg:docker/app@1?platform=linux%2Famd64"
  std::string sha256;  // hex of the image manifest
};

struct Dependency {
  std::string uri;     // "pkg:docker/busybox@latest?platform=linux%2Famd64"
  std::string sha256;  // hex
};

struct ProvenanceInput {
  bool max = false;  // mode=max: build args' values and the stage layout
  std::vector<Subject> subjects;
  std::string dockerfile_name;
  std::string dockerfile_sha256;  // hex
  std::string context;  // "sha256:<hex>/<size>" of the context tree, or ""
  std::string target;
  std::string platform;          // the target platform
  std::string builder_platform;  // BUILDPLATFORM
  std::map<std::string, std::string> build_args;
  std::vector<std::string> secret_ids;
  std::vector<Dependency> dependencies;
  std::string builder_id;  // who built: the farm's scheduler or this machine
  std::string builder_version;
  std::string invocation_id;
  std::string started, finished;  // RFC 3339
  nlohmann::json layout;  // max: [{"stage", "platform", "steps": [...]}]
};

// The statement as JSON (canonical: sorted keys).
nlohmann::json ProvenanceStatement(const ProvenanceInput& in);

// An in-toto Statement of `predicate_type` about `subjects`.
nlohmann::json Statement(const std::vector<Subject>& subjects,
                         const std::string& predicate_type,
                         nlohmann::json predicate);

}  // namespace stagefarm::attest

#endif  // STAGEFARM_ATTEST_PROVENANCE_H_
