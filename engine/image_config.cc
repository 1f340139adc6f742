#include "engine/image_config.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/json.h"

namespace stagefarm::engine {
namespace {

using dockerfile::ExpandedStep;
using nlohmann::json;

std::string ExposedPort(const std::string& p) {
  return p.find('/') == std::string::npos ? p + "/tcp"
                                          : absl::AsciiStrToLower(p);
}

// The history text of a metadata step: its keyword, then what it set.
std::string History(const ExpandedStep& step, absl::string_view what) {
  return absl::StrCat(absl::AsciiStrToUpper(step.instruction->keyword), " ",
                      what);
}

MetadataChange One(const ExpandedStep& step, std::string name,
                   std::string value, absl::string_view history) {
  MetadataChange c;
  c.key_name = std::move(name);
  c.key_values = {std::move(value)};
  c.history = History(step, history);
  return c;
}

MetadataChange List(const ExpandedStep& step, std::string name,
                    std::vector<std::string> values,
                    absl::string_view history) {
  MetadataChange c;
  c.key_name = std::move(name);
  c.key_values = std::move(values);
  c.key_is_list = true;
  c.history = History(step, history);
  return c;
}

json& ObjectIn(json* config, const char* field) {
  json& v = (*config)[field];
  if (!v.is_object()) v = json::object();
  return v;
}

MetadataChange SetCommand(const ExpandedStep& step, const json& image_config,
                          json* cfg, const dockerfile::Command& c, bool is_cmd,
                          bool* cmd_set) {
  std::vector<std::string> args = c.args;
  if (c.shell_form) args = ShellArgs(image_config, absl::StrJoin(c.args, " "));
  if (is_cmd) {
    (*cfg)["Cmd"] = args;
    *cmd_set = true;
  } else {
    (*cfg)["Entrypoint"] = args;
    // An ENTRYPOINT clears a CMD inherited from the base, as in Docker.
    if (!*cmd_set) (*cfg)["Cmd"] = nullptr;
  }
  std::string text = stagefarm::json::Dump(json(args));
  return List(step, "args", std::move(args), text);
}

json Healthcheck(const dockerfile::HealthcheckInst& h) {
  json hc = json::object();
  if (h.none) {
    hc["Test"] = {"NONE"};
    return hc;
  }
  std::vector<std::string> test{h.command.shell_form ? "CMD-SHELL" : "CMD"};
  if (h.command.shell_form) {
    test.push_back(absl::StrJoin(h.command.args, " "));
  } else {
    test.insert(test.end(), h.command.args.begin(), h.command.args.end());
  }
  hc["Test"] = test;
  auto dur = [&](const char* field, const std::string& v) {
    if (!v.empty()) {
      hc[field] = static_cast<int64_t>(dockerfile::GoDurationNanos(v));
    }
  };
  dur("Interval", h.interval);
  dur("Timeout", h.timeout);
  dur("StartPeriod", h.start_period);
  dur("StartInterval", h.start_interval);
  if (h.retries) hc["Retries"] = *h.retries;
  return hc;
}

}  // namespace

std::vector<std::string> JsonStrings(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get_ref<const std::string&>());
  }
  return out;
}

std::string EnvKey(absl::string_view kv) {
  return std::string(kv.substr(0, kv.find('=')));
}

void SetEnv(json* config, const std::string& key, const std::string& value) {
  json& env = (*config)["Env"];
  if (!env.is_array()) env = json::array();
  for (auto& e : env) {
    if (e.is_string() && EnvKey(e.get_ref<const std::string&>()) == key) {
      e = absl::StrCat(key, "=", value);
      return;
    }
  }
  env.push_back(absl::StrCat(key, "=", value));
}

std::vector<std::string> ShellArgs(const json& config, const std::string& cmd) {
  std::vector<std::string> shell =
      config.is_object() && config.contains("Shell")
          ? JsonStrings(config["Shell"])
          : std::vector<std::string>();
  if (shell.empty()) shell = {"/bin/sh", "-c"};
  shell.push_back(cmd);
  return shell;
}

