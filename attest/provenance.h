// Build provenance: an in-toto Statement (v1) whose predicate is SLSA
// provenance v1, with the fields BuildKit's provenance carries where the
// concepts match (docs/compatibility.md): the build definition (the
// Dockerfile as config source, the request's target, platform, build args
// and secret ids, never secret values), resolved dependencies (base images
// by digest), the builder and run times, and with mode max the stages and
// steps. Pure; thread-compatible.
#ifndef STAGEFARM_ATTEST_PROVENANCE_H_
#define STAGEFARM_ATTEST_PROVENANCE_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/plan.h"
#include "nlohmann/json.hpp"
#include "platform/platform.h"

namespace stagefarm::attest {

// The media type of an in-toto statement (an attestation layer, a DSSE
// payload).
inline constexpr char kMediaTypeInToto[] = "application/vnd.in-toto+json";
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
  std::string sha256;  // hex; "" for an ADD <url> without --checksum
};

// How BuildKit names an image in provenance:
// "pkg:docker/busybox@latest?platform=linux%2Famd64".
std::string DockerPurl(const std::string& name, const platform::Platform& p);

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
  // The networks RUN steps asked for ("default", "none", "host"), sorted,
  // and whether one ran with --security=insecure.
  std::vector<std::string> networks;
  bool insecure = false;
  // Set when the build was built again without cache (on another worker,
  // on a farm) and gave the same image: that image's manifest, hex.
  std::string reproduced;
  // The client's account of its source (buildx's vcs:source and
  // vcs:revision): a git remote and commit of the context, if it has one.
  std::string vcs_source, vcs_revision;
};

// The image names a build's plan uses, resolved to what the build used:
// `resolve(name, platform of the stage naming it)` gives a sha256 hex.
using ImageResolver = std::function<absl::StatusOr<std::string>(
    const std::string& name, const platform::Platform& platform)>;

// What the plan says for its provenance: the images every needed stage
// starts from or copies from, ADD URLs (by their --checksum when given),
// the RUN steps' networks and sandbox, and the stages and their
// instructions (`layout`, kept with mode max).
absl::Status DescribePlan(const dockerfile::Plan& plan,
                          const dockerfile::PlanOptions& options,
                          const ImageResolver& resolve, ProvenanceInput* in);

// The statement as JSON (canonical: sorted keys).
nlohmann::json ProvenanceStatement(const ProvenanceInput& in);

// An in-toto Statement of `predicate_type` about `subjects`.
nlohmann::json Statement(const std::vector<Subject>& subjects,
                         const std::string& predicate_type,
                         nlohmann::json predicate);

}  // namespace stagefarm::attest

#endif  // STAGEFARM_ATTEST_PROVENANCE_H_
