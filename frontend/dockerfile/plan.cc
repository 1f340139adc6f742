#include "frontend/dockerfile/plan.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/shell_lex.h"

namespace stagefarm::dockerfile {
namespace {

const std::set<std::string>& ProxyArgs() {
  static const std::set<std::string>* args = new std::set<std::string>{
      "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
      "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy"};
  return *args;
}

absl::Status At(absl::string_view file, int line, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(file, ":", line, ": ", message));
}

// Resolves a --from value: a stage index or name, else an image.
struct Reference {
  int stage = -1;
  std::string image;
};

}  // namespace

std::string Stage::DisplayName() const {
  return name.empty() ? absl::StrCat("stage-", index) : name;
}

std::map<std::string, std::string> PlatformArgs(const PlanOptions& options) {
  std::map<std::string, std::string> out;
  auto add = [&out](const std::string& prefix, const std::string& platform) {
    std::vector<std::string> parts = absl::StrSplit(platform, '/');
    out[prefix + "PLATFORM"] = platform;
    out[prefix + "OS"] = parts.size() > 0 ? parts[0] : "";
    out[prefix + "ARCH"] = parts.size() > 1 ? parts[1] : "";
    out[prefix + "VARIANT"] = parts.size() > 2 ? parts[2] : "";
  };
  add("TARGET", options.target_platform);
  add("BUILD", options.build_platform);
  return out;
}

int FindStage(const std::vector<Stage>& stages, absl::string_view from) {
  int index = 0;
  if (!from.empty() && absl::ascii_isdigit(from[0]) &&
      absl::SimpleAtoi(from, &index) && index >= 0 &&
      index < static_cast<int>(stages.size())) {
    return index;
  }
  for (const Stage& s : stages) {
    if (!s.name.empty() && absl::EqualsIgnoreCase(s.name, from)) {
      return s.index;
    }
  }
  return -1;
}

