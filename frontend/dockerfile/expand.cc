#include "frontend/dockerfile/expand.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/shell_lex.h"

namespace stagefarm::dockerfile {
namespace {

const char* const kProxyArgs[] = {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY",
                                  "NO_PROXY", "ALL_PROXY"};

class Scope {
 public:
  explicit Scope(const std::vector<std::string>& env) {
    for (const std::string& kv : env) {
      size_t eq = kv.find('=');
      SetEnv(kv.substr(0, eq),
             eq == std::string::npos ? "" : kv.substr(eq + 1));
    }
  }

  void SetEnv(const std::string& key, const std::string& value) {
    auto it = std::find_if(env_.begin(), env_.end(),
                           [&](const KeyValue& kv) { return kv.key == key; });
    if (it == env_.end()) {
      env_.push_back({key, value});
    } else {
      it->value = value;
    }
  }
  void SetArg(const std::string& name, std::optional<std::string> value) {
    if (!args_.count(name)) arg_order_.push_back(name);
    args_[name] = std::move(value);
  }

  // ENV first, then declared ARGs.
  std::optional<std::string> Lookup(absl::string_view name) const {
    for (const KeyValue& kv : env_) {
      if (kv.key == name) return kv.value;
    }
    auto it = args_.find(std::string(name));
    if (it != args_.end()) return it->second;
    return std::nullopt;
  }
  bool Known(absl::string_view name) const {
    for (const KeyValue& kv : env_) {
      if (kv.key == name) return true;
    }
    return args_.count(std::string(name)) > 0;
  }

  std::vector<std::string> EnvList() const {
    std::vector<std::string> out;
    for (const KeyValue& kv : env_) out.push_back(kv.key + "=" + kv.value);
    return out;
  }
  // Declared ARGs with a value that no ENV shadows.
  std::vector<KeyValue> ArgValues() const {
    std::vector<KeyValue> out;
    for (const std::string& name : arg_order_) {
      const auto& value = args_.at(name);
      if (!value) continue;
      bool shadowed =
          std::any_of(env_.begin(), env_.end(),
                      [&](const KeyValue& kv) { return kv.key == name; });
      if (!shadowed) out.push_back({name, *value});
    }
    return out;
  }

