// A build request in the engine's form (engine::BuildRequest) and on the
// farm's wire (stagefarm.v1.BuildSpec), both ways. The client fills a spec
// from its request; a worker makes the engine's request from the spec it
// leased. What is not a plain field is the caller's: the context (uploaded
// by the client, fetched by the worker), secrets (read from files, written
// to files), the instance name and the creation time.
#ifndef STAGEFARM_FARMAPI_BUILD_SPEC_H_
#define STAGEFARM_FARMAPI_BUILD_SPEC_H_

#include "absl/status/statusor.h"
#include "engine/build_engine.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::farmapi {

// The Dockerfile and its name, .dockerignore, build args, target,
// --no-cache, labels, SOURCE_DATE_EPOCH, compression and level, the log
// limit and the images already resolved. The names of build args and labels
// are the keys of proto maps, which must be UTF-8: one that is not is
// INVALID_ARGUMENT naming the flag (their values are bytes).
absl::Status ToSpec(const engine::BuildRequest& request, v1::BuildSpec* spec);

// A proto map key given on the command line (`flag`): INVALID_ARGUMENT
// unless it is UTF-8.
absl::Status CheckMapKey(absl::string_view flag, absl::string_view key);

// The same fields back. An invalid image digest is INVALID_ARGUMENT naming
// the image.
absl::StatusOr<engine::BuildRequest> FromSpec(const v1::BuildSpec& spec);

}  // namespace stagefarm::farmapi

#endif  // STAGEFARM_FARMAPI_BUILD_SPEC_H_
