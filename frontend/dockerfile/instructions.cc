#include "frontend/dockerfile/instructions.h"

#include <algorithm>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/instruction_flags.h"

namespace stagefarm::dockerfile {
namespace {

using internal::Flags;
using internal::FlagSpec;
using internal::FlagTable;
using internal::Locator;
using internal::ParseMount;

constexpr const char* kKeywords[] = {
    "add",    "arg",   "cmd",         "copy",  "entrypoint", "env",
    "expose", "from",  "healthcheck", "label", "maintainer", "onbuild",
    "run",    "shell", "stopsignal",  "user",  "volume",     "workdir"};

Command CommandOf(const Node& node) {
  Command c;
  c.args = node.args;
  c.shell_form = !node.json;
  return c;
}

bool IsUrl(absl::string_view s) {
  return absl::StartsWith(s, "http://") || absl::StartsWith(s, "https://");
}

bool IsValidStageName(absl::string_view name) {
  if (name.empty() || !absl::ascii_isalpha(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

absl::Status RequireArgs(const Node& node, const Locator& at, size_t n,
                         absl::string_view what) {
  if (node.args.size() != n) {
    return at.Error(
        absl::StrCat(absl::AsciiStrToUpper(node.keyword), " requires ", what));
  }
  return absl::OkStatus();
}

// A Go-style duration ("30s", "1m30s", "500ms", "0s").
bool IsDuration(absl::string_view s) {
  if (s.empty()) return false;
  if (s == "0") return true;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (absl::ascii_isdigit(s[i]) || s[i] == '.')) ++i;
    if (i == start) return false;
    size_t unit = i;
    while (i < s.size() && absl::ascii_isalpha(s[i])) ++i;
    absl::string_view u = s.substr(unit, i - unit);
    if (u != "ns" && u != "us" && u != "ms" && u != "s" && u != "m" &&
        u != "h") {
      return false;
    }
  }
  return true;
}

// Nanoseconds of a Go-style duration already checked by IsDuration.
double DurationNanos(absl::string_view s) {
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (absl::ascii_isdigit(s[i]) || s[i] == '.')) ++i;
    double n = 0;
    if (!absl::SimpleAtod(s.substr(start, i - start), &n)) return 0;
    size_t unit = i;
    while (i < s.size() && absl::ascii_isalpha(s[i])) ++i;
    absl::string_view u = s.substr(unit, i - unit);
    double scale = u == "ns"   ? 1
                   : u == "us" ? 1e3
                   : u == "ms" ? 1e6
                   : u == "s"  ? 1e9
                   : u == "m"  ? 6e10
                   : u == "h"  ? 3.6e12
                               : 0;
    total += n * scale;
  }
  return total;
}

absl::StatusOr<Instruction> Convert(const Node& node, absl::string_view file);

absl::Status ConvertFrom(const Node& node, const Locator& at,
                         absl::string_view file, Instruction* inst) {
  using K = FlagSpec::Kind;
  Flags flags(node, at, {{"platform", K::kString}});
  RETURN_IF_ERROR(flags.Parse());
  FromInst from;
  from.platform = flags.String("platform");
  if (node.args.size() == 1) {
    from.image = node.args[0];
  } else if (node.args.size() == 3 &&
             absl::EqualsIgnoreCase(node.args[1], "as")) {
    from.image = node.args[0];
    from.name = node.args[2];
    if (!IsValidStageName(from.name)) {
      return at.Error(
          absl::StrCat("invalid name for build stage: \"", from.name,
                       "\", name can't start with a number or "
                       "contain symbols"),
          at.ColumnOf(from.name));
    }
  } else {
    return at.Error("FROM requires either one or three arguments");
  }
  inst->value = std::move(from);
  return absl::OkStatus();
}

absl::Status ConvertRun(const Node& node, const Locator& at,
                        absl::string_view file, Instruction* inst) {
  using K = FlagSpec::Kind;
  Flags flags(node, at,
              {{"mount", K::kStrings},
               {"network", K::kString},
               {"security", K::kString}});
  RETURN_IF_ERROR(flags.Parse());
  RunInst run;
  run.command = CommandOf(node);
  if (run.command.args.empty() && node.heredocs.empty()) {
    return at.Error("RUN requires at least one argument");
  }
  for (const auto& [spec, column] : flags.List("mount")) {
    ASSIGN_OR_RETURN(Mount m, ParseMount(spec, column, at));
    run.mounts.push_back(std::move(m));
  }
  run.network = flags.String("network");
  if (!run.network.empty() && run.network != "default" &&
      run.network != "none" && run.network != "host") {
    return at.Error(absl::StrCat("unsupported network mode \"", run.network,
                                 "\" (default, none or host)"),
                    flags.Column("network"));
  }
  run.security = flags.String("security");
  if (!run.security.empty() && run.security != "sandbox" &&
      run.security != "insecure") {
    return at.Error(absl::StrCat("unsupported security mode \"", run.security,
                                 "\" (sandbox or insecure)"),
                    flags.Column("security"));
  }
  inst->value = std::move(run);
  return absl::OkStatus();
}

absl::Status ConvertCommand(const Node& node, const Locator& at,
                            absl::string_view file, Instruction* inst) {
  const std::string& k = inst->keyword;
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  if (k == "cmd") {
    inst->value = CmdInst{CommandOf(node)};
  } else {
    inst->value = EntrypointInst{CommandOf(node)};
  }
  return absl::OkStatus();
}

absl::Status ConvertShell(const Node& node, const Locator& at,
                          absl::string_view file, Instruction* inst) {
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  if (!node.json)
    return at.Error("SHELL requires the arguments to be in JSON form");
  if (node.args.empty())
    return at.Error("SHELL requires at least one argument");
  inst->value = ShellInst{node.args};
  return absl::OkStatus();
}

absl::Status ConvertCopy(const Node& node, const Locator& at,
                         absl::string_view file, Instruction* inst) {
  const std::string& k = inst->keyword;
  using K = FlagSpec::Kind;
  bool add = k == "add";
  FlagTable allowed = {{"chown", K::kString},
                       {"chmod", K::kString},
                       {"link", K::kBool},
                       {"exclude", K::kStrings},
                       {"parents", K::kBool}};
  if (add) {
    allowed.Add("checksum", K::kString);
    allowed.Add("keep-git-dir", K::kBool);
    allowed.Add("unpack", K::kBool);
  } else {
    allowed.Add("from", K::kString);
  }
  Flags flags(node, at, allowed);
  RETURN_IF_ERROR(flags.Parse());
  CopyInst copy;
  copy.is_add = add;
  copy.from = flags.String("from");
  copy.from_column = flags.Column("from");
  if (copy.from.find('$') != std::string::npos) {
    return at.Error(
        "variable expansion is not supported for --from, define a new stage "
        "with FROM using ARG from global scope as a workaround",
        copy.from_column);
  }
  copy.chown = flags.String("chown");
  copy.chmod = flags.String("chmod");
  copy.link = flags.Bool("link").value_or(false);
  copy.parents = flags.Bool("parents").value_or(false);
  for (const auto& [pattern, column] : flags.List("exclude")) {
    copy.excludes.push_back(pattern);
  }
  if (add) {
    copy.checksum = flags.String("checksum");
    copy.keep_git_dir = flags.Bool("keep-git-dir");
    copy.unpack = flags.Bool("unpack");
  }
  size_t needed = node.heredocs.empty() ? 2 : 1;
  if (node.args.size() < needed) {
    return at.Error(absl::StrCat(absl::AsciiStrToUpper(k),
                                 " requires at least two arguments, but only "
                                 "one was provided. Destination could not be "
                                 "determined"));
  }
  copy.sources.assign(node.args.begin(), node.args.end() - 1);
  copy.dest = node.args.back();
  if (!node.heredocs.empty()) {
    absl::string_view d = copy.dest;
    while (!d.empty() && absl::ascii_isdigit(d[0])) d.remove_prefix(1);
    if (absl::StartsWith(d, "<<")) {
      return at.Error(absl::StrCat(absl::AsciiStrToUpper(k),
                                   " cannot accept a heredoc as a destination"),
                      at.ColumnOf(copy.dest));
    }
  }
  if (!add) {
    for (const std::string& src : copy.sources) {
      if (IsUrl(src)) {
        return at.Error("source can't be a URL for COPY", at.ColumnOf(src));
      }
    }
  }
  if (!copy.checksum.empty()) {
    bool http = copy.sources.size() == 1 && IsUrl(copy.sources[0]);
    bool git =
        copy.sources.size() == 1 && absl::EndsWith(copy.sources[0], ".git");
    if (!http && !git) {
      return at.Error(
          "checksum can't be specified for a non-HTTP(S) or git source",
          flags.Column("checksum"));
    }
  }
  inst->value = std::move(copy);
  return absl::OkStatus();
}

absl::Status ConvertKeyValues(const Node& node, const Locator& at,
                              absl::string_view file, Instruction* inst) {
  const std::string& k = inst->keyword;
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  std::vector<KeyValue> pairs;
  bool legacy = false;
  for (size_t i = 0; i + 3 <= node.args.size(); i += 3) {
    pairs.push_back({node.args[i], node.args[i + 1]});
    legacy = legacy || node.args[i + 2].empty();
  }
  if (pairs.empty()) {
    return at.Error(absl::StrCat(absl::AsciiStrToUpper(k),
                                 " requires at least one argument"));
  }
  for (const KeyValue& kv : pairs) {
    if (kv.key.empty()) {
      return at.Error(
          absl::StrCat(absl::AsciiStrToUpper(k), " names can not be blank"));
    }
  }
  if (k == "env") {
    inst->value = EnvInst{std::move(pairs), legacy};
  } else {
    inst->value = LabelInst{std::move(pairs), legacy};
  }
  return absl::OkStatus();
}

absl::Status ConvertArg(const Node& node, const Locator& at,
                        absl::string_view file, Instruction* inst) {
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  if (node.args.empty()) return at.Error("ARG requires at least one argument");
  ArgInst arg;
  for (const std::string& word : node.args) {
    size_t eq = word.find('=');
    ArgInst::Arg a;
    a.name = word.substr(0, eq);
    if (eq != std::string::npos) a.default_value = word.substr(eq + 1);
    if (a.name.empty()) {
      return at.Error("ARG names can not be blank", at.ColumnOf(word));
    }
    arg.args.push_back(std::move(a));
  }
  inst->value = std::move(arg);
  return absl::OkStatus();
}

absl::Status ConvertExpose(const Node& node, const Locator& at,
                           absl::string_view file, Instruction* inst) {
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  if (node.args.empty())
    return at.Error("EXPOSE requires at least one argument");
  inst->value = ExposeInst{node.args};
  return absl::OkStatus();
}

absl::Status ConvertVolume(const Node& node, const Locator& at,
                           absl::string_view file, Instruction* inst) {
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  if (node.args.empty())
    return at.Error("VOLUME requires at least one argument");
  for (const std::string& p : node.args) {
    if (TrimSpaceAscii(p).empty()) {
      return at.Error("VOLUME specified can not be an empty string");
    }
  }
  inst->value = VolumeInst{node.args};
  return absl::OkStatus();
}

absl::Status ConvertOneWord(const Node& node, const Locator& at,
                            absl::string_view file, Instruction* inst) {
  const std::string& k = inst->keyword;
  Flags flags(node, at, {});
  RETURN_IF_ERROR(flags.Parse());
  RETURN_IF_ERROR(RequireArgs(node, at, 1, "exactly one argument"));
  if (k == "user") {
    inst->value = UserInst{node.args[0]};
  } else if (k == "workdir") {
    inst->value = WorkdirInst{node.args[0]};
  } else if (k == "stopsignal") {
    inst->value = StopSignalInst{node.args[0]};
  } else {
    inst->value = MaintainerInst{node.args[0]};
  }
  return absl::OkStatus();
}

absl::Status ConvertHealthcheck(const Node& node, const Locator& at,
                                absl::string_view file, Instruction* inst) {
  using K = FlagSpec::Kind;
  Flags flags(node, at,
              {{"interval", K::kString},
               {"timeout", K::kString},
               {"start-period", K::kString},
               {"start-interval", K::kString},
               {"retries", K::kString}});
  RETURN_IF_ERROR(flags.Parse());
  if (node.args.empty()) {
    return at.Error("HEALTHCHECK requires at least one argument");
  }
  HealthcheckInst hc;
  std::string type = absl::AsciiStrToUpper(node.args[0]);
  if (type == "NONE") {
    if (node.args.size() > 1 || !node.flags.empty()) {
      return at.Error("HEALTHCHECK NONE takes no arguments");
    }
    hc.none = true;
  } else if (type == "CMD") {
    if (node.args.size() < 2)
      return at.Error("Missing command after HEALTHCHECK CMD");
    hc.command.args.assign(node.args.begin() + 1, node.args.end());
    hc.command.shell_form = !node.json;
  } else {
    return at.Error(absl::StrCat("Unknown type \"", node.args[0],
                                 "\" in HEALTHCHECK (try CMD)"),
                    at.ColumnOf(node.args[0]));
  }
  for (const char* name :
       {"interval", "timeout", "start-period", "start-interval"}) {
    std::string v = flags.String(name);
    if (!v.empty() && IsDuration(v) && DurationNanos(v) > 0 &&
        DurationNanos(v) < 1e6) {
      return at.Error(
          absl::StrCat("Interval \"", name, "\" cannot be less than 1ms"),
          flags.Column(name));
    }
    if (!v.empty() && !IsDuration(v)) {
      return at.Error(
          absl::StrCat("invalid duration for --", name, ": \"", v, "\""),
          flags.Column(name));
    }
  }
  hc.interval = flags.String("interval");
  hc.timeout = flags.String("timeout");
  hc.start_period = flags.String("start-period");
  hc.start_interval = flags.String("start-interval");
  std::string retries = flags.String("retries");
  if (!retries.empty()) {
    int n = 0;
    if (!absl::SimpleAtoi(retries, &n) || n < 0) {
      return at.Error(
          absl::StrCat("--retries must be a non-negative integer, not \"",
                       retries, "\""),
          flags.Column("retries"));
    }
    hc.retries = n;
  }
  inst->value = std::move(hc);
  return absl::OkStatus();
}

absl::Status ConvertOnbuild(const Node& node, const Locator& at,
                            absl::string_view file, Instruction* inst) {
  if (!node.inner) return at.Error("ONBUILD requires at least one argument");
  std::string inner = node.inner->LowerKeyword();
  if (inner == "onbuild") {
    return at.Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  }
  if (inner == "from" || inner == "maintainer") {
    return at.Error(absl::StrCat(absl::AsciiStrToUpper(inner),
                                 " isn't allowed as an ONBUILD trigger"));
  }
  // The trigger must itself be a valid instruction.
  ASSIGN_OR_RETURN(Instruction trigger, Convert(*node.inner, file));
  (void)trigger;
  std::string expression(TrimSpaceAscii(node.original));
  expression = std::string(TrimSpaceAscii(
      absl::string_view(expression).substr(node.keyword.size())));
  inst->value = OnbuildInst{expression};
  return absl::OkStatus();
}

// One converter per instruction (or group of alike instructions).
using Converter = absl::Status (*)(const Node& node, const Locator& at,
                                   absl::string_view file, Instruction* inst);

absl::StatusOr<Instruction> Convert(const Node& node, absl::string_view file) {
  static const auto* const kConverters =
      new absl::flat_hash_map<std::string, Converter>{
          {"from", ConvertFrom},
          {"run", ConvertRun},
          {"cmd", ConvertCommand},
          {"entrypoint", ConvertCommand},
          {"shell", ConvertShell},
          {"copy", ConvertCopy},
          {"add", ConvertCopy},
          {"env", ConvertKeyValues},
          {"label", ConvertKeyValues},
          {"arg", ConvertArg},
          {"expose", ConvertExpose},
          {"volume", ConvertVolume},
          {"user", ConvertOneWord},
          {"workdir", ConvertOneWord},
          {"stopsignal", ConvertOneWord},
          {"maintainer", ConvertOneWord},
          {"healthcheck", ConvertHealthcheck},
          {"onbuild", ConvertOnbuild},
      };
  Locator at(file, node);
  Instruction inst;
  inst.keyword = node.LowerKeyword();
  inst.line = node.start_line;
  inst.end_line = node.end_line;
  const std::string& k = inst.keyword;
  auto it = kConverters->find(k);
  if (it == kConverters->end()) {
    std::vector<std::string> names(std::begin(kKeywords), std::end(kKeywords));
    std::string hint = absl::AsciiStrToUpper(Suggest(k, names));
    return at.Error(
        absl::StrCat("unknown instruction: ", node.keyword,
                     hint.empty() ? "" : " (did you mean " + hint + "?)"));
  }
  RETURN_IF_ERROR(it->second(node, at, file, &inst));
  return inst;
}

}  // namespace