 private:
  std::vector<KeyValue> env_;
  std::map<std::string, std::optional<std::string>> args_;
  std::vector<std::string> arg_order_;
};

}  // namespace

absl::StatusOr<std::string> ExpandHeredoc(const Heredoc& heredoc,
                                          const std::vector<std::string>& env,
                                          char escape) {
  if (!heredoc.expand) return heredoc.content;
  ShellLexOptions options;
  options.escape = escape;
  options.skip_process_quotes = true;
  return ShellLex(options).ProcessWord(heredoc.content, EnvFromList(&env));
}

absl::StatusOr<ExpandedStage> ExpandStage(
    const Plan& plan, int stage_index, const PlanOptions& options,
    const std::vector<std::string>& base_env, absl::string_view file) {
  if (stage_index < 0 || stage_index >= static_cast<int>(plan.stages.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no stage ", stage_index));
  }
  const Stage& stage = plan.stages[stage_index];
  std::map<std::string, std::string> builtins = PlatformArgs(options);
  builtins["TARGETSTAGE"] = options.target.empty()
                                ? (plan.stages[plan.target].name.empty()
                                       ? "default"
                                       : plan.stages[plan.target].name)
                                : options.target;
  std::map<std::string, std::optional<std::string>> globals;
  for (const GlobalArg& g : plan.global_args) globals[g.name] = g.value;

  ExpandedStage out;
  Scope scope(base_env);
  ShellLex lex;
  std::vector<std::string> shell = {"/bin/sh", "-c"};
  EnvLookup lookup = [&scope](absl::string_view name) {
    return scope.Lookup(name);
  };

  auto warn_undefined = [&](const Instruction& inst, absl::string_view word) {
    for (const std::string& name : lex.ReferencedNames(word)) {
      if (!scope.Known(name)) {
        out.warnings.push_back(absl::StrCat(file, ":", inst.line,
                                            ": Usage of undefined variable '$",
                                            name, "'"));
      }
    }
  };
  auto expand = [&](const Instruction& inst,
                    const std::string& word) -> absl::StatusOr<std::string> {
    warn_undefined(inst, word);
    absl::StatusOr<std::string> r = lex.ProcessWord(word, lookup);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ":", inst.line, ": ", r.status().message()));
    }
    return r;
  };

  for (const Instruction& inst : stage.instructions) {
    ExpandedStep step;
    step.instruction = &inst;
    if (const ArgInst* arg = std::get_if<ArgInst>(&inst.value)) {
      for (const ArgInst::Arg& a : arg->args) {
        std::optional<std::string> value;
        auto given = options.build_args.find(a.name);
        if (given != options.build_args.end()) {
          value = given->second;
        } else if (a.default_value) {
          ASSIGN_OR_RETURN(value, expand(inst, *a.default_value));
        } else if (globals.count(a.name)) {
          value = globals[a.name];
        } else if (builtins.count(a.name)) {
          value = builtins[a.name];
        }
        scope.SetArg(a.name, value);
      }
    } else if (const EnvInst* env = std::get_if<EnvInst>(&inst.value)) {
      for (const KeyValue& kv : env->pairs) {
        ASSIGN_OR_RETURN(std::string key, expand(inst, kv.key));
        ASSIGN_OR_RETURN(std::string value, expand(inst, kv.value));
        step.pairs.push_back({key, value});
      }
      // All pairs see the scope from before the instruction.
      for (const KeyValue& kv : step.pairs) scope.SetEnv(kv.key, kv.value);
    } else if (const LabelInst* label = std::get_if<LabelInst>(&inst.value)) {
      for (const KeyValue& kv : label->pairs) {
        ASSIGN_OR_RETURN(std::string key, expand(inst, kv.key));
        ASSIGN_OR_RETURN(std::string value, expand(inst, kv.value));
        step.pairs.push_back({key, value});
      }
    } else if (const CopyInst* copy = std::get_if<CopyInst>(&inst.value)) {
      // The scope heredoc bodies expand in: ENV, then declared ARGs.
      if (!inst.heredocs.empty()) {
        step.run_env = scope.EnvList();
        for (const KeyValue& kv : scope.ArgValues())
          step.run_env.push_back(kv.key + "=" + kv.value);
      }
      for (const std::string& src : copy->sources) {
        ASSIGN_OR_RETURN(std::string s, expand(inst, src));
        step.words.push_back(s);
      }
      ASSIGN_OR_RETURN(std::string dest, expand(inst, copy->dest));
      step.words.push_back(dest);
      if (!copy->chown.empty()) {
        ASSIGN_OR_RETURN(step.chown, expand(inst, copy->chown));
      }
      if (!copy->chmod.empty()) {
        ASSIGN_OR_RETURN(step.chmod, expand(inst, copy->chmod));
      }
    } else if (const ExposeInst* expose =
                   std::get_if<ExposeInst>(&inst.value)) {
      for (const std::string& port : expose->ports) {
        warn_undefined(inst, port);
        absl::StatusOr<std::vector<std::string>> words =
            lex.ProcessWords(port, lookup);
        if (!words.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              file, ":", inst.line, ": ", words.status().message()));
        }
        step.words.insert(step.words.end(), words->begin(), words->end());
      }
    } else if (const VolumeInst* volume =
                   std::get_if<VolumeInst>(&inst.value)) {
      for (const std::string& path : volume->paths) {
        ASSIGN_OR_RETURN(std::string p, expand(inst, path));
        step.words.push_back(p);
      }
    } else if (const UserInst* user = std::get_if<UserInst>(&inst.value)) {
      ASSIGN_OR_RETURN(std::string u, expand(inst, user->user));
      step.words.push_back(u);
    } else if (const WorkdirInst* workdir =
                   std::get_if<WorkdirInst>(&inst.value)) {
      ASSIGN_OR_RETURN(std::string w, expand(inst, workdir->path));
      step.words.push_back(w);
    } else if (const StopSignalInst* sig =
                   std::get_if<StopSignalInst>(&inst.value)) {
      ASSIGN_OR_RETURN(std::string s, expand(inst, sig->signal));
      step.words.push_back(s);
    } else if (const ShellInst* sh = std::get_if<ShellInst>(&inst.value)) {
      shell = sh->shell;
    } else if (const RunInst* run = std::get_if<RunInst>(&inst.value)) {
      step.run_env = scope.EnvList();
      step.run_args = scope.ArgValues();
      for (const KeyValue& kv : step.run_args)
        step.run_env.push_back(kv.key + "=" + kv.value);
      for (const char* proxy : kProxyArgs) {
        std::string lower = absl::AsciiStrToLower(proxy);
        auto it = options.build_args.find(proxy);
        if (it == options.build_args.end()) it = options.build_args.find(lower);
        if (it == options.build_args.end()) continue;
        step.run_env.push_back(std::string(proxy) + "=" + it->second);
        step.run_env.push_back(lower + "=" + it->second);
      }
      std::string command = absl::StrJoin(run->command.args, " ");
      if (run->command.shell_form)
        command = absl::StrJoin(shell, " ") + " " + command;
      std::string args;
      if (!step.run_args.empty()) {
        std::vector<std::string> kvs;
        for (const KeyValue& kv : step.run_args)
          kvs.push_back(kv.key + "=" + kv.value);
        args = absl::StrCat("|", step.run_args.size(), " ",
                            absl::StrJoin(kvs, " "), " ");
      }
      step.history = absl::StrCat("RUN ", args, command, " # buildkit");
    }
    out.steps.push_back(std::move(step));
  }
  out.env = scope.EnvList();
  return out;
}

}  // namespace stagefarm::dockerfile
