// libFuzzer target: any bytes through the whole front of a build, as the
// engine and the farm's scheduler run it before any container starts: the
// parser, the instruction layer, the planner, each needed stage's
// expansion (heredocs too), every instruction's change to the image config
// (engine/image_config.h), the OCI runtime spec of every RUN
// (executor::MakeRuntimeSpec), the config and spec written as JSON, and the
// image names the Dockerfile uses and its first line as a tag
// (registry::ParseReference). Errors are fine; crashes, hangs, exceptions
// and sanitizer reports are not.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/json.h"
#include "engine/image_config.h"
#include "executor/runc_executor.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/instructions.h"
#include "frontend/dockerfile/parser.h"
#include "frontend/dockerfile/plan.h"
#include "registry/reference.h"

namespace {

using namespace stagefarm;

void RunStage(const dockerfile::Plan& plan, int index,
              const dockerfile::PlanOptions& options) {
  nlohmann::json image = {
      {"config", {{"Env", {"PATH=/usr/bin:/bin", "HOME=/root"}}}}};
  auto expanded = dockerfile::ExpandStage(
      plan, index, options, engine::JsonStrings(image["config"]["Env"]));
  if (!expanded.ok()) return;
  bool cmd_set = false;
  std::string workdir = "/";
  for (const dockerfile::ExpandedStep& step : expanded->steps) {
    for (const auto& h : step.instruction->heredocs) {
      (void)dockerfile::ExpandHeredoc(h, step.run_env);
    }
    if (auto change = engine::ApplyMetadata(step, &image, &cmd_set)) {
      (void)json::Dump(nlohmann::json(change->key_values));
      continue;
    }
    if (std::holds_alternative<dockerfile::WorkdirInst>(
            step.instruction->value) &&
        !step.words.empty()) {
      workdir = step.words[0][0] == '/' ? step.words[0]
                                        : workdir + "/" + step.words[0];
      image["config"]["WorkingDir"] = workdir;
    }
    const auto* run =
        std::get_if<dockerfile::RunInst>(&step.instruction->value);
    if (run == nullptr) continue;
    executor::ExecSpec spec;
    spec.rootfs = "/rootfs";
    spec.args = engine::RunArgs(step, *run, image["config"]);
    spec.env = step.run_env;
    spec.cwd = workdir;
    executor::RuncOptions options_runc;
    auto runtime = executor::MakeRuntimeSpec(spec, options_runc, "/b/id");
    if (runtime.ok()) (void)json::Dump(*runtime, 1);
  }
  (void)json::Dump(image);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)registry::ParseReference(text.substr(0, text.find('\n')));
  auto parsed = dockerfile::Parse(text, "fuzz");
  if (!parsed.ok()) return 0;
  auto instructions = dockerfile::ToInstructions(*parsed, "fuzz");
  if (!instructions.ok()) return 0;
  dockerfile::PlanOptions options;
  options.build_args["A"] = "caf\xe9";
  auto plan = dockerfile::MakePlan(*instructions, options, "fuzz");
  if (!plan.ok()) return 0;
  for (const dockerfile::Stage& stage : plan->stages) {
    if (stage.base_stage < 0) (void)registry::ParseReference(stage.base);
    if (stage.needed) RunStage(*plan, stage.index, options);
  }
  return 0;
}
