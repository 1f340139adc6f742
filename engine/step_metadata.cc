#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "blobstore/blob_files.h"
#include "cachekey/cache_key.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "engine/copy.h"
#include "engine/stage_runner.h"
#include "engine/user_db.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/parser.h"
#include "http/fetch.h"

namespace stagefarm::engine {

absl::Status StageRunner::RunWorkdir(const ExpandedStep& step) {
  std::string path =
      JoinWorkdir(Workdir(), step.words.empty() ? "/" : step.words[0]);
  Cfg()["WorkingDir"] = path;
  std::string user = Cfg().value("User", "");
  std::string key = KeyOf(KeyBuilder(step).Add("path", path).Add("user", user));
  std::string history = absl::StrCat("WORKDIR ", path);
  ASSIGN_OR_RETURN(std::optional<double> started,
                   Begin(key, history, Display(step)));
  if (!started) return absl::OkStatus();  // from the cache
  ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
  ASSIGN_OR_RETURN(UserIds ids, ResolveUser(rootfs.path(), user, false));
  ASSIGN_OR_RETURN(std::string host, ResolveInRoot(rootfs.path(), path, true));
  std::string cur = rootfs.path();
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(host).substr(cur.size()), '/',
                      absl::SkipEmpty())) {
    absl::StrAppend(&cur, "/", part);
    struct stat st;
    if (lstat(cur.c_str(), &st) == 0) continue;
    if (mkdir(cur.c_str(), 0755) != 0 ||
        lchown(cur.c_str(), ids.uid, ids.gid) != 0) {
      return absl::InternalError(
          absl::StrCat(At(*step.instruction), ": cannot create ", path));
    }
  }
  return Finish(std::move(rootfs), key, history, *started);
}

std::string ExposedPort(const std::string& p) {
  return p.find('/') == std::string::npos ? p + "/tcp"
                                          : absl::AsciiStrToLower(p);
}

// The history text of a metadata step: its keyword, then what it set.
std::string History(const ExpandedStep& step, absl::string_view what) {
  return absl::StrCat(absl::AsciiStrToUpper(step.instruction->keyword), " ",
                      what);
}

absl::Status StageRunner::FinishMetadata(cachekey::CacheKeyBuilder key,
                                         const std::string& history) {
  state_.key = key.Finish();
  AddHistory(history, true);
  return absl::OkStatus();
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::FromInst&) {
  return absl::UnimplementedError(
      absl::StrCat(At(*step.instruction),
                   ": FROM is not supported by this version's build engine"));
}

absl::Status StageRunner::Step(const ExpandedStep&,
                               const dockerfile::ArgInst&) {
  // ARG changes what later steps see; their keys include that.
  return absl::OkStatus();
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::EnvInst&) {
  std::vector<std::string> parts;
  for (const auto& kv : step.pairs) {
    SetEnv(&Cfg(), kv.key, kv.value);
    parts.push_back(absl::StrCat(kv.key, "=", kv.value));
  }
  return FinishMetadata(KeyBuilder(step).AddList("env", parts),
                        History(step, absl::StrJoin(parts, " ")));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::LabelInst&) {
  json& cfg = Cfg();
  if (!cfg["Labels"].is_object()) cfg["Labels"] = json::object();
  std::vector<std::string> parts;
  for (const auto& kv : step.pairs) {
    cfg["Labels"][kv.key] = kv.value;
    parts.push_back(absl::StrCat(kv.key, "=", kv.value));
  }
  return FinishMetadata(KeyBuilder(step).AddList("labels", parts),
                        History(step, absl::StrJoin(parts, " ")));
}

absl::Status StageRunner::SetCommand(const ExpandedStep& step,
                                     const dockerfile::Command& c,
                                     bool is_cmd) {
  json& cfg = Cfg();
  std::vector<std::string> args = c.args;
  if (c.shell_form) args = ShellArgs(absl::StrJoin(c.args, " "));
  if (is_cmd) {
    cfg["Cmd"] = args;
    cmd_set_ = true;
  } else {
    cfg["Entrypoint"] = args;
    // An ENTRYPOINT clears a CMD inherited from the base, as in Docker.
    if (!cmd_set_) cfg["Cmd"] = nullptr;
  }
  return FinishMetadata(KeyBuilder(step).AddList("args", args),
                        History(step, json(args).dump()));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::CmdInst& cmd) {
  return SetCommand(step, cmd.command, /*is_cmd=*/true);
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::EntrypointInst& entrypoint) {
  return SetCommand(step, entrypoint.command, /*is_cmd=*/false);
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::ShellInst& shell) {
  json& cfg = Cfg();
  cfg["Shell"] = shell.shell;
  return FinishMetadata(
      KeyBuilder(step).AddList("shell", JsonStrings(cfg["Shell"])),
      History(step, cfg["Shell"].dump()));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::UserInst&) {
  std::string user = step.words.empty() ? "" : step.words[0];
  Cfg()["User"] = user;
  return FinishMetadata(KeyBuilder(step).Add("user", user),
                        History(step, user));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::ExposeInst&) {
  json& cfg = Cfg();
  if (!cfg["ExposedPorts"].is_object()) cfg["ExposedPorts"] = json::object();
  std::vector<std::string> ports;
  for (const std::string& p : step.words) {
    ports.push_back(ExposedPort(p));
    cfg["ExposedPorts"][ports.back()] = json::object();
  }
  std::sort(ports.begin(), ports.end());
  return FinishMetadata(
      KeyBuilder(step).AddList("ports", ports),
      History(step, absl::StrCat("[", absl::StrJoin(ports, " "), "]")));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::VolumeInst&) {
  json& cfg = Cfg();
  if (!cfg["Volumes"].is_object()) cfg["Volumes"] = json::object();
  for (const std::string& v : step.words) cfg["Volumes"][v] = json::object();
  return FinishMetadata(
      KeyBuilder(step).AddList("volumes", step.words),
      History(step, absl::StrCat("[", absl::StrJoin(step.words, " "), "]")));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::StopSignalInst&) {
  std::string signal = step.words.empty() ? "" : step.words[0];
  Cfg()["StopSignal"] = signal;
  return FinishMetadata(KeyBuilder(step).Add("signal", signal),
                        History(step, signal));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::HealthcheckInst& h) {
  json hc = json::object();
  if (h.none) {
    hc["Test"] = {"NONE"};
  } else {
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
  }
  Cfg()["Healthcheck"] = hc;
  return FinishMetadata(KeyBuilder(step).Add("healthcheck", hc.dump()),
                        History(step, hc.dump()));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::OnbuildInst& onbuild) {
  json& cfg = Cfg();
  if (!cfg["OnBuild"].is_array()) cfg["OnBuild"] = json::array();
  cfg["OnBuild"].push_back(onbuild.expression);
  return FinishMetadata(KeyBuilder(step).Add("onbuild", onbuild.expression),
                        History(step, onbuild.expression));
}

absl::Status StageRunner::Step(const ExpandedStep& step,
                               const dockerfile::MaintainerInst& maintainer) {
  state_.config["author"] = maintainer.name;
  return FinishMetadata(KeyBuilder(step).Add("author", maintainer.name),
                        History(step, maintainer.name));
}

}  // namespace stagefarm::engine
