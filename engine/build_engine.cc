#include "engine/build_engine.h"

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
#include "engine/user_db.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/parser.h"
#include "http/fetch.h"

namespace stagefarm::engine {
namespace {

using dockerfile::ExpandedStep;
using dockerfile::Instruction;
using nlohmann::json;

constexpr int kStepResultVersion = 1;

std::vector<std::string> JsonStrings(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& v : j) {
    if (v.is_string()) out.push_back(v.get<std::string>());
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
    if (e.is_string() && EnvKey(e.get<std::string>()) == key) {
      e = absl::StrCat(key, "=", value);
      return;
    }
  }
  env.push_back(absl::StrCat(key, "=", value));
}

// "linux/amd64" or "linux/arm64": what this machine's steps run as.
std::string HostPlatform() {
  struct utsname u;
  if (uname(&u) != 0) return "linux/amd64";
  std::string m = u.machine;
  if (m == "x86_64") return "linux/amd64";
  if (m == "aarch64") return "linux/arm64";
  return "linux/" + m;
}

// A step's working directory joined with a possibly relative path.
std::string JoinWorkdir(const std::string& workdir, const std::string& path) {
  if (!path.empty() && path[0] == '/') return CleanAbsolute(path);
  return CleanAbsolute(
      absl::StrCat(workdir.empty() ? "/" : workdir, "/", path));
}

std::string ExposedPort(const std::string& p) {
  return p.find('/') == std::string::npos ? p + "/tcp"
                                          : absl::AsciiStrToLower(p);
}

}  // namespace

BuildEngine::BuildEngine(BlobStore* blobs, ActionCacheStorage* ac,
                         image::ImageStore* images,
                         snapshot::Snapshotter* snapshots,
                         executor::Executor* executor, EngineOptions options)
    : blobs_(blobs),
      ac_storage_(ac),
      action_cache_(blobs, ac),
      images_(images),
      snapshots_(snapshots),
      executor_(executor),
      options_(std::move(options)) {}

// Runs the steps of one stage.
class StageRunner {
 public:
  struct Shared {
    BuildEngine* engine;
    const BuildRequest* request;
    const dockerfile::Plan* plan;
    const dockerfile::DockerignoreMatcher* ignore;
    std::function<void(const BuildEvent&)> emit;
    const std::atomic<bool>* cancel;
    std::string created;  // RFC 3339 time for history and config
    // Finished stages, by index; filled before dependents start.
    std::map<int, std::shared_future<absl::StatusOr<ImageState>>>* stages;
    std::atomic<int>* run;
    std::atomic<int>* cached;
  };

  StageRunner(Shared shared, int index)
      : s_(std::move(shared)),
        e_(s_.engine),
        index_(index),
        stage_(s_.plan->stages[index]),
        name_(stage_.DisplayName()) {}

  absl::StatusOr<ImageState> Run() {
    RETURN_IF_ERROR(ResolveBase());
    std::vector<std::string> base_env = JsonStrings(Cfg()["Env"]);
    const dockerfile::Plan* plan = s_.plan;
    if (!onbuild_pending_.empty()) {
      // The base's ONBUILD triggers run first, as if written right after
      // FROM; they are consumed (the result's config has none of them).
      triggered_plan_ = std::make_unique<dockerfile::Plan>(*s_.plan);
      std::string text = "FROM scratch\n";
      for (const std::string& t : onbuild_pending_)
        absl::StrAppend(&text, t, "\n");
      std::string where = absl::StrCat("ONBUILD trigger of ", stage_.base);
      ASSIGN_OR_RETURN(dockerfile::ParsedDockerfile parsed,
                       dockerfile::Parse(text, where));
      ASSIGN_OR_RETURN(std::vector<Instruction> insts,
                       dockerfile::ToInstructions(std::move(parsed), where));
      auto& own = triggered_plan_->stages[index_].instructions;
      own.insert(own.begin(), insts.begin() + 1, insts.end());
      plan = triggered_plan_.get();
    }
    ASSIGN_OR_RETURN(
        dockerfile::ExpandedStage expanded,
        dockerfile::ExpandStage(*plan, index_, s_.request->plan_options,
                                base_env, s_.request->dockerfile_name));
    int total = static_cast<int>(expanded.steps.size());
    for (int i = 0; i < total; ++i) {
      if (s_.cancel != nullptr && s_.cancel->load()) {
        return absl::CancelledError("build cancelled");
      }
      const ExpandedStep& step = expanded.steps[i];
      step_no_ = i + 1;
      steps_ = total;
      absl::Status st = RunStep(step);
      if (!st.ok()) {
        Emit(BuildEvent::Kind::kStepFailed, Display(step), 0);
        // Every failure names the instruction's file:line.
        std::string at = At(*step.instruction);
        if (!absl::StartsWith(st.message(), at) && !absl::IsCancelled(st)) {
          st = absl::Status(st.code(), absl::StrCat(at, ": ", st.message()));
        }
        return st;
      }
    }
    return state_;
  }

 private:
  json& Cfg() { return state_.config["config"]; }

  void Emit(BuildEvent::Kind kind, std::string text, double seconds) {
    BuildEvent ev;
    ev.kind = kind;
    ev.stage = name_;
    ev.step = step_no_;
    ev.steps = steps_;
    ev.text = std::move(text);
    ev.seconds = seconds;
    s_.emit(ev);
  }

  std::string Display(const ExpandedStep& step) const {
    std::string text = step.instruction->original;
    size_t nl = text.find('\n');
    if (nl != std::string::npos) text = text.substr(0, nl) + " ...";
    return text;
  }

  std::string At(const Instruction& inst) const {
    return absl::StrCat(s_.request->dockerfile_name, ":", inst.line);
  }

  absl::Status ResolveBase() {
    if (!stage_.platform.empty() && stage_.platform != HostPlatform() &&
        stage_.platform != "$BUILDPLATFORM" &&
        stage_.platform != "$TARGETPLATFORM") {
      return absl::UnimplementedError(absl::StrCat(
          s_.request->dockerfile_name, ":", stage_.line, ": FROM --platform=",
          stage_.platform, " is not supported: this worker builds for ",
          HostPlatform(), " only"));
    }
    if (stage_.base_stage >= 0) {
      ASSIGN_OR_RETURN(state_, StageResult(stage_.base_stage));
      TakeOnbuildTriggers();
      return absl::OkStatus();
    }
    if (absl::AsciiStrToLower(stage_.base) == "scratch") {
      state_.config = image::EmptyImageConfig();
      state_.key = cachekey::CacheKeyBuilder().Add("base", "scratch").Finish();
    } else {
      ASSIGN_OR_RETURN(image::ResolvedImage image, ResolveImage(stage_.base));
      state_.config = image.image.config;
      state_.layers = image.image.layers;
      state_.diff_ids = image.image.diff_ids;
      state_.key = cachekey::CacheKeyBuilder()
                       .Add("base", image::OciDigest(image.manifest.digest))
                       .Finish();
      TakeOnbuildTriggers();
    }
    if (!state_.config.contains("history") ||
        !state_.config["history"].is_array()) {
      state_.config["history"] = json::array();
    }
    if (!state_.config.contains("config") ||
        !state_.config["config"].is_object()) {
      state_.config["config"] = json::object();
    }
    // BuildKit gives every image a PATH.
    bool has_path = false;
    for (const std::string& e : JsonStrings(Cfg()["Env"])) {
      if (EnvKey(e) == "PATH") has_path = true;
    }
    if (!has_path) SetEnv(&Cfg(), "PATH", image::kDefaultPath);
    return absl::OkStatus();
  }

