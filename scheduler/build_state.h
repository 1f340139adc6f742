// What the scheduler knows of a build: its stages and where each is, its
// events and its result; and the record (v1::StoredBuild) it is kept as in
// --state, both ways. Not thread-safe: the scheduler guards these with its
// lock.
#ifndef STAGEFARM_SCHEDULER_BUILD_STATE_H_
#define STAGEFARM_SCHEDULER_BUILD_STATE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::scheduler {

enum class StageStatus { kWaiting, kQueued, kLeased, kDone };

struct StageState {
  StageStatus status = StageStatus::kWaiting;
  std::vector<int> depends_on;
  int base_stage = -1;  // FROM <stage>
  // FROM <image>: the image as expanded ("" for a stage or scratch). Not in
  // the --state record: after a restart its stages have no base affinity.
  std::string base_image;
  std::string display;
  std::string worker;  // who ran it (when done)
  std::chrono::steady_clock::time_point queued_at;
  int attempts = 0;
  std::string lease;
  std::string result;    // image state JSON when done
  std::string key;       // stage key (stagecache/stage_cache.h)
  bool cached = false;   // result from the stage cache (target: assemble)
  std::string platform;  // what it builds for ("linux/arm64"), normalized
  // A reproducibility rebuild's stage: the worker that ran it the first
  // time, which must not run it again.
  std::string avoid_worker;
  // Worker processes that died while they held the stage, each "worker W:
  // process died while running step N (...)"; the build fails at the
  // scheduler's max_worker_deaths.
  std::vector<std::string> worker_deaths;
  // Waiting (kWaiting, its dependencies done) for the identical stage of
  // this build, in flight (scheduler/stage_joins.cc); not in the record.
  std::string waiting_for;
};

// About what an event holds in memory: its encoded size and the message's
// own footprint. What the scheduler's bounds on events count.
size_t EventBytes(const v1::Event& e);

struct BuildState {
  std::string id;
  v1::BuildSpec spec;
  std::string created;
  int target = -1;
  std::map<int, StageState> stages;  // needed stages only
  std::vector<v1::Event> events;
  bool finished = false;
  int code = 0;
  std::string error;
  v1::BuildUpdate result;
  int steps_run = 0;
  int steps_cached = 0;
  double submitted = 0, finished_at = 0;
  size_t events_saved = 0;
  // EventBytes of `events`, and of log output not kept: past the
  // scheduler's bound on a build's events (SchedulerOptions).
  size_t event_bytes = 0;
  int64_t log_bytes_dropped = 0;
  // event_bytes when it joined the finished builds kept.
  size_t kept_bytes = 0;
  bool had_secrets = false;  // restored: its secrets are gone
  std::string tenant;        // who submitted it (with tenants)
  // spec.verify_reproducible: the rebuild (on the build it checks) and the
  // build checked (on the rebuild).
  std::string rebuild_id, verify_of;
  // Wakes this build's streams (new events, finished); a stream does not
  // wake for other builds' progress.
  absl::CondVar cv;

  void AddEvent(v1::Event e) {
    event_bytes += EventBytes(e);
    events.push_back(std::move(e));
  }
  // A worker's event from a report whose first event went in at index
  // `report_start`: a log chunk continues the chunk before it when that
  // came in the same report from the same stage, step and worker (up to
  // kMergedLogBytes of text), so a step that prints line by line is held
  // as a few events, not one a line. Chunks of earlier reports are never
  // touched: streams may have sent them.
  static constexpr size_t kMergedLogBytes = size_t{64} << 10;
  void AddReported(v1::Event e, size_t report_start);
};

struct LeaseState {
  std::string build;
  int stage = -1;
  std::string worker;
  std::chrono::steady_clock::time_point deadline;
  // The worker process holding it (LeaseRequest.incarnation; "" from a
  // worker that does not attend), the step it said it started last, and
  // when its Attend stream ended (a process that does not come back by
  // the death grace died).
  std::string incarnation;
  int step = 0;
  std::string instruction;
  std::optional<std::chrono::steady_clock::time_point> orphaned_since;
};

// The worker a ready stage should go to: of the stages it needs (its base
// and those it copies from) that a worker ran, the one whose image has the
// most layer bytes (its base on a tie), since a worker without it unpacks
// all of them from the CAS first; "" when no worker ran any.
std::string PreferredWorker(const BuildState& b, const StageState& st);

// What identifies a stage's base image for placement (BaseAffinity): the
// instance, the platform and the image as written; "" when its base is a
// stage or scratch.
std::string BaseImageKey(const BuildState& b, const StageState& st);

// The bytes of the layers of an image state (a stage's result: JSON with
// "layers", OCI descriptors); 0 when it is not one.
int64_t ImageStateLayerBytes(const std::string& image_state_json);

// The record of `b` without its events (their count only) and without
// secrets, which are never written down (had_secrets says there were
// some). A leased stage's worker is `lease_worker(lease id)`.
v1::StoredBuild ToRecord(
    const BuildState& b,
    const std::function<std::string(const std::string& lease)>& lease_worker);

// A build back from its record and its events (all of them saved). A
// stage's status out of range is clamped into it.
std::shared_ptr<BuildState> FromRecord(const v1::StoredBuild& stored,
                                       std::vector<v1::Event> events);

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_BUILD_STATE_H_
