#include "frontend/dockerfile/plan_format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "nlohmann/json.hpp"

namespace stagefarm::dockerfile {
namespace {

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

std::string PlanAsText(const Plan& plan) {
  std::string out;
  for (const Stage& s : plan.stages) {
    absl::StrAppend(&out, "stage ", s.index, " ", s.DisplayName(), " (line ",
                    s.line, "): FROM ", s.base);
    if (!s.platform.empty()) absl::StrAppend(&out, " --platform=", s.platform);
    absl::StrAppend(&out, s.index == plan.target ? "  [target]" : "",
                    s.needed ? "" : "  [not needed]", "\n");
    if (!s.depends_on.empty()) {
      std::vector<std::string> deps;
      for (int d : s.depends_on) deps.push_back(plan.stages[d].DisplayName());
      absl::StrAppend(&out, "  depends on: ", absl::StrJoin(deps, ", "), "\n");
    }
    if (!s.images.empty()) {
      absl::StrAppend(&out, "  images: ", absl::StrJoin(s.images, ", "), "\n");
    }
    absl::StrAppend(&out, "  steps: ", s.instructions.size(), "\n");
  }
  if (!plan.outline.empty()) {
    absl::StrAppend(&out, "build args that affect the target:\n");
    for (const OutlineArg& a : plan.outline) {
      absl::StrAppend(&out, "  ", a.name, a.value ? "=" + *a.value : "",
                      a.description.empty() ? "" : "  # " + a.description,
                      "\n");
    }
  }
  absl::StrAppend(&out,
                  "schedule (stages in one step can run at the same time):\n");
  for (size_t i = 0; i < plan.schedule.size(); ++i) {
    std::vector<std::string> names;
    for (int s : plan.schedule[i])
      names.push_back(plan.stages[s].DisplayName());
    absl::StrAppend(&out, "  ", i + 1, ": ", absl::StrJoin(names, ", "), "\n");
  }
  return out;
}

std::string PlanAsJson(const Plan& plan) {
  nlohmann::json j;
  j["stages"] = nlohmann::json::array();
  for (const Stage& s : plan.stages) {
    nlohmann::json stage = {{"index", s.index},
                            {"name", s.name},
                            {"base", s.base},
                            {"depends_on", s.depends_on},
                            {"needed", s.needed}};
    if (!s.platform.empty()) stage["platform"] = s.platform;
    if (!s.images.empty()) stage["images"] = s.images;
    if (s.base_stage >= 0) stage["base_stage"] = s.base_stage;
    j["stages"].push_back(stage);
  }
  j["schedule"] = plan.schedule;
  j["args"] = nlohmann::json::array();
  for (const OutlineArg& a : plan.outline) {
    nlohmann::json arg = {{"name", a.name}, {"line", a.line}};
    if (a.value) arg["value"] = *a.value;
    if (!a.description.empty()) arg["description"] = a.description;
    j["args"].push_back(arg);
  }
  j["target"] = plan.target;
  j["warnings"] = plan.warnings;
  return stagefarm::json::Dump(j, 2) + "\n";
}

std::string PlanAsDot(const Plan& plan) {
  std::string out = "digraph plan {\n  rankdir=LR;\n  node [shape=box];\n";
  for (const Stage& s : plan.stages) {
    absl::StrAppend(&out, "  s", s.index, " [label=",
                    DotQuote(absl::StrCat(s.DisplayName(), "\\nFROM ", s.base)),
                    s.needed ? "" : ", style=dashed",
                    s.index == plan.target ? ", penwidth=2" : "", "];\n");
  }
  for (const Stage& s : plan.stages) {
    for (int d : s.depends_on)
      absl::StrAppend(&out, "  s", d, " -> s", s.index, ";\n");
  }
  for (const auto& group : plan.schedule) {
    if (group.size() < 2) continue;
    absl::StrAppend(&out, "  { rank=same;");
    for (int s : group) absl::StrAppend(&out, " s", s, ";");
    absl::StrAppend(&out, " }\n");
  }
  return out + "}\n";
}

}  // namespace stagefarm::dockerfile