  void TakeOnbuildTriggers() {
    // The base's ONBUILD triggers run in this stage (Run) and are not
    // passed on: an image that consumed them has none left.
    if (state_.config.contains("config") &&
        state_.config["config"].contains("OnBuild") &&
        !state_.config["config"]["OnBuild"].is_null() &&
        !state_.config["config"]["OnBuild"].empty()) {
      onbuild_pending_ = JsonStrings(state_.config["config"]["OnBuild"]);
      state_.config["config"].erase("OnBuild");
    }
  }

  void AddHistory(const std::string& created_by, bool empty_layer) {
    json h{{"created", s_.created},
           {"created_by", created_by},
           {"comment", "buildkit.dockerfile.v0"}};
    if (empty_layer) h["empty_layer"] = true;
    state_.config["history"].push_back(std::move(h));
  }

  // The key of the next step: the previous key plus this step's fields.
  cachekey::CacheKeyBuilder KeyBuilder(const ExpandedStep& step) {
    cachekey::CacheKeyBuilder b;
    b.Add("parent", state_.key);
    b.Add("instruction", step.instruction->keyword);
    return b;
  }

  absl::Status RunStep(const ExpandedStep& step) {
    const Instruction& inst = *step.instruction;
    const std::string& k = inst.keyword;
    if (k == "run")
      return RunRun(step, std::get<dockerfile::RunInst>(inst.value));
    if (k == "copy" || k == "add") {
      return RunCopy(step, std::get<dockerfile::CopyInst>(inst.value));
    }
    if (k == "workdir") return RunWorkdir(step);
    // Metadata-only steps.
    cachekey::CacheKeyBuilder key = KeyBuilder(step);
    std::string history = absl::StrCat(absl::AsciiStrToUpper(k), " ");
    json& cfg = Cfg();
    if (k == "env") {
      std::vector<std::string> parts;
      for (const auto& kv : step.pairs) {
        SetEnv(&cfg, kv.key, kv.value);
        parts.push_back(absl::StrCat(kv.key, "=", kv.value));
      }
      absl::StrAppend(&history, absl::StrJoin(parts, " "));
      key.AddList("env", parts);
    } else if (k == "label") {
      if (!cfg["Labels"].is_object()) cfg["Labels"] = json::object();
      std::vector<std::string> parts;
      for (const auto& kv : step.pairs) {
        cfg["Labels"][kv.key] = kv.value;
        parts.push_back(absl::StrCat(kv.key, "=", kv.value));
      }
      absl::StrAppend(&history, absl::StrJoin(parts, " "));
      key.AddList("labels", parts);
    } else if (k == "cmd" || k == "entrypoint") {
      const dockerfile::Command& c =
          k == "cmd" ? std::get<dockerfile::CmdInst>(inst.value).command
                     : std::get<dockerfile::EntrypointInst>(inst.value).command;
      std::vector<std::string> args = c.args;
      if (c.shell_form) args = ShellArgs(absl::StrJoin(c.args, " "));
      if (k == "cmd") {
        cfg["Cmd"] = args;
        cmd_set_ = true;
      } else {
        cfg["Entrypoint"] = args;
        if (!cmd_set_) cfg["Cmd"] = nullptr;
      }
      absl::StrAppend(&history, json(args).dump());
      key.AddList("args", args);
    } else if (k == "shell") {
      cfg["Shell"] = std::get<dockerfile::ShellInst>(inst.value).shell;
      absl::StrAppend(&history, cfg["Shell"].dump());
      key.AddList("shell", JsonStrings(cfg["Shell"]));
    } else if (k == "user") {
      cfg["User"] = step.words.empty() ? "" : step.words[0];
      absl::StrAppend(&history, cfg["User"].get<std::string>());
      key.Add("user", cfg["User"].get<std::string>());
    } else if (k == "expose") {
      if (!cfg["ExposedPorts"].is_object())
        cfg["ExposedPorts"] = json::object();
      std::vector<std::string> ports;
      for (const std::string& p : step.words) {
        ports.push_back(ExposedPort(p));
        cfg["ExposedPorts"][ports.back()] = json::object();
      }
      std::sort(ports.begin(), ports.end());
      absl::StrAppend(&history, "[", absl::StrJoin(ports, " "), "]");
      key.AddList("ports", ports);
    } else if (k == "volume") {
      if (!cfg["Volumes"].is_object()) cfg["Volumes"] = json::object();
      for (const std::string& v : step.words)
        cfg["Volumes"][v] = json::object();
      absl::StrAppend(&history, "[", absl::StrJoin(step.words, " "), "]");
      key.AddList("volumes", step.words);
    } else if (k == "stopsignal") {
      cfg["StopSignal"] = step.words.empty() ? "" : step.words[0];
      absl::StrAppend(&history, cfg["StopSignal"].get<std::string>());
      key.Add("signal", cfg["StopSignal"].get<std::string>());
    } else if (k == "healthcheck") {
      const auto& h = std::get<dockerfile::HealthcheckInst>(inst.value);
      json hc = json::object();
      if (h.none) {
        hc["Test"] = {"NONE"};
      } else {
        std::vector<std::string> test{h.command.shell_form ? "CMD-SHELL"
                                                           : "CMD"};
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
      cfg["Healthcheck"] = hc;
      absl::StrAppend(&history, hc.dump());
      key.Add("healthcheck", hc.dump());
    } else if (k == "onbuild") {
      if (!cfg["OnBuild"].is_array()) cfg["OnBuild"] = json::array();
      const std::string& expr =
          std::get<dockerfile::OnbuildInst>(inst.value).expression;
      cfg["OnBuild"].push_back(expr);
      absl::StrAppend(&history, expr);
      key.Add("onbuild", expr);
    } else if (k == "maintainer") {
      state_.config["author"] =
          std::get<dockerfile::MaintainerInst>(inst.value).name;
      absl::StrAppend(&history, state_.config["author"].get<std::string>());
      key.Add("author", state_.config["author"].get<std::string>());
    } else if (k == "arg") {
      // ARG changes what later steps see; their keys include that.
      return absl::OkStatus();
    } else {
      return absl::UnimplementedError(
          absl::StrCat(At(inst), ": ", absl::AsciiStrToUpper(k),
                       " is not supported by this version's build engine"));
    }
    state_.key = key.Finish();
    AddHistory(history, true);
    return absl::OkStatus();
  }

  std::vector<std::string> ShellArgs(const std::string& cmd) {
    std::vector<std::string> shell = JsonStrings(Cfg()["Shell"]);
    if (shell.empty()) shell = {"/bin/sh", "-c"};
    shell.push_back(cmd);
    return shell;
  }

  // --- cache ---

  struct StepResult {
    bool empty = true;
    image::Descriptor layer;
    std::string diff_id;
  };

  absl::StatusOr<std::optional<StepResult>> LookupCache(
      const std::string& key) {
    if (s_.request->no_cache) return std::optional<StepResult>();
    ASSIGN_OR_RETURN(Digest action,
                     image::ParseOciDigest(key, 32, "cache key"));
    auto result = e_->action_cache_.Get(e_->options_.ns, action, {});
    if (absl::IsNotFound(result.status())) return std::optional<StepResult>();
    RETURN_IF_ERROR(result.status());
    for (const auto& f : result->output_files()) {
      if (f.path() != "step.json") continue;
      ASSIGN_OR_RETURN(Digest d, Digest::FromProto(f.digest()));
      ASSIGN_OR_RETURN(std::string text, e_->blobs_->Get(e_->options_.ns, d));
      auto j = image::ParseJson(text, "cached step result");
      if (!j.ok() || j->value("version", 0) != kStepResultVersion) break;
      StepResult r;
      r.empty = j->value("empty", true);
      if (!r.empty) {
        auto layer = image::ParseDescriptor((*j)["layer"], "cached step layer");
        if (!layer.ok()) break;
        r.layer = *layer;
        r.diff_id = j->value("diff_id", "");
      }
      return std::optional<StepResult>(r);
    }
    return std::optional<StepResult>();
  }

  absl::Status StoreCache(const std::string& key, const StepResult& r) {
    json j{{"version", kStepResultVersion}, {"empty", r.empty}};
    if (!r.empty) {
      j["layer"] = image::DescriptorJson(r.layer);
      j["diff_id"] = r.diff_id;
    }
    std::string text = image::Serialize(j);
    RETURN_IF_ERROR(e_->blobs_->Put(e_->options_.ns, text));
    reapi::ActionResult ar;
    auto* f = ar.add_output_files();
    f->set_path("step.json");
    Digest::Of(text).ToProto(f->mutable_digest());
    if (!r.empty) {
      auto* l = ar.add_output_files();
      l->set_path("layer");
      r.layer.digest.ToProto(l->mutable_digest());
    }
    ASSIGN_OR_RETURN(Digest action,
                     image::ParseOciDigest(key, 32, "cache key"));
    return e_->action_cache_.Update(e_->options_.ns, action, std::move(ar));
  }

  void ApplyResult(const StepResult& r, const std::string& history) {
    if (!r.empty) {
      state_.layers.push_back(r.layer);
      state_.diff_ids.push_back(r.diff_id);
    }
    AddHistory(history, r.empty);
  }

  // --- executing steps ---

  // A writable root file system for one step.
  struct Rootfs {
    std::unique_ptr<snapshot::OverlayMount> mount;
    std::string upper, work, dir;
    std::string path() const { return mount->path(); }
  };

  absl::StatusOr<Rootfs> MountRootfs() {
    Rootfs r;
    ASSIGN_OR_RETURN(std::vector<std::string> lowers,
                     e_->snapshots_->Prepare(state_.layers, state_.diff_ids));
    ASSIGN_OR_RETURN(r.dir, e_->snapshots_->TempDir("step-"));
    r.upper = r.dir + "/upper";
    r.work = r.dir + "/work";
    std::string target = r.dir + "/rootfs";
    for (const std::string& d : {r.upper, r.work, target}) {
      if (mkdir(d.c_str(), 0755) != 0) {
        return absl::InternalError(absl::StrCat("cannot create ", d));
      }
    }
    ASSIGN_OR_RETURN(
        r.mount, snapshot::OverlayMount::Mount(lowers, r.upper, r.work, target,
                                               e_->snapshots_->empty_dir()));
    return r;
  }

  // Unmounts, turns the upper dir into a layer, uploads it, commits the
  // snapshot, records the cache entry and the history.
  absl::Status Finish(Rootfs rootfs, const std::string& key,
                      const std::string& history, double started) {
    RETURN_IF_ERROR(rootfs.mount->Unmount());
    archives::LayerOptions lo;
    // Only the target stage's layers go into the image as they are; other
    // stages' layers are snapshots and cache entries, kept uncompressed (a
    // third of the work of a step that writes much). The few that end up in
    // the image (a target stage FROM another stage) are compressed when the
    // image is assembled.
    lo.compression = index_ == s_.plan->target ? s_.request->compression
                                               : archives::Compression::kNone;
    lo.level = s_.request->compression_level;
    lo.source_date_epoch = s_.request->source_date_epoch;
    std::string blob_path = rootfs.dir + "/layer";
    ASSIGN_OR_RETURN(archives::LayerBlob blob,
                     archives::WriteLayer(rootfs.upper, lo, blob_path));
    StepResult r;
    r.empty = blob.entries == 0;
    if (!r.empty) {
      r.layer = image::Descriptor{blob.media_type, blob.digest};
      r.diff_id = blob.diff_id;
      RETURN_IF_ERROR(
          UploadFile(e_->blobs_, e_->options_.ns, blob_path, blob.digest));
      std::vector<std::string> ids = state_.diff_ids;
      ids.push_back(r.diff_id);
      RETURN_IF_ERROR(
          e_->snapshots_->Commit(rootfs.upper, image::ChainIds(ids).back()));
    }
    (void)RemoveAll(rootfs.dir);
    RETURN_IF_ERROR(StoreCache(key, r));
    ApplyResult(r, history);
    state_.key = key;
    ++*s_.run;
    Emit(BuildEvent::Kind::kStepDone, "", Seconds() - started);
    return absl::OkStatus();
  }

  static double Seconds() {
    return std::chrono::duration<double>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Returns true (and applies the cached result) on a hit.
  absl::StatusOr<bool> TryCache(const std::string& key,
                                const std::string& history,
                                const std::string& display) {
    ASSIGN_OR_RETURN(std::optional<StepResult> hit, LookupCache(key));
    if (!hit) return false;
    ApplyResult(*hit, history);
    state_.key = key;
    ++*s_.cached;
    Emit(BuildEvent::Kind::kStepCached, display, 0);
    return true;
  }

  std::string Workdir() {
    std::string w = Cfg().value("WorkingDir", "");
    return w.empty() ? "/" : w;
  }

  absl::Status RunWorkdir(const ExpandedStep& step) {
    std::string path =
        JoinWorkdir(Workdir(), step.words.empty() ? "/" : step.words[0]);
    Cfg()["WorkingDir"] = path;
    std::string user = Cfg().value("User", "");
    std::string key =
        KeyBuilder(step).Add("path", path).Add("user", user).Finish();
    std::string history = absl::StrCat("WORKDIR ", path);
    std::string display = Display(step);
    ASSIGN_OR_RETURN(bool hit, TryCache(key, history, display));
    if (hit) return absl::OkStatus();
    double started = Seconds();
    Emit(BuildEvent::Kind::kStepStarted, display, 0);
    ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
    ASSIGN_OR_RETURN(UserIds ids, ResolveUser(rootfs.path(), user, false));
    ASSIGN_OR_RETURN(std::string host,
                     ResolveInRoot(rootfs.path(), path, true));
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
    return Finish(std::move(rootfs), key, history, started);
  }

  // The paths a RUN's mounts would create in the rootfs, and which of them
  // (with their parents) did not exist before, so they can be removed.
  std::vector<std::string> MissingStubs(const std::string& root,
                                        const std::vector<std::string>& dests) {
    std::set<std::string> missing;
    for (const std::string& d : dests) {
      std::string cur;
      for (absl::string_view part : absl::StrSplit(d, '/', absl::SkipEmpty())) {
        absl::StrAppend(&cur, "/", part);
        struct stat st;
        if (lstat((root + cur).c_str(), &st) != 0) missing.insert(cur);
      }
    }
    std::vector<std::string> out(missing.begin(), missing.end());
    std::sort(out.rbegin(), out.rend());  // deepest first
    return out;
  }

  void RemoveStubs(const std::string& upper,
                   const std::vector<std::string>& stubs) {
    for (const std::string& s : stubs) {
      std::string p = upper + s;
      struct stat st;
      if (lstat(p.c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        rmdir(p.c_str());  // only if empty
      } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
        unlink(p.c_str());
      }
    }
  }

  absl::StatusOr<std::string> StageKey(const std::string& from) {
    int idx = StageIndex(from);
    if (idx >= 0) {
      ASSIGN_OR_RETURN(ImageState st, StageResult(idx));
      return st.key;
    }
    ASSIGN_OR_RETURN(image::ResolvedImage image, ResolveImage(from));
    return image::OciDigest(image.manifest.digest);
  }

  // An image named in FROM or --from: as the request resolved it (a farm
  // client resolves names against its own index), else from the ImageStore.
  absl::StatusOr<image::ResolvedImage> ResolveImage(const std::string& name) {
    auto it = s_.request->images.find(name);
    if (it != s_.request->images.end()) return e_->images_->Load(it->second);
    return e_->images_->Resolve(name);
  }

  // Waits for an earlier stage of this build.
  absl::StatusOr<ImageState> StageResult(int idx) {
    auto it = s_.stages->find(idx);
    if (it == s_.stages->end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stage ", s_.plan->stages[idx].DisplayName(),
          " is not part of this build (an ONBUILD trigger refers to it)"));
    }
    return it->second.get();
  }

