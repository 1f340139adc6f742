#include "engine/stage_runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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
#include "common/contain.h"
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

namespace {

constexpr int kStepResultVersion = 1;

}  // namespace

// A step's working directory joined with a possibly relative path.
std::string JoinWorkdir(const std::string& workdir, const std::string& path) {
  if (!path.empty() && path[0] == '/') return CleanAbsolute(path);
  return CleanAbsolute(
      absl::StrCat(workdir.empty() ? "/" : workdir, "/", path));
}

absl::Status StageRunner::RunStep(const ExpandedStep& step) {
  // No step's input may abort the process: what a library throws is this
  // step's failure.
  return ContainExceptions("step", [&] {
    return std::visit([&](const auto& value) { return Step(step, value); },
                      step.instruction->value);
  });
}

absl::StatusOr<ImageState> StageRunner::Run() {
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
      dockerfile::ExpandStage(*plan, index_, s_.request->plan_options, base_env,
                              s_.request->dockerfile_name));
  int total = static_cast<int>(expanded.steps.size());
  for (int i = 0; i < total; ++i) {
    if (s_.cancel != nullptr && s_.cancel->load()) {
      return absl::CancelledError("build cancelled");
    }
    const ExpandedStep& step = expanded.steps[i];
    step_no_ = i + 1;
    line_ = step.instruction->line;
    steps_ = total;
    absl::Status st = RunStep(step);
    if (!st.ok()) {
      Emit(absl::IsCancelled(st) ? BuildEvent::Kind::kStepCancelled
                                 : BuildEvent::Kind::kStepFailed,
           Display(step), 0);
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

BuildEvent StageRunner::Event(BuildEvent::Kind kind, std::string text,
                              double seconds) const {
  BuildEvent ev;
  ev.kind = kind;
  ev.stage = name_;
  ev.step = step_no_;
  ev.steps = steps_;
  ev.text = std::move(text);
  ev.seconds = seconds;
  return ev;
}

void StageRunner::Emit(BuildEvent::Kind kind, std::string text,
                       double seconds) {
  s_.emit(Event(kind, std::move(text), seconds));
}

void StageRunner::EmitStep(BuildEvent::Kind kind, std::string text,
                           double seconds, const std::string& key,
                           int64_t layer_bytes) {
  BuildEvent ev = Event(kind, std::move(text), seconds);
  ev.layer_bytes = layer_bytes;
  if (kind != BuildEvent::Kind::kStepDone) {
    ev.line = line_;
    ev.key = key;
    ev.key_parts = key_parts_;
  }
  s_.emit(ev);
}

std::string StageRunner::KeyOf(const cachekey::CacheKeyBuilder& kb) {
  key_parts_ = kb.parts();
  return kb.Finish();
}

std::string StageRunner::Display(const ExpandedStep& step) const {
  std::string text = step.instruction->original;
  size_t nl = text.find('\n');
  if (nl != std::string::npos) text = text.substr(0, nl) + " ...";
  return text;
}

std::string StageRunner::At(const Instruction& inst) const {
  return absl::StrCat(s_.request->dockerfile_name, ":", inst.line);
}

absl::Status StageRunner::ResolveBase() {
  absl::StatusOr<platform::Platform> p = platform::Parse(
      dockerfile::StagePlatform(*s_.plan, index_, s_.request->plan_options));
  if (!p.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(s_.request->dockerfile_name,
                                                   ":", stage_.line, ": ",
                                                   p.status().message()));
  }
  platform_ = *p;
  if (stage_.base_stage >= 0) {
    ASSIGN_OR_RETURN(state_, StageResult(stage_.base_stage));
    TakeOnbuildTriggers();
    return absl::OkStatus();
  }
  // The platform is part of the base's key: steps for different platforms
  // never share a cache entry, even over the same image. So is
  // SOURCE_DATE_EPOCH, when set: the layers' times are clamped to it as
  // they are written, so a step cached without it (or with another) would
  // bring other times into a build that must be reproducible.
  auto base_key = [this](const std::string& base) {
    cachekey::CacheKeyBuilder b;
    b.Add("base", base).Add("platform", platform_.String());
    if (s_.request->source_date_epoch) {
      b.Add("source-date-epoch",
            std::to_string(*s_.request->source_date_epoch));
    }
    return b.Finish();
  };
  if (absl::AsciiStrToLower(stage_.base) == "scratch") {
    state_.config = image::EmptyImageConfig(platform_);
    state_.key = base_key("scratch");
  } else {
    ASSIGN_OR_RETURN(image::ResolvedImage image, ResolveImage(stage_.base));
    // An image stored before pulls refused such depth.
    absl::Status depth =
        image::CheckLayerCount(image.image.layers.size(), stage_.base);
    if (!depth.ok()) {
      return absl::Status(depth.code(),
                          absl::StrCat(s_.request->dockerfile_name, ":",
                                       stage_.line, ": ", depth.message()));
    }
    state_.config = image.image.config;
    state_.layers = image.image.layers;
    state_.diff_ids = image.image.diff_ids;
    state_.key = base_key(image::OciDigest(image.manifest.digest));
    image::SetConfigPlatform(&state_.config, platform_);
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

void StageRunner::TakeOnbuildTriggers() {
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

void StageRunner::AddHistory(const std::string& created_by, bool empty_layer) {
  json h{{"created", s_.created},
         {"created_by", created_by},
         {"comment", "buildkit.dockerfile.v0"}};
  if (empty_layer) h["empty_layer"] = true;
  state_.config["history"].push_back(std::move(h));
}

// The key of the next step: the previous key plus this step's fields.
cachekey::CacheKeyBuilder StageRunner::KeyBuilder(const ExpandedStep& step) {
  cachekey::CacheKeyBuilder b;
  b.Add("parent", state_.key);
  b.Add("instruction", step.instruction->keyword);
  return b;
}

std::vector<std::string> StageRunner::ShellArgs(const std::string& cmd) {
  return engine::ShellArgs(Cfg(), cmd);
}

absl::StatusOr<std::optional<StageRunner::StepResult>> StageRunner::LookupCache(
    const std::string& key) {
  if (s_.request->no_cache) return std::optional<StepResult>();
  ASSIGN_OR_RETURN(Digest action, image::ParseOciDigest(key, 32, "cache key"));
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

absl::Status StageRunner::StoreCache(const std::string& key,
                                     const StepResult& r) {
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
  ASSIGN_OR_RETURN(Digest action, image::ParseOciDigest(key, 32, "cache key"));
  return e_->action_cache_.Update(e_->options_.ns, action, std::move(ar));
}

void StageRunner::ApplyResult(const StepResult& r, const std::string& history) {
  if (!r.empty) {
    state_.layers.push_back(r.layer);
    state_.diff_ids.push_back(r.diff_id);
  }
  AddHistory(history, r.empty);
}

absl::StatusOr<StageRunner::Rootfs> StageRunner::MountRootfs() {
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
  r.lowers = std::move(lowers);
  return r;
}

// Unmounts, turns the upper dir into a layer, uploads it, commits the
// snapshot, records the cache entry and the history.
absl::Status StageRunner::Finish(Rootfs rootfs, const std::string& key,
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
  ReleaseClaim();
  ApplyResult(r, history);
  state_.key = key;
  ++*s_.run;
  EmitStep(BuildEvent::Kind::kStepDone, "", Seconds() - started, key,
           r.empty ? 0 : r.layer.digest.size());
  return absl::OkStatus();
}

void StageRunner::ReleaseClaim() {
  if (claimed_.empty()) return;
  e_->Release(claimed_);
  claimed_.clear();
}

double StageRunner::Seconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Returns true (and applies the cached result) on a hit.
absl::StatusOr<std::optional<double>> StageRunner::Begin(
    const std::string& key, const std::string& history,
    const std::string& display) {
  ReleaseClaim();
  while (true) {
    ASSIGN_OR_RETURN(bool hit, TryCache(key, history, display));
    if (hit) return std::nullopt;
    // Whether the step makes a layer shows only once it has run.
    RETURN_IF_ERROR(CheckRoomForLayer());
    if (s_.request->no_cache || e_->TryClaim(key, s_.cancel)) break;
    // Another build ran this very step meanwhile: its result is cached.
    if (s_.cancel != nullptr && s_.cancel->load()) {
      return absl::CancelledError("build cancelled");
    }
  }
  if (!s_.request->no_cache) claimed_ = key;
  if (s_.sandboxed_runs) e_->executor_->WillRunSandboxed();
  double started = Seconds();
  EmitStep(BuildEvent::Kind::kStepStarted, display, 0, key, -1);
  return started;
}

absl::StatusOr<bool> StageRunner::TryCache(const std::string& key,
                                           const std::string& history,
                                           const std::string& display) {
  ASSIGN_OR_RETURN(std::optional<StepResult> hit, LookupCache(key));
  if (!hit) return false;
  if (!hit->empty) RETURN_IF_ERROR(CheckRoomForLayer());
  ApplyResult(*hit, history);
  state_.key = key;
  ++*s_.cached;
  EmitStep(BuildEvent::Kind::kStepCached, display, 0, key,
           hit->empty ? 0 : hit->layer.digest.size());
  return true;
}

absl::Status StageRunner::CheckRoomForLayer() const {
  return image::CheckLayerCount(state_.layers.size() + 1, "this step's image");
}

std::string StageRunner::Workdir() {
  std::string w = Cfg().value("WorkingDir", "");
  return w.empty() ? "/" : w;
}

absl::StatusOr<std::string> StageRunner::StageKey(const std::string& from) {
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
absl::StatusOr<image::ResolvedImage> StageRunner::ResolveImage(
    const std::string& name) {
  auto it = s_.request->images.find(name);
  absl::StatusOr<image::ResolvedImage> image =
      it != s_.request->images.end()
          ? e_->images_->LoadFor(it->second, platform_)
          : e_->images_->Resolve(name, platform_);
  if (!image.ok() && it != s_.request->images.end()) {
    return absl::Status(
        image.status().code(),
        absl::StrCat("image \"", name, "\": ", image.status().message()));
  }
  return image;
}

// Waits for an earlier stage of this build (stages start before the ones
// they need have finished).
absl::StatusOr<ImageState> StageRunner::StageResult(int idx) {
  auto it = s_.stages->find(idx);
  if (it == s_.stages->end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stage ", s_.plan->stages[idx].DisplayName(),
        " is not part of this build (an ONBUILD trigger refers to it)"));
  }
  const absl::StatusOr<ImageState>& result = it->second.get();
  // The build reports that stage's own failure, not this one's.
  if (!result.ok()) return absl::CancelledError("a stage it depends on failed");
  return result;
}

int StageRunner::StageIndex(const std::string& from) {
  // Only earlier stages: the planner refused forward references.
  int index = dockerfile::FindStage(s_.plan->stages, from);
  return index < index_ ? index : -1;
}

absl::StatusOr<StageRunner::View> StageRunner::ViewOf(const std::string& from) {
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
  ASSIGN_OR_RETURN(v.mount,
                   snapshot::OverlayMount::Mount(lowers, "", "", v.path,
                                                 e_->snapshots_->empty_dir()));
  return v;
}

}  // namespace stagefarm::engine
