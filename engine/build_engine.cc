#include "engine/build_engine.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <future>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
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
#include "frontend/dockerfile/entitlements.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/parser.h"
#include "http/fetch.h"

namespace stagefarm::engine {

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

bool BuildEngine::TryClaim(const std::string& key,
                           const std::atomic<bool>* cancel) {
  absl::MutexLock lock(&inflight_mu_);
  if (inflight_.insert(key).second) return true;
  while (inflight_.count(key) && !(cancel != nullptr && cancel->load())) {
    inflight_cv_.WaitWithTimeout(&inflight_mu_, absl::Milliseconds(100));
  }
  return false;
}

void BuildEngine::Release(const std::string& key) {
  absl::MutexLock lock(&inflight_mu_);
  inflight_.erase(key);
  inflight_cv_.SignalAll();
}

namespace {

// Whether a needed stage has a RUN in a network of its own (the default).
bool HasSandboxedRun(const dockerfile::Plan& plan) {
  for (const dockerfile::Stage& st : plan.stages) {
    if (!st.needed) continue;
    for (const dockerfile::Instruction& inst : st.instructions) {
      const auto* run = std::get_if<dockerfile::RunInst>(&inst.value);
      if (run != nullptr && run->network != "none" && run->network != "host") {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<BuildResult> BuildEngine::Build(
    const BuildRequest& request,
    const std::function<void(const BuildEvent&)>& on_event,
    const std::atomic<bool>* cancel) {
  ASSIGN_OR_RETURN(
      dockerfile::Plan plan,
      dockerfile::PlanDockerfile(request.dockerfile, request.plan_options,
                                 request.dockerfile_name));
  RETURN_IF_ERROR(dockerfile::CheckEntitled(plan, request.entitlements,
                                            request.dockerfile_name));
  // The first step that misses the cache starts the executor's network
  // set-up in the background (a build served from the cache makes none).
  const bool sandboxed = !options_.force_no_network && HasSandboxedRun(plan);
  ASSIGN_OR_RETURN(std::optional<dockerfile::DockerignoreMatcher> ignore,
                   IgnoreOf(request));
  absl::Mutex emit_mu;
  auto emit = [&](const BuildEvent& ev) {
    absl::MutexLock lock(&emit_mu);
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
  absl::Mutex watch_mu;
  absl::CondVar watch_cv;
  bool watching = true;
  std::thread watcher([&] {
    absl::MutexLock lock(&watch_mu);
    while (watching) {
      if (cancel != nullptr && cancel->load()) stop = true;
      watch_cv.WaitWithTimeout(&watch_mu, absl::Milliseconds(50));
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
      shared.sandboxed_runs = sandboxed;
      // Starts at once: the steps before the first that needs another
      // stage (FROM, COPY --from, RUN --mount from) run while that stage
      // does, as BuildKit's solver runs them; StageResult waits there.
      StageRunner runner(shared, index);
      absl::StatusOr<ImageState> result =
          ContainExceptions("stage", [&] { return runner.Run(); });
      if (!result.ok()) {
        failed = true;
        stop = true;
      }
      promises[index].set_value(std::move(result));
    });
  }
  for (auto& t : threads) t.join();
  {
    absl::MutexLock lock(&watch_mu);
    watching = false;
  }
  watch_cv.SignalAll();
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
  RETURN_IF_ERROR(dockerfile::CheckEntitled(plan, request.entitlements,
                                            request.dockerfile_name, index));
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
  absl::Mutex emit_mu;
  auto emit = [&](const BuildEvent& ev) {
    absl::MutexLock lock(&emit_mu);
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
  ASSIGN_OR_RETURN(ImageState state,
                   ContainExceptions("stage", [&] { return runner.Run(); }));
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