  int StageIndex(const std::string& from) {
    if (from.empty()) return -1;
    int n = 0;
    if (absl::SimpleAtoi(from, &n) && n >= 0 &&
        n < static_cast<int>(s_.plan->stages.size()) && n < index_) {
      return n;
    }
    for (const auto& st : s_.plan->stages) {
      if (st.index < index_ && !st.name.empty() &&
          absl::AsciiStrToLower(st.name) == absl::AsciiStrToLower(from)) {
        return st.index;
      }
    }
    return -1;
  }

  // A read-only view of a stage's or image's files.
  struct View {
    std::unique_ptr<snapshot::OverlayMount> mount;
    std::string dir;
    std::string path;
  };
  absl::StatusOr<View> ViewOf(const std::string& from) {
    ImageState st;
    int idx = StageIndex(from);
    if (idx >= 0) {
      ASSIGN_OR_RETURN(st, StageResult(idx));
    } else {
      ASSIGN_OR_RETURN(image::ResolvedImage image, ResolveImage(from));
      st.layers = image.image.layers;
      st.diff_ids = image.image.diff_ids;
    }
    View v;
    ASSIGN_OR_RETURN(std::vector<std::string> lowers,
                     e_->snapshots_->Prepare(st.layers, st.diff_ids));
    ASSIGN_OR_RETURN(v.dir, e_->snapshots_->TempDir("view-"));
    v.path = v.dir + "/rootfs";
    mkdir(v.path.c_str(), 0755);
    ASSIGN_OR_RETURN(
        v.mount, snapshot::OverlayMount::Mount(lowers, "", "", v.path,
                                               e_->snapshots_->empty_dir()));
    return v;
  }

