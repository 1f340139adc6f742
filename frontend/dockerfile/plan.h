// Build planning: from typed instructions to stages, the stage DAG, the
// stages the target needs, and the schedule (groups of stages that can run
// at the same time, in order).
//
// Global ARGs (before the first FROM) are evaluated with build-arg overrides
// and are visible in FROM lines only, together with the predefined platform
// args. Stage references come from FROM <stage>, COPY --from=<stage|index>
// and RUN --mount=from=<stage|index>; a name that is no stage is an image.
// Names and the target are case-insensitive. Pure; thread-compatible.
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_PLAN_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_PLAN_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "frontend/dockerfile/instructions.h"

namespace stagefarm::dockerfile {

struct PlanOptions {
  std::string target;  // "" = the last stage
  std::map<std::string, std::string> build_args;
  std::string target_platform = "linux/amd64";
  std::string build_platform = "linux/amd64";
};

struct Stage {
  int index = 0;
  std::string name;                 // as written after AS ("" if unnamed)
  std::string base;                 // the FROM image, expanded
  std::string platform;             // --platform, expanded ("" if none)
  int base_stage = -1;              // FROM <earlier stage>
  std::vector<int> depends_on;      // stage indexes, sorted, unique
  std::vector<std::string> images;  // images named by --from / mount from
  bool needed = false;
  int line = 0;
  std::string from_expression;            // the FROM image as written
  std::string platform_expression;        // --platform as written
  std::vector<std::string> comments;      // above the FROM
  std::vector<Instruction> instructions;  // after FROM
  // "stage-N" for an unnamed stage, else the name.
  std::string DisplayName() const;
};

struct GlobalArg {
  std::string name;
  std::optional<std::string> value;  // nullopt: declared without a value
  int line = 0;
  std::optional<std::string> default_expression;  // as written
  std::string description;
};

// A build arg that affects the target, for an outline of the build.
struct OutlineArg {
  std::string name;
  std::optional<std::string> value;  // after build-arg overrides
  std::string description;           // from the comment above: "# NAME does x"
  int line = 0;
};

struct Plan {
  std::vector<GlobalArg> global_args;
  std::vector<Stage> stages;
  int target = -1;
  // Groups of needed stages that can run at the same time, in order.
  std::vector<std::vector<int>> schedule;
  std::vector<std::string> warnings;
  // The args that affect the target: global args the needed stages use
  // (directly or through other global args' defaults), then the needed
  // stages' own args, in file order.
  std::vector<OutlineArg> outline;
  // The target's description, from the comment above its FROM.
  std::string target_description;
};

// The description a comment block gives `name`: the comment must start with
// the name ("# sfx is a suffix" gives "is a suffix"); check= lines are skipped.
std::string DescriptionFor(absl::string_view name,
                           const std::vector<std::string>& comments);

// The stage `from` names in COPY --from, RUN --mount=from or FROM: a
// number (as Docker reads one: digits first) of an existing stage, or the
// name of one (case-insensitive; the first of that name); -1 when it names
// no stage (it is an image).
int FindStage(const std::vector<Stage>& stages, absl::string_view from);

// The platform a stage builds for, as written or expanded (not
// normalized): its FROM --platform, else its base stage's, else the
// target platform.
std::string StagePlatform(const Plan& plan, int index,
                          const PlanOptions& options);

// The predefined platform args for a "os/arch[/variant]" pair of platforms.
std::map<std::string, std::string> PlatformArgs(const PlanOptions& options);

absl::StatusOr<Plan> MakePlan(std::vector<Instruction> instructions,
                              const PlanOptions& options,
                              absl::string_view filename = "Dockerfile");

// Parse + instructions + plan in one step.
absl::StatusOr<Plan> PlanDockerfile(absl::string_view text,
                                    const PlanOptions& options,
                                    absl::string_view filename = "Dockerfile");

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_PLAN_H_