absl::string_view TrimSpaceAscii(absl::string_view s) {
  return absl::StripAsciiWhitespace(s);
}

absl::StatusOr<Instruction> ToInstruction(const Node& node,
                                          absl::string_view filename) {
  ASSIGN_OR_RETURN(Instruction inst, Convert(node, filename));
  inst.original = node.original;
  inst.heredocs = node.heredocs;
  inst.comments = node.comments;
  return inst;
}

absl::StatusOr<std::vector<Instruction>> ToInstructions(
    const ParsedDockerfile& parsed, absl::string_view filename) {
  std::vector<Instruction> out;
  out.reserve(parsed.children.size());
  for (const Node& node : parsed.children) {
    ASSIGN_OR_RETURN(Instruction inst, ToInstruction(node, filename));
    out.push_back(std::move(inst));
  }
  return out;
}

absl::StatusOr<std::vector<Instruction>> ToInstructions(
    ParsedDockerfile&& parsed, absl::string_view filename) {
  std::vector<Instruction> out;
  out.reserve(parsed.children.size());
  for (Node& node : parsed.children) {
    ASSIGN_OR_RETURN(Instruction inst, Convert(node, filename));
    // The node is not needed any more: take its text instead of copying.
    inst.original = std::move(node.original);
    inst.heredocs = std::move(node.heredocs);
    inst.comments = std::move(node.comments);
    out.push_back(std::move(inst));
  }
  return out;
}

std::string Suggest(absl::string_view word,
                    const std::vector<std::string>& candidates) {
  std::string w = absl::AsciiStrToLower(word);
  std::string best;
  size_t best_distance = std::max<size_t>(2, w.size() / 3) + 1;
  for (const std::string& c : candidates) {
    std::string lc = absl::AsciiStrToLower(c);
    // Levenshtein distance.
    std::vector<size_t> prev(lc.size() + 1), cur(lc.size() + 1);
    for (size_t j = 0; j <= lc.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= w.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= lc.size(); ++j) {
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                           prev[j - 1] + (w[i - 1] == lc[j - 1] ? 0 : 1)});
      }
      std::swap(prev, cur);
    }
    if (prev[lc.size()] < best_distance) {
      best_distance = prev[lc.size()];
      best = c;
    }
  }
  return best;
}

double GoDurationNanos(absl::string_view s) {
  return IsDuration(s) ? DurationNanos(s) : 0;
}

}  // namespace stagefarm::dockerfile