  absl::Status RunRun(const ExpandedStep& step,
                      const dockerfile::RunInst& run) {
    const Instruction& inst = *step.instruction;
    json& cfg = Cfg();
    std::vector<std::string> args;
    if (run.command.shell_form) {
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
      args = ShellArgs(script);
    } else {
      args = run.command.args;
    }
    std::vector<std::string> env = step.run_env;
    bool has_path = false;
    for (const auto& e : env) has_path |= EnvKey(e) == "PATH";
    if (!has_path) env.push_back(absl::StrCat("PATH=", image::kDefaultPath));
    std::string user = cfg.value("User", "");
    std::string workdir = Workdir();
    bool network = run.network != "none" && !e_->options_.force_no_network;

    cachekey::CacheKeyBuilder kb = KeyBuilder(step);
    kb.AddList("args", args).AddList("env", env).Add("user", user);
    kb.Add("workdir", workdir).Add("network", run.network);
    // Mounts: what they are, and the content of bind sources.
    for (const auto& m : run.mounts) {
      std::vector<std::string> f{
          m.type,    m.target, m.source, m.from, m.id,
          m.sharing, m.mode,   m.uid,    m.gid,  m.read_only ? "ro" : "rw"};
      if (m.type == "bind") {
        if (!m.from.empty()) {
          ASSIGN_OR_RETURN(std::string from_key, StageKey(m.from));
          f.push_back(from_key);
        } else {
          CopySource src{s_.request->context_dir, s_.ignore, false};
          ASSIGN_OR_RETURN(
              auto matches,
              MatchSources(src, {m.source.empty() ? "." : m.source}, {}));
          ASSIGN_OR_RETURN(std::string d, DigestSources(src, matches, {}));
          f.push_back(d);
        }
      }
      kb.AddList("mount", f);
    }
    std::string key = kb.Finish();
    std::string history = step.history.empty()
                              ? absl::StrCat("RUN ", absl::StrJoin(args, " "))
                              : step.history;
    std::string display = Display(step);
    ASSIGN_OR_RETURN(bool hit, TryCache(key, history, display));
    if (hit) return absl::OkStatus();

    double started = Seconds();
    Emit(BuildEvent::Kind::kStepStarted, display, 0);
    ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
    ASSIGN_OR_RETURN(UserIds ids, ResolveUser(rootfs.path(), user, true));

    executor::ExecSpec spec;
    spec.rootfs = rootfs.path();
    spec.args = args;
    spec.env = env;
    spec.cwd = workdir;
    spec.uid = ids.uid;
    spec.gid = ids.gid;
    spec.additional_gids = ids.additional;
    spec.network = network;
    spec.memory_bytes = e_->options_.memory_bytes;
    spec.pids_limit = e_->options_.pids_limit;
    spec.cancel = s_.cancel;
    std::vector<std::string> dests{"/proc", "/dev", "/sys"};
    if (network) {
      dests.push_back("/etc/resolv.conf");
      dests.push_back("/etc/hosts");
    }
    std::vector<View> views;
    std::vector<std::unique_ptr<FileLock>> locks;
    std::vector<std::string> scratch_dirs;
    for (const auto& m : run.mounts) {
      executor::ExecMount em;
      em.destination = JoinWorkdir(workdir, m.target);
      if (m.type == "cache") {
        std::string id = m.id.empty() ? em.destination : m.id;
        std::string dir =
            absl::StrCat(e_->options_.cache_mounts, "/", Sha256::HexOf(id));
        RETURN_IF_ERROR(MakeDirs(dir, 0755));
        if (m.sharing == "locked") {
          locks.push_back(
              std::make_unique<FileLock>(dir, FileLock::Mode::kWait));
        } else if (m.sharing == "private") {
          // In use by another step: this one gets a fresh, throwaway cache.
          auto lock = std::make_unique<FileLock>(dir, FileLock::Mode::kTry);
          if (lock->held()) {
            locks.push_back(std::move(lock));
          } else {
            ASSIGN_OR_RETURN(dir, e_->snapshots_->TempDir("cache-private-"));
            scratch_dirs.push_back(dir);
          }
        }
        // uid, gid and mode apply to the cache directory itself.
        uint32_t n = 0;
        if (!m.uid.empty() && absl::SimpleAtoi(m.uid, &n)) {
          (void)!chown(dir.c_str(), n, static_cast<gid_t>(-1));
        }
        if (!m.gid.empty() && absl::SimpleAtoi(m.gid, &n)) {
          (void)!chown(dir.c_str(), static_cast<uid_t>(-1), n);
        }
        if (!m.mode.empty()) {
          auto mode = ParseChmod(m.mode);
          if (mode.ok()) chmod(dir.c_str(), *mode);
        }
        em.source = dir;
        em.read_only = false;
      } else if (m.type == "tmpfs") {
        em.type = "tmpfs";
        if (!m.size.empty()) em.options = absl::StrCat("size=", m.size);
      } else if (m.type == "secret") {
        std::string id =
            m.id.empty() ? m.target.substr(m.target.rfind('/') + 1) : m.id;
        auto it = s_.request->secrets.find(id);
        if (it == s_.request->secrets.end()) {
          if (m.required) {
            return absl::InvalidArgumentError(
                absl::StrCat(At(inst), ": secret ", id,
                             " is required but was not given (--secret id=", id,
                             ",src=FILE)"));
          }
          continue;
        }
        em.source = it->second;
        em.destination = m.target.empty() ? absl::StrCat("/run/secrets/", id)
                                          : JoinWorkdir(workdir, m.target);
        em.read_only = true;
      } else if (m.type == "bind") {
        std::string root = s_.request->context_dir;
        if (!m.from.empty()) {
          ASSIGN_OR_RETURN(View v, ViewOf(m.from));
          root = v.path;
          views.push_back(std::move(v));
        }
        ASSIGN_OR_RETURN(
            em.source,
            ResolveInRoot(root, m.source.empty() ? "/" : m.source, true));
        em.read_only = !m.read_only_set || m.read_only;
        if (!em.read_only) {
          return absl::UnimplementedError(absl::StrCat(
              At(inst), ": RUN --mount=type=bind,rw is not supported yet"));
        }
      } else {
        return absl::UnimplementedError(
            absl::StrCat(At(inst), ": RUN --mount=type=", m.type,
                         " is not supported by this version"));
      }
      // Mount points runc creates are removed afterwards, except those of
      // cache and tmpfs mounts, which stay as empty directories in the
      // layer as BuildKit leaves them.
      if (m.type != "cache" && m.type != "tmpfs")
        dests.push_back(em.destination);
      spec.mounts.push_back(std::move(em));
    }
    std::vector<std::string> stubs = MissingStubs(rootfs.path(), dests);
    ASSIGN_OR_RETURN(std::string log_dir, e_->snapshots_->TempDir("log-"));
    scratch_dirs.push_back(log_dir);
    LogLimits limits = e_->options_.log_limits;
    if (s_.request->log_max_bytes > 0) {
      limits.live_bytes = s_.request->log_max_bytes;
    }
    StepLog log(limits, log_dir, [this](std::string chunk) {
      Emit(BuildEvent::Kind::kLog, std::move(chunk), 0);
    });
    spec.on_output = [&log](absl::string_view chunk) { log.Write(chunk); };
    absl::StatusOr<executor::ExecResult> result = e_->executor_->Run(spec);
    std::string clipped = KeepFullLog(&log);
    views.clear();
    locks.clear();
    for (const std::string& d : scratch_dirs) (void)RemoveAll(d);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat(At(inst), ": ", Display(step), ": ",
                                       result.status().message()));
    }
    if (result->exit_code != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          At(inst), ": process \"", absl::StrJoin(args, " "),
          "\" did not complete successfully: exit code: ", result->exit_code,
          result->output_tail.empty() ? "" : "\n--- last output ---\n",
          result->output_tail, clipped.empty() ? "" : "\n--- ", clipped));
    }
    RETURN_IF_ERROR(rootfs.mount->Unmount());
    RemoveStubs(rootfs.upper, stubs);
    return Finish(std::move(rootfs), key, history, started);
  }

  // After a RUN: when its live output was clipped, stores the whole output
  // and says where it is (a note event carrying the blob); returns the note
  // ("" when nothing was clipped).
  std::string KeepFullLog(StepLog* log) {
    if (!log->clipped()) return "";
    absl::StatusOr<std::optional<Digest>> full =
        log->Finish(e_->blobs_, e_->options_.ns);
    std::string hint;
    if (!full.ok()) {
      hint = absl::StrCat("the full output could not be stored: ",
                          full.status().message());
    } else if (full->has_value()) {
      hint = absl::StrCat("the full output: stagefarm logs --blob ",
                          (*full)->ToString());
    }
    BuildEvent ev;
    ev.kind = BuildEvent::Kind::kNote;
    ev.stage = name_;
    ev.step = step_no_;
    ev.steps = steps_;
    ev.text = log->Note(hint);
    if (full.ok()) ev.full_log = *full;
    s_.emit(ev);
    return ev.text;
  }

  static bool IsUrl(const std::string& s) {
    return absl::StartsWith(s, "http://") || absl::StartsWith(s, "https://");
  }

  // Downloads `url` into `dir` (as Docker names it, mode 0600, mtime from
  // Last-Modified); checks `checksum` when given. Returns the body digest.
  absl::StatusOr<std::string> Download(const Instruction& inst,
                                       const std::string& url,
                                       const std::string& dir,
                                       const std::string& checksum) {
    std::string path = dir + "/" + http::FilenameOfUrl(url);
    auto f = http::Fetch(url, path);
    if (!f.ok()) {
      return absl::Status(f.status().code(),
                          absl::StrCat(At(inst), ": ", f.status().message()));
    }
    if (!checksum.empty() && absl::AsciiStrToLower(checksum) != f->digest) {
      unlink(path.c_str());
      return absl::InvalidArgumentError(
          absl::StrCat(At(inst), ": digest mismatch for ", url, ": expected ",
                       checksum, ", got ", f->digest));
    }
    chmod(path.c_str(), 0600);
    if (f->mtime >= 0) {
      struct timespec times[2] = {{f->mtime, 0}, {f->mtime, 0}};
      utimensat(AT_FDCWD, path.c_str(), times, 0);
    }
    return f->digest;
  }

  absl::Status RunCopy(const ExpandedStep& step,
                       const dockerfile::CopyInst& copy) {
    downloaded_ = false;
    const Instruction& inst = *step.instruction;
    std::string keyword = copy.is_add ? "ADD" : "COPY";
    if (step.words.size() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(At(inst), ": ", keyword, " requires a destination"));
    }
    std::vector<std::string> sources(step.words.begin(), step.words.end() - 1);
    std::string dest_word = step.words.back();
    int urls = 0;
    for (const std::string& s : sources) {
      if (absl::StartsWith(s, "git@") || absl::EndsWith(s, ".git")) {
        return absl::UnimplementedError(
            absl::StrCat(At(inst),
                         ": ADD of a git repository is not supported by this "
                         "version (",
                         s, ")"));
      }
      urls += IsUrl(s) ? 1 : 0;
    }
    if (urls > 0 &&
        (!copy.is_add || urls != static_cast<int>(sources.size()))) {
      return absl::InvalidArgumentError(
          absl::StrCat(At(inst), ": ",
                       copy.is_add ? "ADD cannot mix URLs and local sources"
                                   : "COPY does not take URLs (use ADD)"));
    }
    if (!copy.checksum.empty() && urls == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(At(inst), ": ADD --checksum needs a URL source"));
    }
    std::string workdir = Workdir();
    bool dir_dest = dest_word.empty() || absl::EndsWith(dest_word, "/") ||
                    dest_word == "." || dest_word == ".." ||
                    absl::EndsWith(dest_word, "/.") ||
                    absl::EndsWith(dest_word, "/..");
    std::string dest = JoinWorkdir(workdir, dest_word);
    if (dir_dest && dest != "/") dest += "/";

    // Where the sources come from.
    CopySource src;
    std::optional<View> view;
    std::string heredoc_dir;
    cachekey::CacheKeyBuilder kb = KeyBuilder(step);
    bool heredocs = false;
    for (const std::string& s : sources) heredocs |= absl::StartsWith(s, "<<");
    std::vector<std::string> urls_list;
    if (urls > 0) {
      // Downloads land in a scratch directory that becomes the source root.
      ASSIGN_OR_RETURN(heredoc_dir, e_->snapshots_->TempDir("download-"));
      urls_list = sources;
      std::vector<std::string> names;
      for (const std::string& url : urls_list)
        names.push_back(http::FilenameOfUrl(url));
      kb.AddList("urls", urls_list);
      if (!copy.checksum.empty()) {
        // With a checksum the content is known without downloading.
        if (!absl::StartsWith(copy.checksum, "sha256:") ||
            copy.checksum.size() != 71) {
          return absl::InvalidArgumentError(absl::StrCat(
              At(inst), ": --checksum must be sha256:<64 hex digits>"));
        }
        kb.Add("checksum", absl::AsciiStrToLower(copy.checksum));
      } else {
        for (const std::string& url : urls_list) {
          ASSIGN_OR_RETURN(std::string digest,
                           Download(inst, url, heredoc_dir, ""));
          kb.Add("content", digest);
        }
        downloaded_ = true;
      }
      sources = names;
      src.root = heredoc_dir;
    } else if (heredocs) {
      ASSIGN_OR_RETURN(heredoc_dir, e_->snapshots_->TempDir("heredoc-"));
      std::vector<std::string> renamed;
      for (const std::string& s : sources) {
        std::string name(absl::StripPrefix(absl::StripPrefix(s, "<<"), "-"));
        name.erase(std::remove(name.begin(), name.end(), '"'), name.end());
        name.erase(std::remove(name.begin(), name.end(), '\''), name.end());
        const dockerfile::Heredoc* h = nullptr;
        for (const auto& d : inst.heredocs) {
          if (d.name == name) h = &d;
        }
        if (h == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(At(inst), ": no heredoc named ", name));
        }
        std::string content = h->content;
        if (h->expand) {
          ASSIGN_OR_RETURN(content,
                           dockerfile::ExpandHeredoc(*h, step.run_env));
        }
        RETURN_IF_ERROR(
            WriteStringToFile(heredoc_dir + "/" + name, content, 0644));
        renamed.push_back(name);
        kb.Add("heredoc", content);
      }
      sources = renamed;
      src.root = heredoc_dir;
    } else if (!copy.from.empty()) {
      ASSIGN_OR_RETURN(std::string from_key, StageKey(copy.from));
      kb.Add("from", from_key);
      src.keep_owners = true;
    } else {
      src.root = s_.request->context_dir;
      src.ignore = s_.ignore;
    }
    std::optional<FileMode> mode;
    if (!step.chmod.empty()) {
      auto m = FileMode::Parse(step.chmod);
      if (!m.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(At(inst), ": ", m.status().message()));
      }
      mode = *m;
    }
    kb.AddList("sources", sources).Add("dest", dest);
    kb.Add("chown", step.chown).Add("chmod", step.chmod);
    kb.AddList("exclude", copy.excludes).Add("add", copy.is_add ? 1 : 0);
    kb.Add("parents", copy.parents ? 1 : 0);
    kb.Add("user", Cfg().value("User", ""));
    std::vector<SourceMatch> matches;
    if (copy.from.empty() && urls == 0) {
      auto m = MatchSources(src, sources, copy.excludes);
      if (!m.ok()) {
        return absl::Status(m.status().code(),
                            absl::StrCat(At(inst), ": ", keyword,
                                         " failed: ", m.status().message()));
      }
      matches = std::move(*m);
      ASSIGN_OR_RETURN(std::string digest,
                       DigestSources(src, matches, copy.excludes));
      kb.Add("content", digest);
    }
    std::string key = kb.Finish();
    std::vector<std::string> shown = urls > 0 ? urls_list : sources;
    std::string history = absl::StrCat(keyword, " ", absl::StrJoin(shown, " "),
                                       " ", dest_word, " # buildkit");
    std::string display = Display(step);
    auto cleanup = [&] {
      if (!heredoc_dir.empty()) (void)RemoveAll(heredoc_dir);
    };
    ASSIGN_OR_RETURN(bool hit, TryCache(key, history, display));
    if (hit) {
      cleanup();
      return absl::OkStatus();
    }
    double started = Seconds();
    Emit(BuildEvent::Kind::kStepStarted, display, 0);
    if (urls > 0) {
      if (!downloaded_) {
        for (const std::string& url : urls_list) {
          RETURN_IF_ERROR(
              Download(inst, url, heredoc_dir, copy.checksum).status());
        }
      }
      ASSIGN_OR_RETURN(matches, MatchSources(src, sources, {}));
    }
    if (!copy.from.empty()) {
      ASSIGN_OR_RETURN(View v, ViewOf(copy.from));
      src.root = v.path;
      view = std::move(v);
      auto m = MatchSources(src, sources, copy.excludes);
      if (!m.ok()) {
        return absl::Status(m.status().code(),
                            absl::StrCat(At(inst), ": ", keyword,
                                         " failed: ", m.status().message()));
      }
      matches = std::move(*m);
    }
    ASSIGN_OR_RETURN(Rootfs rootfs, MountRootfs());
    CopyOptions options;
    options.dest = dest;
    options.mode = mode;
    options.parents = copy.parents;
    options.unpack_archives =
        copy.is_add && copy.from.empty() && copy.unpack.value_or(urls == 0);
    if (!step.chown.empty()) {
      ASSIGN_OR_RETURN(UserIds ids,
                       ResolveUser(rootfs.path(), step.chown, false));
      options.uid = ids.uid;
      options.gid = ids.gid;
    }
    absl::Status st =
        CopyInto(src, matches, copy.excludes, rootfs.path(), options);
    view.reset();
    cleanup();
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat(At(inst), ": ", keyword,
                                                  " failed: ", st.message()));
    }
    return Finish(std::move(rootfs), key, history, started);
  }

  Shared s_;
  BuildEngine* e_;
  int index_;
  const dockerfile::Stage& stage_;
  std::string name_;
  ImageState state_;
  bool cmd_set_ = false;
  bool downloaded_ = false;
  std::vector<std::string> onbuild_pending_;
  std::unique_ptr<dockerfile::Plan> triggered_plan_;
  int step_no_ = 0;
  int steps_ = 0;
};

