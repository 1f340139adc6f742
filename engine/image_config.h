// What a Dockerfile's instructions do to an image's config, as pure
// functions of the expanded step and the config: the metadata
// instructions' edits (ENV, LABEL, CMD, ENTRYPOINT, SHELL, USER, EXPOSE,
// VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER) and the process a
// RUN starts. The stage runner applies them and keys and records the
// steps; the build front's fuzzer runs them on arbitrary Dockerfiles.
// Strings are user bytes (not necessarily UTF-8); nothing here throws.
#ifndef STAGEFARM_ENGINE_IMAGE_CONFIG_H_
#define STAGEFARM_ENGINE_IMAGE_CONFIG_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/instructions.h"
#include "nlohmann/json.hpp"

namespace stagefarm::engine {

// The strings of a JSON array (other members skipped; not an array: none).
std::vector<std::string> JsonStrings(const nlohmann::json& j);

// "KEY" of "KEY=VALUE".
std::string EnvKey(absl::string_view kv);

// Sets KEY=VALUE in `config`'s Env, in place of an earlier KEY.
void SetEnv(nlohmann::json* config, const std::string& key,
            const std::string& value);

// The argv of a shell-form command under `config`'s SHELL (default
// /bin/sh -c).
std::vector<std::string> ShellArgs(const nlohmann::json& config,
                                   const std::string& cmd);

// The process a RUN starts: the shell form through the stage's SHELL
// (heredocs appended, or `RUN <<EOF` run as the script), the exec form as
// written.
std::vector<std::string> RunArgs(const dockerfile::ExpandedStep& step,
                                 const dockerfile::RunInst& run,
                                 const nlohmann::json& config);

// What a metadata step changed, for its cache key and its history entry.
struct MetadataChange {
  std::string key_name;                 // the key's field
  std::vector<std::string> key_values;  // its value (or values)
  bool key_is_list = false;             // several values (AddList)
  std::string history;                  // "ENV A=1", "CMD [\"sh\"]", ...
};

// Applies a metadata step to `image` (the whole image config, its
// "config" object inside). `cmd_set` says whether this stage set CMD
// already (an ENTRYPOINT clears an inherited CMD, as in Docker). Returns
// nullopt for the instructions that are not metadata (FROM, ARG, RUN,
// COPY, ADD, WORKDIR).
std::optional<MetadataChange> ApplyMetadata(
    const dockerfile::ExpandedStep& step, nlohmann::json* image, bool* cmd_set);

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_IMAGE_CONFIG_H_
