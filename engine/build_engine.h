// The build engine: runs a planned Dockerfile's stages on this machine.
//
// Each needed stage runs on its own thread as soon as the stages it depends
// on are done, so independent stages run at the same time. A stage starts
// from its base (an image from the ImageStore, an earlier stage, or
// scratch) and runs its steps in order. Steps that change files (RUN, COPY,
// ADD, WORKDIR) have a cache key (docs/ARCHITECTURE.md, "Step cache keys");
// a key found in the action cache reuses that step's layer without running
// anything. Otherwise the step runs on an overlayfs of the stage's layers
// with a fresh upper directory, which then becomes the step's OCI layer (or
// no layer when nothing changed) and a snapshot for the next step.
// Metadata steps (ENV, CMD, LABEL, ...) only change the image config.
//
// The action-cache entry of a step is a REAPI ActionResult whose output
// files are "step.json" (the result) and "layer" (the layer blob), so the
// CAS's completeness checks drop it when the layer is evicted.
//
// Thread-safe: one engine can run several builds at once.
#ifndef STAGEFARM_ENGINE_BUILD_ENGINE_H_
#define STAGEFARM_ENGINE_BUILD_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "archives/layer_tar.h"
#include "blobstore/action_cache.h"
#include "blobstore/blob_store.h"
#include "cachekey/cache_key.h"
#include "engine/cache_sync.h"
#include "engine/step_log.h"
#include "executor/executor.h"
#include "frontend/dockerfile/plan.h"
#include "image/image_store.h"
#include "snapshot/snapshots.h"

namespace stagefarm::engine {

struct BuildRequest {
  std::string dockerfile;       // the text
  std::string dockerfile_name;  // for messages: "Dockerfile"
  std::string context_dir;      // host directory
  // Text of the .dockerignore that applies ("" for none).
  std::string dockerignore;
  dockerfile::PlanOptions plan_options;
  bool no_cache = false;
  std::map<std::string, std::string> secrets;  // id -> host file
  // RUN --mount=type=ssh agents: id -> the agent's socket on this host.
  // Never part of a cache key, never sent to a farm.
  std::map<std::string, std::string> ssh;
  std::optional<int64_t> source_date_epoch;
  archives::Compression compression = archives::Compression::kGzip;
  int compression_level = 0;  // 0: the default for the compression
  std::vector<std::string> tags;
  std::map<std::string, std::string> labels;  // --label
  // Images named in FROM or --from that the caller already resolved (a farm
  // client resolves names in its own index): name as written -> manifest.
  // Other names are looked up in the engine's ImageStore.
  std::map<std::string, Digest> images;
  // The build's time for history entries and the config (RFC 3339), the
  // same on every worker of one build; "" = now, or the epoch when set.
  std::string created;
  // Bytes of each RUN step's output streamed live (0: the engine's
  // EngineOptions::log_limits).
  int64_t log_max_bytes = 0;
  // Entitlements the build is given (frontend/dockerfile/entitlements.h).
  std::set<std::string> entitlements;
};

struct BuildEvent {
  // kNote: where a farm runs the stage (text says so), retries.
  enum class Kind {
    kStepStarted,
    kStepCached,
    kStepDone,
    kLog,
    kStepFailed,
    // The step stopped before it finished: the build was cancelled, or a
    // stage it needs failed (that stage's step is the one that failed).
    kStepCancelled,
    kNote
  };
  Kind kind = Kind::kLog;
  std::string stage;  // display name
  int step = 0;       // 1-based within the stage
  int steps = 0;
  std::string text;  // the instruction, or a log chunk (bytes, as printed)
  double seconds = 0;
  // kNote after a step whose live output was clipped: the whole output.
  std::optional<Digest> full_log;
  // kStepStarted and kStepCached: the instruction's Dockerfile line, the
  // step's cache key and its parts (what a view compares to tell why a
  // step missed the cache).
  int line = 0;
  std::string key;
  std::vector<cachekey::KeyPart> key_parts;
  // kStepDone and kStepCached: the size of the layer the step made (0: it
  // changed no file); -1 unknown.
  int64_t layer_bytes = -1;
};

// A finished stage or image: its config document and layers.
struct ImageState {
  nlohmann::json config;
  std::vector<image::Descriptor> layers;
  std::vector<std::string> diff_ids;
  std::string key;  // cache key of its last step (or of the base)
};

// An ImageState as JSON ({"config", "layers", "diff_ids", "key"}), as it
// travels between farm workers, and back.
std::string ImageStateJson(const ImageState& state);
absl::StatusOr<ImageState> ParseImageState(absl::string_view text);

// One stage's result, run on its own (RunStage).
struct StageOutcome {
  ImageState state;
  int steps_run = 0;
  int steps_cached = 0;
};

struct BuildResult {
  ImageState image;
  image::Descriptor manifest;
  int steps_run = 0;
  int steps_cached = 0;
  // A farm build's provenance, as its scheduler made (and signed) it: a
  // DSSE envelope's JSON; "" for a local build or when none was asked.
  std::string provenance;
  // Set when the build was built again without cache and gave the same
  // image (--verify-reproducible): the rebuild's manifest, hex.
  std::string reproduced;
};

struct EngineOptions {
  std::string ns;            // BlobStore namespace for everything
  std::string cache_mounts;  // host directory for RUN --mount=type=cache
  // Where each cache mount's id is written, in a file named as its
  // directory under cache_mounts (for `stagefarm cache ls`); "" none.
  std::string cache_mount_ids;
  // Shares the cache mounts beyond this machine (a farm worker's); null:
  // they stay here.
  CacheMountSync* cache_sync = nullptr;
  bool force_no_network = false;
  // RUN --network=host may run (with the build's network.host
  // entitlement); a farm worker permits it only when its operator says so.
  bool permit_host_network = false;
  int64_t memory_bytes = 0;
  int64_t pids_limit = 0;
  // What a RUN step streams live, and how much of its output is kept.
  LogLimits log_limits;
};

class BuildEngine {
 public:
  BuildEngine(BlobStore* blobs, ActionCacheStorage* ac,
              image::ImageStore* images, snapshot::Snapshotter* snapshots,
              executor::Executor* executor, EngineOptions options);