namespace {

absl::StatusOr<std::optional<dockerfile::DockerignoreMatcher>> IgnoreOf(
    const BuildRequest& request) {
  std::optional<dockerfile::DockerignoreMatcher> ignore;
  if (!request.dockerignore.empty()) {
    auto m = dockerfile::DockerignoreMatcher::Create(
        dockerfile::ReadDockerignore(request.dockerignore));
    if (!m.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(".dockerignore: ", m.status().message()));
    }
    ignore = std::move(*m);
  }
  return ignore;
}

std::string CreatedOf(const BuildRequest& request) {
  if (!request.created.empty()) return request.created;
  return Rfc3339(request.source_date_epoch
                     ? *request.source_date_epoch
                     : static_cast<int64_t>(time(nullptr)));
}

}  // namespace

std::string ImageStateJson(const ImageState& state) {
  json layers = json::array();
  for (const image::Descriptor& d : state.layers)
    layers.push_back(image::DescriptorJson(d));
  return image::Serialize(json{{"config", state.config},
                               {"layers", layers},
                               {"diff_ids", state.diff_ids},
                               {"key", state.key}});
}

absl::StatusOr<ImageState> ParseImageState(absl::string_view text) {
  ASSIGN_OR_RETURN(json j, image::ParseJson(text, "stage result"));
  ImageState st;
  if (!j.is_object() || !j["config"].is_object() || !j["layers"].is_array() ||
      !j["diff_ids"].is_array() || !j["key"].is_string() ||
      j["layers"].size() != j["diff_ids"].size()) {
    return absl::InvalidArgumentError("stage result: malformed image state");
  }
  st.config = j["config"];
  for (const json& l : j["layers"]) {
    ASSIGN_OR_RETURN(image::Descriptor d,
                     image::ParseDescriptor(l, "stage result layer"));
    st.layers.push_back(d);
  }
  for (const json& d : j["diff_ids"]) {
    if (!d.is_string()) {
      return absl::InvalidArgumentError("stage result: malformed diff_id");
    }
    st.diff_ids.push_back(d.get<std::string>());
  }
  st.key = j["key"].get<std::string>();
  return st;
}

