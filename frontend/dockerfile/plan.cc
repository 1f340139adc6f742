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

// Plans a Dockerfile's instructions, one phase a method, in order.
class Planner {
 public:
  Planner(std::vector<Instruction> instructions, const PlanOptions& options,
          absl::string_view file)
      : instructions_(std::move(instructions)),
        options_(options),
        file_(file),
        platform_args_(PlatformArgs(options)) {}

  absl::StatusOr<Plan> Run() {
    RETURN_IF_ERROR(GlobalArgs());
    RETURN_IF_ERROR(Stages());
    Edges();
    RETURN_IF_ERROR(Target());
    RETURN_IF_ERROR(Cycles());
    RETURN_IF_ERROR(Needed());
    Outline();
    UnusedBuildArgs();
    return std::move(plan_);
  }

 private:
  struct Edge {
    int to;
    int line;
    std::string what;
  };

  // Global args, then the platform args.
  EnvLookup GlobalLookup() {
    return [this](absl::string_view name) -> std::optional<std::string> {
      auto g = globals_.find(std::string(name));
      if (g != globals_.end()) return g->second;
      auto p = platform_args_.find(std::string(name));
      if (p != platform_args_.end()) return p->second;
      return std::nullopt;
    };
  }

  absl::Status GlobalArgs() {
    for (; i_ < instructions_.size(); ++i_) {
      const Instruction& inst = instructions_[i_];
      if (inst.keyword == "from") break;
      const ArgInst* arg = std::get_if<ArgInst>(&inst.value);
      if (arg == nullptr) {
        return At(file_, inst.line,
                  absl::StrCat("no build stage in current context (",
                               absl::AsciiStrToUpper(inst.keyword),
                               " before the first FROM)"));
      }
      for (const ArgInst::Arg& a : arg->args) {
        declared_.insert(a.name);
        std::optional<std::string> value;
        auto override_it = options_.build_args.find(a.name);
        if (override_it != options_.build_args.end()) {
          value = override_it->second;
        } else if (a.default_value) {
          absl::StatusOr<std::string> expanded =
              lex_.ProcessWord(*a.default_value, GlobalLookup());
          if (!expanded.ok())
            return At(file_, inst.line, expanded.status().message());
          value = *expanded;
        }
        globals_[a.name] = value;
        plan_.global_args.push_back({a.name, value, inst.line, a.default_value,
                                     DescriptionFor(a.name, inst.comments)});
      }
    }
    if (i_ == instructions_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_, ": dockerfile contains no stages to build"));
    }
    return absl::OkStatus();
  }

  absl::Status Stages() {
    for (; i_ < instructions_.size(); ++i_) {
      const Instruction& inst = instructions_[i_];
      if (const FromInst* from = std::get_if<FromInst>(&inst.value)) {
        Stage stage;
        stage.index = static_cast<int>(plan_.stages.size());
        stage.name = from->name;
        stage.line = inst.line;
        stage.from_expression = from->image;
        stage.platform_expression = from->platform;
        stage.comments = inst.comments;
        std::vector<std::string> unknown;
        EnvLookup from_lookup =
            [&](absl::string_view name) -> std::optional<std::string> {
          std::optional<std::string> v = GlobalLookup()(name);
          if (!v && !globals_.count(std::string(name)))
            unknown.emplace_back(name);
          return v;
        };
        absl::StatusOr<std::string> base =
            lex_.ProcessWord(from->image, from_lookup);
        if (!base.ok()) return At(file_, inst.line, base.status().message());
        if (base->empty()) {
          return At(file_, inst.line,
                    absl::StrCat("base name (", from->image,
                                 ") should not be blank"));
        }
        for (const std::string& name : unknown) {
          plan_.warnings.push_back(absl::StrCat(
              file_, ":", inst.line, ": FROM uses undeclared variable $", name,
              " (it expands to empty)"));
        }
        stage.base = *base;
        if (!from->platform.empty()) {
          unknown.clear();
          absl::StatusOr<std::string> platform =
              lex_.ProcessWord(from->platform, from_lookup);
          if (!platform.ok())
            return At(file_, inst.line, platform.status().message());
          if (platform->empty()) {
            std::vector<std::string> names;
            for (const auto& [k, v] : platform_args_) names.push_back(k);
            for (const auto& [k, v] : globals_) names.push_back(k);
            std::string hint =
                unknown.empty() ? "" : Suggest(unknown[0], names);
            return At(
                file_, inst.line,
                absl::StrCat(
                    "empty platform value from expression ", from->platform,
                    hint.empty() ? "" : " (did you mean " + hint + "?)"));
          }
          stage.platform = *platform;
        }
        auto base_it = by_name_.find(absl::AsciiStrToLower(stage.base));
        if (base_it != by_name_.end()) stage.base_stage = base_it->second;
        if (!stage.name.empty()) {
          std::string lower = absl::AsciiStrToLower(stage.name);
          if (by_name_.count(lower)) {
            plan_.warnings.push_back(
                absl::StrCat(file_, ":", inst.line, ": Duplicate stage name \"",
                             stage.name, "\", stage names should be unique"));
          } else {
            by_name_[lower] = stage.index;
          }
        }
        plan_.stages.push_back(std::move(stage));
        continue;
      }
      if (const ArgInst* arg = std::get_if<ArgInst>(&inst.value)) {
        for (const ArgInst::Arg& a : arg->args) declared_.insert(a.name);
      }
      plan_.stages.back().instructions.push_back(std::move(instructions_[i_]));
    }
    return absl::OkStatus();
  }

  void Edges() {
    // Edges. Forward references are recorded here and rejected below, after
    // cycles (which name the stage where the cycle closes).
    edges_.assign(plan_.stages.size(), {});
    auto resolve = [&](const std::string& from) -> Reference {
      Reference ref;
      ref.stage = FindStage(plan_.stages, from);
      if (ref.stage < 0) ref.image = from;
      return ref;
    };
    auto froms_of = [](const Instruction& inst,
                       std::vector<std::string>* froms) {
      if (const CopyInst* copy = std::get_if<CopyInst>(&inst.value)) {
        if (!copy->from.empty()) froms->push_back(copy->from);
      } else if (const RunInst* run = std::get_if<RunInst>(&inst.value)) {
        for (const Mount& m : run->mounts) {
          if (!m.from.empty()) froms->push_back(m.from);
        }
      }
    };
    for (Stage& stage : plan_.stages) {
      std::vector<std::pair<std::string, int>> refs;  // (from, line)
      if (stage.base_stage >= 0) {
        edges_[stage.index].push_back({stage.base_stage, stage.line, "FROM"});
        // ONBUILD triggers of the base stage run at the start of this stage,
        // and their --from references are this stage's dependencies.
        for (const Instruction& inst :
             plan_.stages[stage.base_stage].instructions) {
          const OnbuildInst* onbuild = std::get_if<OnbuildInst>(&inst.value);
          if (onbuild == nullptr) continue;
          absl::StatusOr<ParsedDockerfile> trigger =
              Parse(onbuild->expression, file_);
          if (!trigger.ok() || trigger->children.empty()) continue;
          absl::StatusOr<Instruction> t =
              ToInstruction(trigger->children[0], file_);
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
            edges_[stage.index].push_back({ref.stage, line, from});
          } else if (std::find(stage.images.begin(), stage.images.end(),
                               ref.image) == stage.images.end()) {
            stage.images.push_back(ref.image);
          }
        }
      }
    }
  }

  absl::Status Target() {
    // Target.
    if (options_.target.empty()) {
      plan_.target = static_cast<int>(plan_.stages.size()) - 1;
    } else {
      auto it = by_name_.find(absl::AsciiStrToLower(options_.target));
      if (it == by_name_.end()) {
        std::vector<std::string> names;
        for (const Stage& s : plan_.stages) {
          if (!s.name.empty()) names.push_back(s.name);
        }
        std::string hint = Suggest(options_.target, names);
        return absl::InvalidArgumentError(absl::StrCat(
            "target stage \"", options_.target, "\" could not be found",
            hint.empty() ? "" : " (did you mean " + hint + "?)"));
      }
      plan_.target = it->second;
    }
    return absl::OkStatus();
  }

  absl::Status Cycles() {
    // Cycles, depth-first from the target.
    state_.assign(plan_.stages.size(), 0);
    std::function<absl::Status(int)> visit = [&](int s) -> absl::Status {
      state_[s] = 1;
      for (const Edge& e : edges_[s]) {
        if (state_[e.to] == 1) {
          return At(file_, e.line,
                    absl::StrCat("circular dependency detected on stage: ",
                                 plan_.stages[s].DisplayName()));
        }
        if (state_[e.to] == 0) RETURN_IF_ERROR(visit(e.to));
      }
      state_[s] = 2;
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(visit(plan_.target));
    return absl::OkStatus();
  }

  absl::Status Needed() {
    // Needed stages, order of definition, and levels.
    for (Stage& stage : plan_.stages) {
      stage.needed = state_[stage.index] == 2;
      std::set<int> deps;
      for (const Edge& e : edges_[stage.index]) deps.insert(e.to);
      stage.depends_on.assign(deps.begin(), deps.end());
    }
    for (const Stage& stage : plan_.stages) {
      if (!stage.needed) continue;
      for (const Edge& e : edges_[stage.index]) {
        if (e.to > stage.index) {
          return At(
              file_, e.line,
              absl::StrCat("cannot copy from stage \"", e.what,
                           "\", it needs to be defined before current stage \"",
                           stage.DisplayName(), "\""));
        }
      }
    }
    std::vector<int> level(plan_.stages.size(), -1);
    int max_level = -1;
    for (const Stage& stage :
         plan_.stages) {  // deps come first (checked above)
      if (!stage.needed) continue;
      int l = 0;
      for (int d : stage.depends_on) l = std::max(l, level[d] + 1);
      level[stage.index] = l;
      max_level = std::max(max_level, l);
    }
    plan_.schedule.resize(static_cast<size_t>(max_level + 1));
    for (const Stage& stage : plan_.stages) {
      if (stage.needed)
        plan_.schedule[level[stage.index]].push_back(stage.index);
    }
    return absl::OkStatus();
  }

  void Outline() {
    // Outline: the args that affect the target.
    {
      std::set<std::string> used;
      for (const Stage& stage : plan_.stages) {
        if (!stage.needed) continue;
        for (const std::string& n : lex_.ReferencedNames(stage.from_expression))
          used.insert(n);
        for (const std::string& n :
             lex_.ReferencedNames(stage.platform_expression)) {
          used.insert(n);
        }
        for (const Instruction& inst : stage.instructions) {
          if (const ArgInst* arg = std::get_if<ArgInst>(&inst.value)) {
            for (const ArgInst::Arg& a : arg->args) used.insert(a.name);
          }
        }
      }
      // Global defaults may use earlier globals_.
      for (auto it = plan_.global_args.rbegin(); it != plan_.global_args.rend();
           ++it) {
        if (!used.count(it->name) || !it->default_expression) continue;
        for (const std::string& n :
             lex_.ReferencedNames(*it->default_expression))
          used.insert(n);
      }
      std::set<std::string> listed;
      for (const GlobalArg& g : plan_.global_args) {
        if (!used.count(g.name) || !listed.insert(g.name).second) continue;
        plan_.outline.push_back({g.name, g.value, g.description, g.line});
      }
      for (const Stage& stage : plan_.stages) {
        if (!stage.needed) continue;
        for (const Instruction& inst : stage.instructions) {
          const ArgInst* arg = std::get_if<ArgInst>(&inst.value);
          if (arg == nullptr) continue;
          for (const ArgInst::Arg& a : arg->args) {
            if (!listed.insert(a.name).second) continue;
            std::optional<std::string> value = a.default_value;
            auto given = options_.build_args.find(a.name);
            if (given != options_.build_args.end()) value = given->second;
            plan_.outline.push_back({a.name, value,
                                     DescriptionFor(a.name, inst.comments),
                                     inst.line});
          }
        }
      }
      const Stage& target = plan_.stages[plan_.target];
      if (!target.name.empty()) {
        plan_.target_description = DescriptionFor(target.name, target.comments);
      }
    }
  }

  void UnusedBuildArgs() {
    // Build args nobody declared_.
    std::vector<std::string> unused;
    for (const auto& [name, value] : options_.build_args) {
      if (!declared_.count(name) && !ProxyArgs().count(name) &&
          !platform_args_.count(name)) {
        unused.push_back(name);
      }
    }
    if (!unused.empty()) {
      plan_.warnings.push_back(absl::StrCat("one or more build args [",
                                            absl::StrJoin(unused, " "),
                                            "] were not consumed"));
    }
  }

  std::vector<Instruction> instructions_;
  const PlanOptions& options_;
  absl::string_view file_;
  std::map<std::string, std::string> platform_args_;
  Plan plan_;
  std::set<std::string> declared_;  // every ARG name anywhere
  size_t i_ = 0;                    // the next instruction
  std::map<std::string, std::optional<std::string>> globals_;
  ShellLex lex_;
  std::map<std::string, int> by_name_;  // lower-case name -> first stage
  std::vector<std::vector<Edge>> edges_;
  std::vector<int> state_;  // by stage: 0 new, 1 on the stack, 2 done
};

}  // namespace

std::string Stage::DisplayName() const {
  return name.empty() ? absl::StrCat("stage-", index) : name;
}

std::string StagePlatform(const Plan& plan, int index,
                          const PlanOptions& options) {
  // Bases come before their stages, so the walk ends.
  for (int i = index; i >= 0 && i < static_cast<int>(plan.stages.size());) {
    const Stage& s = plan.stages[i];
    if (!s.platform.empty()) return s.platform;
    if (s.base_stage < 0 || s.base_stage >= i) break;
    i = s.base_stage;
  }
  return options.target_platform;
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
  return Planner(std::move(instructions), options, file).Run();
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
