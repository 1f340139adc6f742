// The stage runner: runs the steps of one stage of a build, each step
// through the step cache. Internal to the build engine (engine/BUILD.bazel
// keeps it out of the library's headers): stage_runner.cc holds the stage's
// course (base image, cache, root file systems, other stages), step_run.cc
// RUN, step_copy.cc COPY and ADD, step_metadata.cc WORKDIR and the steps
// that only change the image config.
#ifndef STAGEFARM_ENGINE_STAGE_RUNNER_H_
#define STAGEFARM_ENGINE_STAGE_RUNNER_H_

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cachekey/cache_key.h"
#include "common/fs_util.h"
#include "engine/build_engine.h"
#include "engine/copy.h"
#include "engine/image_config.h"
#include "engine/step_log.h"
#include "executor/executor.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/expand.h"
#include "frontend/dockerfile/plan.h"
#include "gitsource/git_source.h"
#include "platform/platform.h"
#include "snapshot/snapshots.h"

namespace stagefarm::engine {

using dockerfile::ExpandedStep;
using dockerfile::Instruction;
using nlohmann::json;

// A step's working directory joined with a possibly relative path.
std::string JoinWorkdir(const std::string& workdir, const std::string& path);

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
    // Every stage's result, by index; StageResult waits for one not set
    // yet (a stage starts before those it needs have finished).
    std::map<int, std::shared_future<absl::StatusOr<ImageState>>>* stages;
    std::atomic<int>* run;
    std::atomic<int>* cached;
    // The build has RUN steps with a network of their own: a step that
    // misses the cache has the executor set up for them.
    bool sandboxed_runs = false;
  };

  StageRunner(Shared shared, int index)
      : s_(std::move(shared)),
        e_(s_.engine),
        index_(index),
        stage_(s_.plan->stages[index]),
        name_(stage_.DisplayName()) {}

  ~StageRunner() { ReleaseClaim(); }
  StageRunner(const StageRunner&) = delete;
  StageRunner& operator=(const StageRunner&) = delete;

  absl::StatusOr<ImageState> Run();

 private:
  json& Cfg() { return state_.config["config"]; }

  // An event of the current step.
  BuildEvent Event(BuildEvent::Kind kind, std::string text,
                   double seconds) const;
  void Emit(BuildEvent::Kind kind, std::string text, double seconds);
  // A step's started, cached or done event: with its line, key and the
  // key's parts (from the last KeyOf), and its layer's size.
  void EmitStep(BuildEvent::Kind kind, std::string text, double seconds,
                const std::string& key, int64_t layer_bytes);
  // The key `kb` makes; remembers its parts for the step's events.
  std::string KeyOf(const cachekey::CacheKeyBuilder& kb);

  std::string Display(const ExpandedStep& step) const;

  std::string At(const Instruction& inst) const;

  absl::Status ResolveBase();

  void TakeOnbuildTriggers();

  void AddHistory(const std::string& created_by, bool empty_layer);

  // The key of the next step: the previous key plus this step's fields.
  cachekey::CacheKeyBuilder KeyBuilder(const ExpandedStep& step);

  absl::Status RunStep(const ExpandedStep& step);
  // One per instruction type, chosen by std::visit in RunStep. RUN, COPY/ADD
  // and WORKDIR change files (step_run.cc, step_copy.cc); the others change
  // only the image config (step_metadata.cc).
  absl::Status Step(const ExpandedStep& step, const dockerfile::RunInst& run) {
    return RunRun(step, run);
  }
  absl::Status Step(const ExpandedStep& step,
                    const dockerfile::CopyInst& copy) {
    return RunCopy(step, copy);
  }
  absl::Status Step(const ExpandedStep& step, const dockerfile::WorkdirInst&) {
    return RunWorkdir(step);
  }
  absl::Status Step(const ExpandedStep& step, const dockerfile::FromInst&);
  absl::Status Step(const ExpandedStep& step, const dockerfile::ArgInst&);
  // Every other instruction changes only the image config
  // (engine/image_config.h), applied in step_metadata.cc.
  template <typename Inst>
  absl::Status Step(const ExpandedStep& step, const Inst&) {
    return Metadata(step);
  }
  absl::Status Metadata(const ExpandedStep& step);

  std::vector<std::string> ShellArgs(const std::string& cmd);

  // --- cache ---

  struct StepResult {
    bool empty = true;
    image::Descriptor layer;
    std::string diff_id;
  };

  absl::StatusOr<std::optional<StepResult>> LookupCache(const std::string& key);

  absl::Status StoreCache(const std::string& key, const StepResult& r);

  void ApplyResult(const StepResult& r, const std::string& history);

  // --- executing steps ---

  // A writable root file system for one step.
  struct Rootfs {
    std::unique_ptr<snapshot::OverlayMount> mount;
    std::string upper, work, dir;
    std::vector<std::string> lowers;  // bottom to top, as mounted
    std::string path() const { return mount->path(); }
  };

  absl::StatusOr<Rootfs> MountRootfs();

  // Unmounts, turns the upper dir into a layer, uploads it, commits the
  // snapshot, records the cache entry and the history.
  absl::Status Finish(Rootfs rootfs, const std::string& key,
                      const std::string& history, double started);

  static double Seconds();

  // Returns true (and applies the cached result) on a hit.
  // A file-changing step's start: on a cache hit its result is applied
  // and nullopt returned; else the step is announced and its start time
  // returned.
  absl::StatusOr<std::optional<double>> Begin(const std::string& key,
                                              const std::string& history,
                                              const std::string& display);
  absl::StatusOr<bool> TryCache(const std::string& key,
                                const std::string& history,
                                const std::string& display);
  // Refuses a step that may add a layer to a stage that has as many as an
  // image may have (Docker's "max depth exceeded"), before it runs.
  absl::Status CheckRoomForLayer() const;

  std::string Workdir();

  absl::Status RunWorkdir(const ExpandedStep& step);

  // The paths a RUN's mounts would create in the rootfs, and which of them
  // (with their parents) did not exist before, so they can be removed.
  std::vector<std::string> MissingStubs(const std::string& root,
                                        const std::vector<std::string>& dests);

  void RemoveStubs(const std::string& upper,
                   const std::vector<std::string>& stubs);

  absl::StatusOr<std::string> StageKey(const std::string& from);

  // An image named in FROM or --from: as the request resolved it (a farm
  // client resolves names against its own index), else from the ImageStore.
  absl::StatusOr<image::ResolvedImage> ResolveImage(const std::string& name);

  // Waits for an earlier stage of this build.
  absl::StatusOr<ImageState> StageResult(int idx);

  int StageIndex(const std::string& from);

  // A read-only view of a stage's or image's files.
  struct View {
    std::unique_ptr<snapshot::OverlayMount> mount;
    std::string dir;
    std::string path;
  };
  absl::StatusOr<View> ViewOf(const std::string& from);

  // RUN's parts (step_run.cc). The mounts of one RUN and what they hold
  // until the process ends: views of other stages, cache locks, scratch
  // directories.
  struct RunMounts {
    std::vector<executor::ExecMount> mounts;
    std::vector<std::string> dests;  // mount points runc may create
    std::vector<View> views;
    std::vector<std::unique_ptr<snapshot::OverlayMount>> overlays;
    std::vector<std::unique_ptr<FileLock>> locks;
    std::vector<std::string> scratch_dirs;
    // Cache mounts shared beyond this machine: id and local directory.
    std::vector<std::pair<std::string, std::string>> shared_caches;
    std::vector<std::unique_ptr<CacheMountSync::Hold>> holds;
    int ssh_agents = 0;            // type=ssh mounts so far
    std::vector<std::string> env;  // for the process only (SSH_AUTH_SOCK)
    void Release() {
      holds.clear();
      overlays.clear();
      views.clear();
      locks.clear();
      for (const std::string& d : scratch_dirs) (void)RemoveAll(d);
      scratch_dirs.clear();
    }
  };
  std::vector<std::string> RunArgs(const ExpandedStep& step,
                                   const dockerfile::RunInst& run);
  absl::StatusOr<std::string> RunKey(const ExpandedStep& step,
                                     const dockerfile::RunInst& run,
                                     const std::vector<std::string>& args,
                                     const std::vector<std::string>& env,
                                     const std::string& user,
                                     const std::string& workdir);
  absl::Status CacheMount(const dockerfile::Mount& m, executor::ExecMount* em,
                          RunMounts* out);
  absl::Status WritableCopy(const Instruction& inst, executor::ExecMount* em,
                            RunMounts* out);
  absl::Status AddMounts(const Instruction& inst,
                         const dockerfile::RunInst& run,
                         const std::string& workdir, RunMounts* out);
  absl::Status RunRun(const ExpandedStep& step, const dockerfile::RunInst& run);
  absl::StatusOr<executor::Network> RunNetwork(const Instruction& inst,
                                               const dockerfile::RunInst& run);

  // After a RUN: when its live output was clipped, stores the whole output
  // and says where it is (a note event carrying the blob); returns the note
  // ("" when nothing was clipped).
  std::string KeepFullLog(StepLog* log);

  static bool IsUrl(const std::string& s);

  // Downloads `url` into `dir` (as Docker names it, mode 0600, mtime from
  // Last-Modified); checks `checksum` when given. Returns the body digest.
  absl::StatusOr<std::string> Download(const Instruction& inst,
                                       const std::string& url,
                                       const std::string& dir,
                                       const std::string& checksum);

  // COPY and ADD's parts (step_copy.cc). The sources of one COPY/ADD as
  // they are prepared: the words, then names in the scratch directory for
  // URLs and heredocs.
  struct CopySources {
    std::vector<std::string> sources;
    std::vector<std::string> urls;  // as written, when the sources are URLs
    int url_count = 0;
    std::optional<gitsource::GitRef> git;  // ADD of a git repository
    std::string commit;                    // the one its ref names
    CopySource src;
    std::string scratch_dir;  // downloads or heredoc bodies; removed after
  };
  absl::StatusOr<int> CheckCopySources(const Instruction& inst,
                                       const dockerfile::CopyInst& copy,
                                       const std::vector<std::string>& sources);
  absl::Status PrepareUrls(const Instruction& inst,
                           const dockerfile::CopyInst& copy,
                           cachekey::CacheKeyBuilder* kb, CopySources* in);
  absl::Status PrepareGit(const Instruction& inst,
                          const dockerfile::CopyInst& copy,
                          cachekey::CacheKeyBuilder* kb, CopySources* in);
  absl::Status PrepareHeredocs(const ExpandedStep& step,
                               cachekey::CacheKeyBuilder* kb, CopySources* in);
  absl::Status PrepareSources(const ExpandedStep& step,
                              const dockerfile::CopyInst& copy,
                              cachekey::CacheKeyBuilder* kb, CopySources* in);
  absl::Status RunCopy(const ExpandedStep& step,
                       const dockerfile::CopyInst& copy);

  Shared s_;
  BuildEngine* e_;
  int index_;
  const dockerfile::Stage& stage_;
  std::string name_;
  // The key of the step this runner runs now (BuildEngine::TryClaim), ""
  // when none: released once its result is in the cache or it failed.
  std::string claimed_;
  void ReleaseClaim();
  // What the stage builds for (ResolveBase): its FROM --platform, its base
  // stage's, or the request's target platform.
  platform::Platform platform_;
  ImageState state_;
  bool cmd_set_ = false;
  bool downloaded_ = false;
  std::vector<std::string> onbuild_pending_;
  std::unique_ptr<dockerfile::Plan> triggered_plan_;
  int step_no_ = 0;
  int line_ = 0;  // the current step's Dockerfile line
  int steps_ = 0;
  std::vector<cachekey::KeyPart> key_parts_;  // of the current step's key
};

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_STAGE_RUNNER_H_