absl::StatusOr<BuildResult> BuildEngine::Build(
    const BuildRequest& request,
    const std::function<void(const BuildEvent&)>& on_event,
    const std::atomic<bool>* cancel) {
  ASSIGN_OR_RETURN(
      dockerfile::Plan plan,
      dockerfile::PlanDockerfile(request.dockerfile, request.plan_options,
                                 request.dockerfile_name));
  ASSIGN_OR_RETURN(std::optional<dockerfile::DockerignoreMatcher> ignore,
                   IgnoreOf(request));
  std::mutex emit_mu;
  auto emit = [&](const BuildEvent& ev) {
    std::lock_guard<std::mutex> lock(emit_mu);
    if (on_event) on_event(ev);
  };
  std::atomic<bool> failed{false};
  std::atomic<int> run{0}, cached{0};
  std::map<int, std::shared_future<absl::StatusOr<ImageState>>> stages;
  std::map<int, std::promise<absl::StatusOr<ImageState>>> promises;
  std::string created = CreatedOf(request);
  for (const auto& st : plan.stages) {
    if (!st.needed) continue;
    stages[st.index] = promises[st.index].get_future().share();
  }
  // A combined cancel flag: the caller's, or a failure elsewhere.
  std::atomic<bool> stop{false};
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool watching = true;
  std::thread watcher([&] {
    std::unique_lock<std::mutex> lock(watch_mu);
    while (watching) {
      if (cancel != nullptr && cancel->load()) stop = true;
      watch_cv.wait_for(lock, std::chrono::milliseconds(50));
    }
  });
  std::vector<std::thread> threads;
  for (const auto& st : plan.stages) {
    if (!st.needed) continue;
    int index = st.index;
    threads.emplace_back([&, index] {
      StageRunner::Shared shared{
          this, &request, &plan,   ignore ? &*ignore : nullptr,
          emit, &stop,    created, &stages,
          &run, &cached};
      // Wait for the stages this one needs; a failed dependency fails it.
      absl::StatusOr<ImageState> result;
      bool dep_failed = false;
      for (int dep : plan.stages[index].depends_on) {
        auto it = stages.find(dep);
        if (it != stages.end() && !it->second.get().ok()) dep_failed = true;
      }
      if (dep_failed) {
        result = absl::CancelledError("a stage it depends on failed");
      } else {
        StageRunner runner(shared, index);
        result = runner.Run();
      }
      if (!result.ok()) {
        failed = true;
        stop = true;
      }
      promises[index].set_value(std::move(result));
    });
  }
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(watch_mu);
    watching = false;
  }
  watch_cv.notify_all();
  watcher.join();

  // Report the first real failure (not the cancellations it caused).
  absl::Status first;
  for (auto& [index, f] : stages) {
    const auto& r = f.get();
    if (r.ok()) continue;
    if (first.ok() ||
        (absl::IsCancelled(first) && !absl::IsCancelled(r.status()))) {
      first = r.status();
    }
  }
  if (!first.ok()) {
    if (absl::IsCancelled(first) && cancel != nullptr && cancel->load()) {
      return absl::CancelledError("build cancelled");
    }
    return first;
  }
  ASSIGN_OR_RETURN(BuildResult out,
                   Assemble(request, *stages[plan.target].get()));
  out.steps_run = run.load();
  out.steps_cached = cached.load();
  return out;
}