  // Runs the build. INVALID_ARGUMENT with file:line for Dockerfile errors;
  // a failed RUN is FAILED_PRECONDITION naming the instruction, its line,
  // the exit code and the last output lines. Tags (request.tags) are set
  // only when every stage succeeded.
  absl::StatusOr<BuildResult> Build(
      const BuildRequest& request,
      const std::function<void(const BuildEvent&)>& on_event,
      const std::atomic<bool>* cancel);

  // Runs one stage of the request's Dockerfile, given the results of the
  // stages it depends on (FROM, --from, RUN --mount=from), by stage index:
  // how a farm worker runs its share of a build. INVALID_ARGUMENT when a
  // needed result is missing.
  absl::StatusOr<StageOutcome> RunStage(
      const BuildRequest& request, int index,
      const std::map<int, ImageState>& dependencies,
      const std::function<void(const BuildEvent&)>& on_event,
      const std::atomic<bool>* cancel);

  // Makes the image of a finished target stage: layers taken uncompressed
  // from other stages compressed as asked, labels, created and
  // rootfs.diff_ids set, config and manifest stored, tags written.
  absl::StatusOr<BuildResult> Assemble(const BuildRequest& request,
                                       ImageState target);

  // Writes the files of an image's layers into `dest` (created if missing).
  absl::Status ExportRootfs(const ImageState& image, const std::string& dest);

  ActionCache* action_cache() { return &action_cache_; }

 private:
  friend class StageRunner;
  // The layer `tar` (uncompressed, as intermediate stages store them)
  // compressed as the request asks, through the action cache so that each
  // layer is compressed once.
  absl::StatusOr<image::Descriptor> CompressedLayer(
      const image::Descriptor& tar, const std::string& diff_id,
      const BuildRequest& request);

  // Steps running now, by cache key: a step whose key another build or
  // stage is running waits for it and takes its result from the cache
  // (two platforms' builds share a $BUILDPLATFORM stage this way).
  // TryClaim: true when the caller now runs `key`; false after waiting for
  // another holder (look the cache up again). Release ends a claim.
  bool TryClaim(const std::string& key, const std::atomic<bool>* cancel);
  void Release(const std::string& key);
  absl::Mutex inflight_mu_;
  absl::CondVar inflight_cv_;
  std::set<std::string> inflight_ ABSL_GUARDED_BY(inflight_mu_);

  BlobStore* blobs_;
  ActionCacheStorage* ac_storage_;
  ActionCache action_cache_;
  image::ImageStore* images_;
  snapshot::Snapshotter* snapshots_;
  executor::Executor* executor_;
  EngineOptions options_;
};

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_BUILD_ENGINE_H_
