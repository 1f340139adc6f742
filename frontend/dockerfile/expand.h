// Per-stage ARG and ENV scope, as BuildKit applies it, and the expansion of
// each instruction's words in that scope.
//
// - A stage starts with its base image's environment (or the environment its
//   base stage ended with) and no ARGs; global ARGs are visible only when
//   redeclared (a bare `ARG name` takes the global value).
// - `ARG name=default`: a build arg of that name wins and the default is not
//   evaluated; otherwise the default is expanded in the current scope.
//   Predefined platform args and TARGETSTAGE must be declared too.
// - ENV values are expanded against the scope before the instruction; ENV
//   wins over an ARG of the same name.
// - RUN sees ENV plus the declared ARGs that have a value, and proxy build
//   args (in both cases) without declaration.
// - ADD, COPY (sources, destination, --chown, --chmod), ENV, EXPOSE (then
//   split into words), LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR expand;
//   RUN, CMD and ENTRYPOINT do not (the shell does).
// Pure; thread-compatible.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_EXPAND_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_EXPAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/plan.h"

namespace stagefarm::dockerfile {

struct ExpandedStep {
  const Instruction* instruction = nullptr;
  // Expanded words: COPY/ADD sources then destination; EXPOSE ports; VOLUME
  // paths; USER, WORKDIR, STOPSIGNAL: one word.
  std::vector<std::string> words;
  std::vector<KeyValue> pairs;  // ENV and LABEL, expanded
  std::string chown, chmod;     // COPY/ADD, expanded
  // RUN: the environment the command sees ("KEY=VALUE"; for COPY/ADD with
  // heredocs, the scope their bodies expand in), and the build args RUN
  // records in history (declared ARGs with values, first-declaration
  // order, latest value).
  std::vector<std::string> run_env;
  std::vector<KeyValue> run_args;
  // The image history text of a RUN: "RUN |N k=v ... <shell> <cmd>".
  std::string history;
};

struct ExpandedStage {
  std::vector<ExpandedStep> steps;
  std::vector<std::string> env;  // the environment at the end of the stage
  std::vector<std::string> warnings;
};

// The text a heredoc produces: as written when any part of its name was
// quoted, else with $ expansion and escapes processed (quotes are ordinary
// characters) in the step's scope `env` ("KEY=VALUE").
absl::StatusOr<std::string> ExpandHeredoc(const Heredoc& heredoc,
                                          const std::vector<std::string>& env,
                                          char escape = '\\');

// Expands stage `stage_index` of `plan`. `base_env` is the environment of
// the stage's base (image config Env, or the base stage's final env).
absl::StatusOr<ExpandedStage> ExpandStage(
    const Plan& plan, int stage_index, const PlanOptions& options,
    const std::vector<std::string>& base_env,
    absl::string_view filename = "Dockerfile");

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_EXPAND_H_