absl::StatusOr<StageOutcome> BuildEngine::RunStage(
    const BuildRequest& request, int index,
    const std::map<int, ImageState>& dependencies,
    const std::function<void(const BuildEvent&)>& on_event,
    const std::atomic<bool>* cancel) {
  ASSIGN_OR_RETURN(
      dockerfile::Plan plan,
      dockerfile::PlanDockerfile(request.dockerfile, request.plan_options,
                                 request.dockerfile_name));
  if (index < 0 || index >= static_cast<int>(plan.stages.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage index ", index, " is not in the Dockerfile"));
  }
  for (int dep : plan.stages[index].depends_on) {
    if (dependencies.find(dep) == dependencies.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stage ", plan.stages[index].DisplayName(),
          " needs the result of stage ", plan.stages[dep].DisplayName()));
    }
  }
  ASSIGN_OR_RETURN(std::optional<dockerfile::DockerignoreMatcher> ignore,
                   IgnoreOf(request));
  std::map<int, std::shared_future<absl::StatusOr<ImageState>>> stages;
  for (const auto& [dep, state] : dependencies) {
    std::promise<absl::StatusOr<ImageState>> ready;
    ready.set_value(state);
    stages[dep] = ready.get_future().share();
  }
  std::atomic<int> run{0}, cached{0};
  std::atomic<bool> no_cancel{false};
  std::mutex emit_mu;
  auto emit = [&](const BuildEvent& ev) {
    std::lock_guard<std::mutex> lock(emit_mu);
    if (on_event) on_event(ev);
  };
  StageRunner::Shared shared{this,
                             &request,
                             &plan,
                             ignore ? &*ignore : nullptr,
                             emit,
                             cancel != nullptr ? cancel : &no_cancel,
                             CreatedOf(request),
                             &stages,
                             &run,
                             &cached};
  StageRunner runner(shared, index);
  ASSIGN_OR_RETURN(ImageState state, runner.Run());
  StageOutcome out;
  out.state = std::move(state);
  out.steps_run = run.load();
  out.steps_cached = cached.load();
  return out;
}

