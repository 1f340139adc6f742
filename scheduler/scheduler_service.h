// The farm's scheduler: accepts builds from clients, plans them, hands their
// stages to workers as soon as the stages they need are done (independent
// stages go to different workers at the same time), relays progress to the
// client, and finishes the build when the worker that ran the target stage
// has made the image.
//
// Placement: a worker asking for work gets, first, a queued stage built on
// a stage it ran itself (its layers are already unpacked there), else the
// oldest queued stage; a stage whose base ran elsewhere is kept for that
// worker for up to 200 ms after it was queued.
// Workers pull work (Lease, long-polled) and report progress and results
// (Report). A lease is kept alive by reports; one not heard of within the
// lease timeout is taken back and its stage queued again, up to three
// attempts, after which the build fails naming the stage. A client that
// goes away cancels its build; workers learn it from their next report.
// Each worker process also holds an Attend stream for its life: when it
// ends and the process does not come back at once, the process died (a
// network cut leaves the stream hanging: the lease timeout decides), and
// its stages are taken back without waiting for the lease timeout; a stage
// that killed two worker processes fails its build instead of being
// offered to a third (poison).
//
// With a state directory every change to a build (its stages, leases and
// events) is written to the scheduler's own RocksDB before anyone hears of
// it; a restarted scheduler loads the builds, gives running stages their
// leases back (the workers holding them go on reporting), queues the rest,
// and clients reattach with WatchBuild. Without one, state is in memory
// and a restart forgets every build.
#ifndef STAGEFARM_SCHEDULER_SCHEDULER_SERVICE_H_
#define STAGEFARM_SCHEDULER_SCHEDULER_SERVICE_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "attest/signing.h"
#include "buildview/build_view.h"
#include "common/cas_client.h"
#include "common/tenants.h"
#include "google/longrunning/operations.pb.h"
#include "nlohmann/json.hpp"
#include "scheduler/build_state.h"
#include "scheduler/image_index.h"
#include "scheduler/ssh_relay.h"
#include "scheduler/stage_queue.h"
#include "scheduler/state_store.h"
#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::scheduler {

struct SchedulerOptions {
  std::chrono::milliseconds lease_timeout{10000};
  std::chrono::milliseconds heartbeat{1000};
  int max_attempts = 3;
  // A worker process that held a stage and died (its Attend stream ended
  // and it did not come back within worker_death_grace) loses the stage at
  // once; at the max_worker_deaths'th death the stage has killed, the build
  // fails naming them rather than offering the stage to another worker.
  std::chrono::milliseconds worker_death_grace{1000};
  int max_worker_deaths = 2;
  // Finished builds kept (listed, watchable, in the web view) besides the
  // running ones; older ones are forgotten, also in --state.
  size_t keep_finished = 200;
  // Bounds on the events held in memory (scheduler/build_state.h's
  // EventBytes): a build's own, past which its log output is dropped
  // (each step's whole output is still kept as a blob when it passed
  // log_max_bytes); and the finished builds' together, past which the
  // oldest are forgotten before keep_finished says so.
  size_t build_event_bytes = size_t{64} << 20;
  size_t keep_event_bytes = size_t{1} << 30;
  // Where builds and the queue are kept (a RocksDB); empty: in memory.
  std::string state_dir;
  // The farm's CAS as clients reach it (told to clients by GetFarm).
  std::string cas_address;
  // When set (--tenants): callers must be known; a tenant submits builds
  // only on its instances and sees only its own builds and images; only
  // worker tenants lease stages and report.
  std::shared_ptr<const Tenants> tenants;
  // Each step's live output: bytes and bytes per second (a build may ask
  // for less, never more); the rest is kept whole as a blob.
  int64_t log_max_bytes = int64_t{2} << 20;
  int64_t log_rate_bytes = int64_t{1} << 20;
  // Signs builds' provenance (--signing-key); null: provenance unsigned.
  std::shared_ptr<const attest::Key> signing_key;
  // Who builds, as provenance names it (runDetails.builder.id).
  std::string builder_id = "stagefarm-scheduler://localhost";
  std::string version = "0.1.0";
  // REAPI actions without a container-image platform property run in this
  // image of the farm's index (--action-image); "": they must name one.
  std::string action_image;
};