absl::StatusOr<Plan> MakePlan(std::vector<Instruction> instructions,
                              const PlanOptions& options,
                              absl::string_view file) {
  Plan plan;
  std::map<std::string, std::string> platform_args = PlatformArgs(options);
  std::set<std::string> declared;  // every ARG name anywhere

  // Global scope: ARGs before the first FROM.
  size_t i = 0;
  std::map<std::string, std::optional<std::string>> globals;
  EnvLookup global_lookup =
      [&](absl::string_view name) -> std::optional<std::string> {
    auto g = globals.find(std::string(name));
    if (g != globals.end()) return g->second;
    auto p = platform_args.find(std::string(name));
    if (p != platform_args.end()) return p->second;
    return std::nullopt;
  };
  ShellLex lex;
  for (; i < instructions.size(); ++i) {
    const Instruction& inst = instructions[i];
    if (inst.keyword == "from") break;
    const ArgInst* arg = std::get_if<ArgInst>(&inst.value);
    if (arg == nullptr) {
      return At(file, inst.line,
                absl::StrCat("no build stage in current context (",
                             absl::AsciiStrToUpper(inst.keyword),
                             " before the first FROM)"));
    }
    for (const ArgInst::Arg& a : arg->args) {
      declared.insert(a.name);
      std::optional<std::string> value;
      auto override_it = options.build_args.find(a.name);
      if (override_it != options.build_args.end()) {
        value = override_it->second;
      } else if (a.default_value) {
        absl::StatusOr<std::string> expanded =
            lex.ProcessWord(*a.default_value, global_lookup);
        if (!expanded.ok())
          return At(file, inst.line, expanded.status().message());
        value = *expanded;
      }
      globals[a.name] = value;
      plan.global_args.push_back({a.name, value, inst.line, a.default_value,
                                  DescriptionFor(a.name, inst.comments)});
    }
  }
  if (i == instructions.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": dockerfile contains no stages to build"));
  }

  // Stages.
  std::map<std::string, int> by_name;  // lower-case name -> first stage
  for (; i < instructions.size(); ++i) {
    const Instruction& inst = instructions[i];
    if (const FromInst* from = std::get_if<FromInst>(&inst.value)) {
      Stage stage;
      stage.index = static_cast<int>(plan.stages.size());
      stage.name = from->name;
      stage.line = inst.line;
      stage.from_expression = from->image;
      stage.platform_expression = from->platform;
      stage.comments = inst.comments;
      std::vector<std::string> unknown;
      EnvLookup from_lookup =
          [&](absl::string_view name) -> std::optional<std::string> {
        std::optional<std::string> v = global_lookup(name);
        if (!v && !globals.count(std::string(name))) unknown.emplace_back(name);
        return v;
      };
      absl::StatusOr<std::string> base =
          lex.ProcessWord(from->image, from_lookup);
      if (!base.ok()) return At(file, inst.line, base.status().message());
      if (base->empty()) {
        return At(
            file, inst.line,
            absl::StrCat("base name (", from->image, ") should not be blank"));
      }
      for (const std::string& name : unknown) {
        plan.warnings.push_back(absl::StrCat(
            file, ":", inst.line, ": FROM uses undeclared variable $", name,
            " (it expands to empty)"));
      }
      stage.base = *base;
      if (!from->platform.empty()) {
        unknown.clear();
        absl::StatusOr<std::string> platform =
            lex.ProcessWord(from->platform, from_lookup);
        if (!platform.ok())
          return At(file, inst.line, platform.status().message());
        if (platform->empty()) {
          std::vector<std::string> names;
          for (const auto& [k, v] : platform_args) names.push_back(k);
          for (const auto& [k, v] : globals) names.push_back(k);
          std::string hint = unknown.empty() ? "" : Suggest(unknown[0], names);
          return At(file, inst.line,
                    absl::StrCat(
                        "empty platform value from expression ", from->platform,
                        hint.empty() ? "" : " (did you mean " + hint + "?)"));
        }
        stage.platform = *platform;
      }
      auto base_it = by_name.find(absl::AsciiStrToLower(stage.base));
      if (base_it != by_name.end()) stage.base_stage = base_it->second;
      if (!stage.name.empty()) {
        std::string lower = absl::AsciiStrToLower(stage.name);
        if (by_name.count(lower)) {
          plan.warnings.push_back(
              absl::StrCat(file, ":", inst.line, ": Duplicate stage name \"",
                           stage.name, "\", stage names should be unique"));
        } else {
          by_name[lower] = stage.index;
        }
      }
      plan.stages.push_back(std::move(stage));
      continue;
    }
    if (const ArgInst* arg = std::get_if<ArgInst>(&inst.value)) {
      for (const ArgInst::Arg& a : arg->args) declared.insert(a.name);
    }
    plan.stages.back().instructions.push_back(std::move(instructions[i]));
  }

  // Edges. Forward references are recorded here and rejected below, after
  // cycles (which name the stage where the cycle closes).
  struct Edge {
    int to;
    int line;
    std::string what;
  };
  std::vector<std::vector<Edge>> edges(plan.stages.size());
  auto resolve = [&](const std::string& from) -> Reference {
    Reference ref;
    ref.stage = FindStage(plan.stages, from);
    if (ref.stage < 0) ref.image = from;
    return ref;
  };
  auto froms_of = [](const Instruction& inst, std::vector<std::string>* froms) {
    if (const CopyInst* copy = std::get_if<CopyInst>(&inst.value)) {
      if (!copy->from.empty()) froms->push_back(copy->from);
    } else if (const RunInst* run = std::get_if<RunInst>(&inst.value)) {
      for (const Mount& m : run->mounts) {
        if (!m.from.empty()) froms->push_back(m.from);
      }
    }
  };
  for (Stage& stage : plan.stages) {
    std::vector<std::pair<std::string, int>> refs;  // (from, line)
    if (stage.base_stage >= 0) {
      edges[stage.index].push_back({stage.base_stage, stage.line, "FROM"});
      // ONBUILD triggers of the base stage run at the start of this stage,
      // and their --from references are this stage's dependencies.
      for (const Instruction& inst :
           plan.stages[stage.base_stage].instructions) {
        const OnbuildInst* onbuild = std::get_if<OnbuildInst>(&inst.value);
        if (onbuild == nullptr) continue;
        absl::StatusOr<ParsedDockerfile> trigger =
            Parse(onbuild->expression, file);
        if (!trigger.ok() || trigger->children.empty()) continue;
        absl::StatusOr<Instruction> t =
            ToInstruction(trigger->children[0], file);
        if (!t.ok()) continue;
        std::vector<std::string> froms;
        froms_of(*t, &froms);
        for (const std::string& f : froms) refs.emplace_back(f, stage.line);
      }
    }
    for (const Instruction& inst : stage.instructions) {
      std::vector<std::string> froms;
      froms_of(inst, &froms);
      for (const std::string& f : froms) refs.emplace_back(f, inst.line);
    }
    {
      for (const auto& [from, line] : refs) {
        Reference ref = resolve(from);
        if (ref.stage >= 0) {
          edges[stage.index].push_back({ref.stage, line, from});
        } else if (std::find(stage.images.begin(), stage.images.end(),
                             ref.image) == stage.images.end()) {
          stage.images.push_back(ref.image);
        }
      }
    }
  }

  // Target.
  if (options.target.empty()) {
    plan.target = static_cast<int>(plan.stages.size()) - 1;
  } else {
    auto it = by_name.find(absl::AsciiStrToLower(options.target));
    if (it == by_name.end()) {
      std::vector<std::string> names;
      for (const Stage& s : plan.stages) {
        if (!s.name.empty()) names.push_back(s.name);
      }
      std::string hint = Suggest(options.target, names);
      return absl::InvalidArgumentError(absl::StrCat(
          "target stage \"", options.target, "\" could not be found",
          hint.empty() ? "" : " (did you mean " + hint + "?)"));
    }
    plan.target = it->second;
  }

  // Cycles, depth-first from the target.
  std::vector<int> state(plan.stages.size(), 0);  // 0 new, 1 on stack, 2 done
  std::function<absl::Status(int)> visit = [&](int s) -> absl::Status {
    state[s] = 1;
    for (const Edge& e : edges[s]) {
      if (state[e.to] == 1) {
        return At(file, e.line,
                  absl::StrCat("circular dependency detected on stage: ",
                               plan.stages[s].DisplayName()));
      }
      if (state[e.to] == 0) RETURN_IF_ERROR(visit(e.to));
    }
    state[s] = 2;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(visit(plan.target));

  // Needed stages, order of definition, and levels.
  for (Stage& stage : plan.stages) {
    stage.needed = state[stage.index] == 2;
    std::set<int> deps;
    for (const Edge& e : edges[stage.index]) deps.insert(e.to);
    stage.depends_on.assign(deps.begin(), deps.end());
  }
  for (const Stage& stage : plan.stages) {
    if (!stage.needed) continue;
    for (const Edge& e : edges[stage.index]) {
      if (e.to > stage.index) {
        return At(
            file, e.line,
            absl::StrCat("cannot copy from stage \"", e.what,
                         "\", it needs to be defined before current stage \"",
                         stage.DisplayName(), "\""));
      }
    }
  }
  std::vector<int> level(plan.stages.size(), -1);
  int max_level = -1;
  for (const Stage& stage : plan.stages) {  // deps come first (checked above)
    if (!stage.needed) continue;
    int l = 0;
    for (int d : stage.depends_on) l = std::max(l, level[d] + 1);
    level[stage.index] = l;
    max_level = std::max(max_level, l);
  }
  plan.schedule.resize(static_cast<size_t>(max_level + 1));
  for (const Stage& stage : plan.stages) {
    if (stage.needed) plan.schedule[level[stage.index]].push_back(stage.index);
  }

  // Outline: the args that affect the target.
  {
    std::set<std::string> used;
    for (const Stage& stage : plan.stages) {
      if (!stage.needed) continue;
      for (const std::string& n : lex.ReferencedNames(stage.from_expression))
        used.insert(n);
      for (const std::string& n :
           lex.ReferencedNames(stage.platform_expression)) {
        used.insert(n);
      }
      for (const Instruction& inst : stage.instructions) {
        if (const ArgInst* arg = std::get_if<ArgInst>(&inst.value)) {
          for (const ArgInst::Arg& a : arg->args) used.insert(a.name);
        }
      }
    }
    // Global defaults may use earlier globals.
    for (auto it = plan.global_args.rbegin(); it != plan.global_args.rend();
         ++it) {
      if (!used.count(it->name) || !it->default_expression) continue;
      for (const std::string& n : lex.ReferencedNames(*it->default_expression))
        used.insert(n);
    }
    std::set<std::string> listed;
    for (const GlobalArg& g : plan.global_args) {
      if (!used.count(g.name) || !listed.insert(g.name).second) continue;
      plan.outline.push_back({g.name, g.value, g.description, g.line});
    }
    for (const Stage& stage : plan.stages) {
      if (!stage.needed) continue;
      for (const Instruction& inst : stage.instructions) {
        const ArgInst* arg = std::get_if<ArgInst>(&inst.value);
        if (arg == nullptr) continue;
        for (const ArgInst::Arg& a : arg->args) {
          if (!listed.insert(a.name).second) continue;
          std::optional<std::string> value = a.default_value;
          auto given = options.build_args.find(a.name);
          if (given != options.build_args.end()) value = given->second;
          plan.outline.push_back({a.name, value,
                                  DescriptionFor(a.name, inst.comments),
                                  inst.line});
        }
      }
    }
    const Stage& target = plan.stages[plan.target];
    if (!target.name.empty()) {
      plan.target_description = DescriptionFor(target.name, target.comments);
    }
  }

  // Build args nobody declared.
  std::vector<std::string> unused;
  for (const auto& [name, value] : options.build_args) {
    if (!declared.count(name) && !ProxyArgs().count(name) &&
        !platform_args.count(name)) {
      unused.push_back(name);
    }
  }
  if (!unused.empty()) {
    plan.warnings.push_back(absl::StrCat("one or more build args [",
                                         absl::StrJoin(unused, " "),
                                         "] were not consumed"));
  }
  return plan;
}

std::string DescriptionFor(absl::string_view name,
                           const std::vector<std::string>& comments) {
  std::vector<std::string> lines;
  for (const std::string& c : comments) {
    absl::string_view t = absl::StripAsciiWhitespace(c);
    if (absl::StartsWithIgnoreCase(t, "check=") ||
        absl::StartsWithIgnoreCase(t, "check =")) {
      continue;
    }
    lines.emplace_back(t);
  }
  if (lines.empty()) return "";
  std::string text = absl::StrJoin(lines, " ");
  absl::string_view view(text);
  if (!absl::ConsumePrefix(&view, name) || view.empty() || view[0] != ' ')
    return "";
  return std::string(absl::StripLeadingAsciiWhitespace(view));
}

absl::StatusOr<Plan> PlanDockerfile(absl::string_view text,
                                    const PlanOptions& options,
                                    absl::string_view filename) {
  ASSIGN_OR_RETURN(ParsedDockerfile parsed, Parse(text, filename));
  ASSIGN_OR_RETURN(std::vector<Instruction> instructions,
                   ToInstructions(std::move(parsed), filename));
  return MakePlan(std::move(instructions), options, filename);
}

}  // namespace stagefarm::dockerfile