absl::StatusOr<BuildResult> BuildEngine::Assemble(const BuildRequest& request,
                                                  ImageState image) {
  BuildResult out;
  out.image = std::move(image);
  if (request.compression != archives::Compression::kNone) {
    for (size_t i = 0; i < out.image.layers.size(); ++i) {
      image::Descriptor& layer = out.image.layers[i];
      if (layer.media_type != archives::kMediaTypeLayerTar) continue;
      ASSIGN_OR_RETURN(layer,
                       CompressedLayer(layer, out.image.diff_ids[i], request));
    }
  }
  for (const auto& [k, v] : request.labels) {
    json& cfg = out.image.config["config"];
    if (!cfg["Labels"].is_object()) cfg["Labels"] = json::object();
    cfg["Labels"][k] = v;
  }
  out.image.config["created"] = CreatedOf(request);
  out.image.config["rootfs"] =
      json{{"type", "layers"}, {"diff_ids", out.image.diff_ids}};
  ASSIGN_OR_RETURN(out.manifest,
                   images_->PutImage(out.image.config, out.image.layers));
  for (const std::string& tag : request.tags) {
    RETURN_IF_ERROR(images_->Tag(tag, out.manifest.digest));
  }
  return out;
}

absl::StatusOr<image::Descriptor> BuildEngine::CompressedLayer(
    const image::Descriptor& tar, const std::string& diff_id,
    const BuildRequest& request) {
  archives::LayerOptions lo;
  lo.compression = request.compression;
  lo.level = request.compression_level;
  std::string key =
      cachekey::CacheKeyBuilder()
          .Add("kind", "compressed-layer")
          .Add("layer", image::OciDigest(tar.digest))
          .Add("media_type", archives::LayerMediaType(lo.compression))
          .Add("level", lo.level)
          .Finish();
  ASSIGN_OR_RETURN(Digest action,
                   image::ParseOciDigest(key, 32, "compression key"));
  auto hit = action_cache_.Get(options_.ns, action, {});
  if (hit.ok()) {
    for (const auto& f : hit->output_files()) {
      if (f.path() != "layer") continue;
      ASSIGN_OR_RETURN(Digest d, Digest::FromProto(f.digest()));
      return image::Descriptor{archives::LayerMediaType(lo.compression), d};
    }
  } else if (!absl::IsNotFound(hit.status())) {
    return hit.status();
  }
  ASSIGN_OR_RETURN(std::string dir, snapshots_->TempDir("compress-"));
  auto compress = [&]() -> absl::StatusOr<image::Descriptor> {
    ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                     blobs_->OpenRead(options_.ns, tar.digest, 0, 0));
    std::string path = dir + "/layer";
    ASSIGN_OR_RETURN(
        archives::LayerBlob blob,
        archives::CompressLayer(
            [&](std::string* out) { return reader->Read(1 << 20, out); }, lo,
            path));
    if (blob.diff_id != diff_id) {
      return absl::DataLossError(
          absl::StrCat("layer ", image::OciDigest(tar.digest), " reads as ",
                       blob.diff_id, " but the image config says ", diff_id));
    }
    RETURN_IF_ERROR(UploadFile(blobs_, options_.ns, path, blob.digest));
    reapi::ActionResult ar;
    auto* f = ar.add_output_files();
    f->set_path("layer");
    blob.digest.ToProto(f->mutable_digest());
    RETURN_IF_ERROR(action_cache_.Update(options_.ns, action, std::move(ar)));
    return image::Descriptor{blob.media_type, blob.digest};
  };
  absl::StatusOr<image::Descriptor> out = compress();
  (void)RemoveAll(dir);
  return out;
}

absl::Status BuildEngine::ExportRootfs(const ImageState& image,
                                       const std::string& dest) {
  RETURN_IF_ERROR(MakeDirs(dest, 0755));
  ASSIGN_OR_RETURN(std::vector<std::string> lowers,
                   snapshots_->Prepare(image.layers, image.diff_ids));
  ASSIGN_OR_RETURN(std::string dir, snapshots_->TempDir("export-"));
  std::string target = dir + "/rootfs";
  mkdir(target.c_str(), 0755);
  absl::Status status;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<snapshot::OverlayMount> mount,
                     snapshot::OverlayMount::Mount(lowers, "", "", target,
                                                   snapshots_->empty_dir()));
    CopySource src{target, nullptr, true};
    CopyOptions options;
    options.dest = "/";
    SourceMatch all{"", target, true, "", ""};
    char* real = realpath(dest.c_str(), nullptr);
    std::string real_dest = real ? real : dest;
    free(real);
    status = CopyInto(src, {all}, {}, real_dest, options);
  }
  (void)RemoveAll(dir);
  return status;
}

}  // namespace stagefarm::engine