class SchedulerService final : public v1::Scheduler::Service {
 public:
  // Opens (and loads) the state directory when one is set.
  static absl::StatusOr<std::unique_ptr<SchedulerService>> Create(
      SchedulerOptions options);
  explicit SchedulerService(SchedulerOptions options = {});
  ~SchedulerService() override;

  // Ends every stream: with a state directory builds go on after a restart
  // (clients reattach); without one they fail as the scheduler shuts down.
  void Stop();
  // How many builds are loaded / running (for logs and tests).
  size_t BuildCount();
  size_t RunningCount();

  // What the scheduler's metrics report (scheduler/scheduler_main.cc).
  struct Stats {
    size_t queued = 0;   // stages ready, waiting for a worker
    size_t waiting = 0;  // stages waiting for the stages they need
    size_t leased = 0;   // stages running on workers
    size_t running_builds = 0, succeeded_builds = 0, failed_builds = 0;
    // Bytes of events held (build_state.h's EventBytes) by running and by
    // finished builds.
    size_t running_event_bytes = 0, finished_event_bytes = 0;
    size_t workers = 0;       // asked for work in the last minute
    size_t busy_workers = 0;  // holding at least one lease
    int64_t builds_submitted = 0, dispatches = 0, lease_expiries = 0;
    // Stages lost with a worker process that died while it held them.
    int64_t worker_deaths = 0;
    int64_t stage_cache_hits = 0, stage_cache_misses = 0;
    int64_t disk_full_errors = 0;  // state writes refused: disk full
    // REAPI actions: queued, answered from the action cache, joined to an
    // identical one in flight.
    int64_t actions_queued = 0, action_cache_hits = 0, actions_joined = 0;
    // Dockerfile stages that waited for another build's identical stage
    // in flight instead of running (stage_joins.cc).
    int64_t stages_joined = 0;
    // Stages dispatched by (platform, "native" or "emulated").
    std::map<std::pair<std::string, std::string>, int64_t>
        dispatches_by_platform;
  };
  Stats GetStats();

  // REAPI actions (actions.cc), for the Execution service
  // (execution_service.h): each becomes a build of one stage, queued,
  // leased, retried, kept and listed as Dockerfile builds are.
  struct ActionStart {
    std::shared_ptr<BuildState> build;  // to follow (null when cached)
    std::optional<reapi::ExecuteResponse> cached;  // an action-cache hit
  };
  // Checks the caller and the request, answers from the action cache
  // unless told to skip it, joins an identical action in flight (unless
  // it skips the cache or may not be cached), or queues the action.
  absl::StatusOr<ActionStart> StartAction(grpc::ServerContext* context,
                                          const reapi::ExecuteRequest& request);
  // The action an operation name names; NOT_FOUND when the scheduler does
  // not know it (any more) or the caller may not see it.
  absl::StatusOr<std::shared_ptr<BuildState>> FindAction(
      grpc::ServerContext* context, const std::string& operation);
  // Writes the action's Operation when it starts, when a worker takes it,
  // every 10 s while it waits or runs, and when it is done. OK once done
  // was written; the caller going away leaves the action running (a client
  // comes back with WaitExecution).
  grpc::Status FollowAction(
      grpc::ServerContext* context, const std::shared_ptr<BuildState>& b,
      const std::function<bool(const google::longrunning::Operation&)>& write);
  // The action's Operation as it is now (google.longrunning.Operations).
  absl::StatusOr<google::longrunning::Operation> GetOperation(
      grpc::ServerContext* context, const std::string& operation);
  // Cancels the action (its worker stops it at its next report); every
  // client following it hears CANCELLED.
  absl::Status CancelOperation(grpc::ServerContext* context,
                               const std::string& operation);
  static constexpr char kOperationPrefix[] = "operations/";