std::vector<std::string> RunArgs(const ExpandedStep& step,
                                 const dockerfile::RunInst& run,
                                 const json& config) {
  const dockerfile::Instruction& inst = *step.instruction;
  if (!run.command.shell_form) return run.command.args;
  std::string script = absl::StrJoin(run.command.args, " ");
  if (!inst.heredocs.empty()) {
    std::string trimmed(absl::StripAsciiWhitespace(script));
    if (inst.heredocs.size() == 1 && absl::StartsWith(trimmed, "<<") &&
        trimmed.find(' ') == std::string::npos) {
      // RUN <<EOF: the body is the script.
      script = inst.heredocs[0].content;
    } else {
      for (const auto& h : inst.heredocs) {
        absl::StrAppend(&script, "\n", h.content, h.name);
      }
    }
  }
  return ShellArgs(config, script);
}

std::optional<MetadataChange> ApplyMetadata(const ExpandedStep& step,
                                            json* image, bool* cmd_set) {
  json& cfg = ObjectIn(image, "config");
  const json& const_cfg = cfg;
  return std::visit(
      [&](const auto& inst) -> std::optional<MetadataChange> {
        using T = std::decay_t<decltype(inst)>;
        if constexpr (std::is_same_v<T, dockerfile::EnvInst>) {
          std::vector<std::string> parts;
          for (const auto& kv : step.pairs) {
            SetEnv(&cfg, kv.key, kv.value);
            parts.push_back(absl::StrCat(kv.key, "=", kv.value));
          }
          std::string text = absl::StrJoin(parts, " ");
          return List(step, "env", std::move(parts), text);
        } else if constexpr (std::is_same_v<T, dockerfile::LabelInst>) {
          json& labels = ObjectIn(&cfg, "Labels");
          std::vector<std::string> parts;
          for (const auto& kv : step.pairs) {
            labels[kv.key] = kv.value;
            parts.push_back(absl::StrCat(kv.key, "=", kv.value));
          }
          std::string text = absl::StrJoin(parts, " ");
          return List(step, "labels", std::move(parts), text);
        } else if constexpr (std::is_same_v<T, dockerfile::CmdInst>) {
          return SetCommand(step, const_cfg, &cfg, inst.command, true, cmd_set);
        } else if constexpr (std::is_same_v<T, dockerfile::EntrypointInst>) {
          return SetCommand(step, const_cfg, &cfg, inst.command, false,
                            cmd_set);
        } else if constexpr (std::is_same_v<T, dockerfile::ShellInst>) {
          cfg["Shell"] = inst.shell;
          return List(step, "shell", inst.shell,
                      stagefarm::json::Dump(cfg["Shell"]));
        } else if constexpr (std::is_same_v<T, dockerfile::UserInst>) {
          std::string user = step.words.empty() ? "" : step.words[0];
          cfg["User"] = user;
          return One(step, "user", user, user);
        } else if constexpr (std::is_same_v<T, dockerfile::ExposeInst>) {
          json& exposed = ObjectIn(&cfg, "ExposedPorts");
          std::vector<std::string> ports;
          for (const std::string& p : step.words) {
            ports.push_back(ExposedPort(p));
            exposed[ports.back()] = json::object();
          }
          std::sort(ports.begin(), ports.end());
          std::string text = absl::StrCat("[", absl::StrJoin(ports, " "), "]");
          return List(step, "ports", std::move(ports), text);
        } else if constexpr (std::is_same_v<T, dockerfile::VolumeInst>) {
          json& volumes = ObjectIn(&cfg, "Volumes");
          for (const std::string& v : step.words) volumes[v] = json::object();
          return List(step, "volumes", step.words,
                      absl::StrCat("[", absl::StrJoin(step.words, " "), "]"));
        } else if constexpr (std::is_same_v<T, dockerfile::StopSignalInst>) {
          std::string signal = step.words.empty() ? "" : step.words[0];
          cfg["StopSignal"] = signal;
          return One(step, "signal", signal, signal);
        } else if constexpr (std::is_same_v<T, dockerfile::HealthcheckInst>) {
          json hc = Healthcheck(inst);
          cfg["Healthcheck"] = hc;
          std::string text = stagefarm::json::Dump(hc);
          return One(step, "healthcheck", text, text);
        } else if constexpr (std::is_same_v<T, dockerfile::OnbuildInst>) {
          json& onbuild = cfg["OnBuild"];
          if (!onbuild.is_array()) onbuild = json::array();
          onbuild.push_back(inst.expression);
          return One(step, "onbuild", inst.expression, inst.expression);
        } else if constexpr (std::is_same_v<T, dockerfile::MaintainerInst>) {
          (*image)["author"] = inst.name;
          return One(step, "author", inst.name, inst.name);
        } else {
          return std::nullopt;
        }
      },
      step.instruction->value);
}

}  // namespace stagefarm::engine