  grpc::Status Build(grpc::ServerContext* context,
                     const v1::SubmitBuildRequest* request,
                     grpc::ServerWriter<v1::BuildUpdate>* writer) override;
  grpc::Status Lease(grpc::ServerContext* context,
                     const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override;
  grpc::Status Report(grpc::ServerContext* context,
                      const v1::StageReport* request,
                      v1::StageReportResponse* response) override;
  // worker_presence.cc
  grpc::Status Attend(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AttendResponse, v1::WorkerPresence>* stream)
      override;
  // cache_locks.cc
  grpc::Status LockCache(grpc::ServerContext* context,
                         const v1::LockCacheRequest* request,
                         v1::LockCacheResponse* response) override;
  // ssh_service.cc
  grpc::Status SshAgent(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream) override;
  grpc::Status ServeSsh(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream) override;
  grpc::Status ListBuilds(grpc::ServerContext* context,
                          const v1::ListBuildsRequest* request,
                          v1::ListBuildsResponse* response) override;
  grpc::Status WatchBuild(grpc::ServerContext* context,
                          const v1::WatchBuildRequest* request,
                          grpc::ServerWriter<v1::BuildUpdate>* writer) override;
  grpc::Status CancelBuild(grpc::ServerContext* context,
                           const v1::CancelBuildRequest* request,
                           v1::CancelBuildResponse* response) override;
  grpc::Status GetBuild(grpc::ServerContext* context,
                        const v1::GetBuildRequest* request,
                        v1::BuildRecord* response) override;
  grpc::Status GetFarm(grpc::ServerContext* context,
                       const v1::GetFarmRequest* request,
                       v1::FarmInfo* response) override;

  // Views of the farm (the RPCs above and the web view) for a caller
  // already identified; null when tenants are off. A tenant sees its own
  // builds only (workers see all).
  // Running builds and the last finished ones, newest first: those that
  // match `filter`, from the `offset`th, at most `limit` (0: all); *total
  // says how many match. Only the page's summaries are made.
  std::vector<v1::BuildSummary> Summaries(const Tenant* caller,
                                          const buildview::BuildFilter& filter,
                                          size_t offset, size_t limit,
                                          size_t* total);
  // NOT_FOUND for a build the caller cannot see or the scheduler forgot.
  absl::StatusOr<v1::BuildRecord> Record(const Tenant* caller,
                                         const std::string& build_id);
  // FAILED_PRECONDITION when it has finished.
  absl::Status Cancel(const Tenant* caller, const std::string& build_id,
                      const std::string& why);
  // How many changes the views would show have happened, and a wait for
  // the next after `seen` (or `deadline`).
  uint64_t ChangeCount();
  void WaitForChange(uint64_t seen, absl::Time deadline);
  // The workers for the web view (webui/farm_source.h): a tenant sees
  // what they run only of its own builds.
  nlohmann::json WorkersJson(const Tenant* caller);
  // The identified caller for the web view (common/tenants.h); null when
  // tenants are off.
  absl::StatusOr<const Tenant*> CallerByToken(absl::string_view token) const;
  grpc::Status ListImages(grpc::ServerContext* context,
                          const v1::ListImagesRequest* request,
                          v1::ListImagesResponse* response) override;
  grpc::Status SetImage(grpc::ServerContext* context,
                        const v1::SetImageRequest* request,
                        v1::SetImageResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context,
                           const v1::RemoveImageRequest* request,
                           v1::RemoveImageResponse* response) override;

 private:
  // The handlers' bodies; the overrides above (rpc_boundary.cc) run them
  // inside ContainRpc, so an exception on a request's content answers
  // INTERNAL with its text instead of aborting or gRPC's bare UNKNOWN.
  grpc::Status BuildBody(grpc::ServerContext* context,
                         const v1::SubmitBuildRequest* request,
                         grpc::ServerWriter<v1::BuildUpdate>* writer);
  grpc::Status LeaseBody(grpc::ServerContext* context,
                         const v1::LeaseRequest* request,
                         v1::LeaseResponse* response);
  grpc::Status ReportBody(grpc::ServerContext* context,
                          const v1::StageReport* request,
                          v1::StageReportResponse* response);
  grpc::Status AttendBody(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AttendResponse, v1::WorkerPresence>* stream);
  grpc::Status LockCacheBody(grpc::ServerContext* context,
                             const v1::LockCacheRequest* request,
                             v1::LockCacheResponse* response);
  grpc::Status SshAgentBody(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream);
  grpc::Status ServeSshBody(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SshFrame, v1::SshFrame>* stream);
  grpc::Status ListBuildsBody(grpc::ServerContext* context,
                              const v1::ListBuildsRequest* request,
                              v1::ListBuildsResponse* response);
  grpc::Status WatchBuildBody(grpc::ServerContext* context,
                              const v1::WatchBuildRequest* request,
                              grpc::ServerWriter<v1::BuildUpdate>* writer);
  grpc::Status CancelBuildBody(grpc::ServerContext* context,
                               const v1::CancelBuildRequest* request,
                               v1::CancelBuildResponse* response);
  grpc::Status GetBuildBody(grpc::ServerContext* context,
                            const v1::GetBuildRequest* request,
                            v1::BuildRecord* response);
  grpc::Status GetFarmBody(grpc::ServerContext* context,
                           const v1::GetFarmRequest* request,
                           v1::FarmInfo* response);
  grpc::Status ListImagesBody(grpc::ServerContext* context,
                              const v1::ListImagesRequest* request,
                              v1::ListImagesResponse* response);
  grpc::Status SetImageBody(grpc::ServerContext* context,
                            const v1::SetImageRequest* request,
                            v1::SetImageResponse* response);
  grpc::Status RemoveImageBody(grpc::ServerContext* context,
                               const v1::RemoveImageRequest* request,
                               v1::RemoveImageResponse* response);
  // Worker presence (worker_presence.cc). An incarnation's Attend streams
  // all ended: its leases are orphaned, lost at the death grace unless it
  // comes back.
  void Orphan(const std::string& incarnation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A stage a worker process held is lost with the process: counted
  // against the stage, queued again or, at max_worker_deaths, the build
  // fails. `how`: "process died while running step 2 (RUN ...)".
  void LostWithWorker(const std::string& lease_id, const std::string& how)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // "while running step 2 (RUN ...)", or "before its first step".
  static std::string WhileRunning(int step, const std::string& instruction);
  // The reaper's part: orphaned leases past the grace are lost.
  void ReapOrphans(std::chrono::steady_clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The reaper's round (ExpireLeases), inside an exception boundary.
  void ReapOnce(std::chrono::steady_clock::time_point now,
                std::chrono::steady_clock::time_point* streams_checked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The calling tenant (null when tenants are off), or the refusal.
  absl::StatusOr<const Tenant*> Caller(grpc::ServerContext* context) const;
  absl::Status CheckInstanceCaller(grpc::ServerContext* context,
                                   const std::string& instance) const;
  absl::Status CheckWorkerCaller(grpc::ServerContext* context,
                                 const char* what) const;
  // Whether `caller` may see build `b` (always, with tenants off).
  static bool Sees(const Tenant* caller, const BuildState& b) {
    return caller == nullptr || caller->worker || caller->name == b.tenant;
  }
  // Loads --state: builds carry on where they were.
  absl::Status OpenState();
  // Writes the build and its new events (no-op without a state directory).
  absl::Status Save(BuildState* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteBuild(BuildState* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Before a write to --state: after a full disk, the store is opened again
  // once there is room and every build written whole (ReopenState); until
  // then writes are refused (RESOURCE_EXHAUSTED).
  absl::Status StateReady() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReopenState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasState() const { return state_ != nullptr; }
  void SaveOrLog(BuildState* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lists a finished build among those kept and forgets the oldest past
  // keep_finished or keep_event_bytes.
  void KeepFinished(BuildState* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Event(BuildState* b, const std::string& kind, const std::string& stage,
             const std::string& text, const std::string& worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueReady(const std::shared_ptr<BuildState>& b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The queued stage to give `worker`, taken off the queue: one built on a
  // stage it ran, else the oldest not held for another worker. Sets *held
  // when a stage waits for its base's worker (kPlacementGrace at most).
  std::optional<std::pair<BuildState*, int>> Pick(const std::string& worker,
                                                  bool* held)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How `worker` runs `platform` (from its last lease request).
  StageQueue::Fit Fit(const std::string& worker, const std::string& platform)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Workers seen within the lease timeout that run `platform`, natively
  // only or at all, other than `except`.
  bool LiveWorkerRuns(const std::string& platform, bool native_only,
                      const std::string& except)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // "w1 (linux/amd64; emulated linux/arm64), w2 (...)" for messages.
  std::string LiveWorkerPlatforms() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a ready stage, noting the worker it prefers (where its base
  // stage ran).
  void Enqueue(const std::shared_ptr<BuildState>& b, int index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(BuildState* b, int code, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An action build's Operation now.
  google::longrunning::Operation OperationOf(const BuildState& b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RESOURCE_EXHAUSTED when the caller already runs its max_builds.
  absl::Status Admit(const Tenant* caller) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A spec checked, planned and made into a build (not yet shared).
  absl::StatusOr<std::shared_ptr<BuildState>> NewBuild(
      const v1::BuildSpec& spec);
  // The target stage is done: the build checks its reproducibility first
  // (spec.verify_reproducible), then gets its provenance and finishes.
  // `reproduced`: the rebuild's manifest hex when it matched.
  void Succeeded(const std::shared_ptr<BuildState>& b,
                 const std::string& reproduced)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `b` again without cache, each stage away from the worker that
  // ran it, as a build of its own.
  void StartRebuild(const std::shared_ptr<BuildState>& b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A rebuild finished: the build it checks succeeds or fails by it.
  void Verified(BuildState* rebuild) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeases();
  // Sends a build's events as they come, then its result. The owner (the
  // submitting client) going away cancels the build; a watcher's does not.
  grpc::Status Stream(grpc::ServerContext* context,
                      std::shared_ptr<BuildState> b,
                      grpc::ServerWriter<v1::BuildUpdate>* writer, bool owner);
  static std::string RandomId();
  static double UnixNow();
  static constexpr size_t kUpdateBytes = size_t{1} << 20;

  // Looks up the needed stages in the stage cache and drops what need not
  // run: a cached stage is done; a cached target leaves only assembly.
  // Called before the build is shared (no lock held: CAS calls).
  void UseStageCache(BuildState* b);

  SchedulerOptions options_;
  std::optional<CasTarget> cas_;  // when options_.cas_address
  absl::Mutex mu_;
  // Wakes Lease calls waiting for work.
  absl::CondVar work_cv_;
  // Wakes the lease reaper (only to stop: it looks every 200 ms).
  absl::CondVar reaper_cv_;
  // The open streams (Stream) by their RPC's context, and the build each
  // watches. A stream waits for its build's events without a timer; the
  // reaper wakes the ones whose client went away, once a second, so N
  // waiting streams do not wake N times a second on mu_.
  std::map<grpc::ServerContext*, BuildState*> streams_ ABSL_GUARDED_BY(mu_);
  // A hash map (lookups on every lease and report stay flat with 100,000
  // builds kept) whose values stay put when others come and go: callers
  // hold references to them across AddBuild and Forget.
  absl::node_hash_map<std::string, std::shared_ptr<BuildState>> builds_
      ABSL_GUARDED_BY(mu_);
  StageQueue queue_ ABSL_GUARDED_BY(mu_);
  // Which worker last ran a stage from each base image (placement).
  BaseAffinity bases_ ABSL_GUARDED_BY(mu_);
  // Workers waiting for work now: how many of their calls wait.
  std::map<std::string, int> asking_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LeaseState> leases_ ABSL_GUARDED_BY(mu_);
  // Worker processes (incarnations) by how many Attend streams each has
  // open now; an incarnation that had one and has none is not here.
  std::map<std::string, int> attending_ ABSL_GUARDED_BY(mu_);
  // The open Attend calls, cancelled by Stop (a blocked read wakes).
  std::set<grpc::ServerContext*> attend_contexts_ ABSL_GUARDED_BY(mu_);
  int64_t worker_deaths_ ABSL_GUARDED_BY(mu_) = 0;
  SshRelay ssh_relay_;
  // sharing=locked caches: (instance, cache id) -> the lease holding it
  // (a lease no longer in leases_ holds nothing). Not kept in --state.
  std::map<std::pair<std::string, std::string>, std::string> cache_locks_
      ABSL_GUARDED_BY(mu_);
  absl::CondVar cache_lock_cv_;
  std::deque<std::string> finished_order_ ABSL_GUARDED_BY(mu_);
  // The kept_bytes of the builds in finished_order_.
  size_t finished_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The image index: instance -> name -> tag.
  ImageIndex images_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Counters and the last time each worker asked for work (for Stats).
  std::map<std::string, std::chrono::steady_clock::time_point> worker_seen_
      ABSL_GUARDED_BY(mu_);
  // What each worker runs and says of itself, from its last lease request,
  // and the stages it failed in the last hour (their times).
  struct WorkerPlatforms {
    std::set<std::string> native, emulated;
    int slots = 0;
    int64_t layer_cache_bytes = -1;
    double last_seen = 0;  // seconds since the epoch
    std::deque<double> failures;
  };
  std::map<std::string, WorkerPlatforms> worker_platforms_ ABSL_GUARDED_BY(mu_);
  // Stages dispatched, by "platform native|emulated".
  std::map<std::pair<std::string, std::string>, int64_t> dispatches_by_platform_
      ABSL_GUARDED_BY(mu_);
  int64_t builds_submitted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dispatches_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lease_expiries_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> stage_cache_hits_{0}, stage_cache_misses_{0};
  std::atomic<int64_t> actions_queued_{0}, action_cache_hits_{0},
      actions_joined_{0};
  // `b`'s record (build_state.h), its leased stages' workers filled in.
  v1::StoredBuild RecordOf(const BuildState& b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // builds_ and its index by submission time change together.
  void AddBuild(std::shared_ptr<BuildState> b)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseBuild(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The builds not finished, and among them the actions that another
  // submission of the same action may join, by ActionJoinKey: a submission
  // looks there, not through every kept build. AddBuild adds a build that
  // is not finished; Finish and EraseBuild take it out (NotRunning).
  absl::flat_hash_set<BuildState*> running_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<BuildState*>> running_actions_
      ABSL_GUARDED_BY(mu_);
  void NotRunning(BuildState* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Instance and action digest of a build that runs a cacheable action;
  // empty for any other build.
  static std::string ActionJoinKey(const v1::BuildSpec& spec);
  // Identical Dockerfile stages in flight (stage_joins.cc): by instance
  // and stage key, the stage of a running build queued or leased for it
  // and the stages of other builds waiting for its result.
  struct StageRun {
    std::string build;
    int stage = -1;
    std::vector<std::pair<std::string, int>> waiters;  // (build, stage)
  };
  absl::flat_hash_map<std::string, StageRun> stage_runs_ ABSL_GUARDED_BY(mu_);
  int64_t stages_joined_ ABSL_GUARDED_BY(mu_) = 0;
  // The index's key of a stage; "" for one that runs alone (no cache, a
  // rebuild, an action, a target found in the stage cache).
  static std::string StageJoinKey(const BuildState& b, const StageState& st);
  // The run's stage while it is queued or leased in a running build.
  const StageState* StageInFlight(const StageRun& run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Before a stage is queued: true when it now waits for an identical
  // stage in flight (not queued); else it is the index's run of its key.
  bool JoinStage(const std::shared_ptr<BuildState>& b, int index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the run of `b`'s stage `index` from the index and returns the
  // live stages that waited for it (their waiting_for cleared).
  std::vector<std::pair<std::shared_ptr<BuildState>, int>> TakeWaiters(
      const BuildState& b, int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The stage is done: the stages waiting for it complete from its result.
  void StageRan(BuildState* b, int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `b` stopped running: the stages waiting for its runs are queued.
  void ReleaseStageRuns(BuildState* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::set<std::pair<double, std::string>> by_time_ ABSL_GUARDED_BY(mu_);
  // Grows with every change the views show (events, submissions, ends);
  // changes_cv_ wakes the web view's event streams.
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar changes_cv_;
  void Changed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++changes_;
    changes_cv_.SignalAll();
  }
  std::unique_ptr<StateStore> state_;  // with --state
  std::thread reaper_;
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_SCHEDULER_SERVICE_H_
