// A build seen from outside, after the fact or while it runs: its stages
// and steps with when, where and how each ran, made from the build's
// record (v1::StoredBuild, secrets already left out) and its events. The
// web view's API, `stagefarm build --trace` and `builds trace` read builds
// through it. Pure.
#ifndef STAGEFARM_BUILDVIEW_BUILD_VIEW_H_
#define STAGEFARM_BUILDVIEW_BUILD_VIEW_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::buildview {

struct StepView {
  int step = 0;  // 1-based within its stage
  std::string instruction;
  // "running", "done", "cached" or "failed".
  std::string state = "running";
  double start = 0;    // seconds since the epoch
  double end = 0;      // 0 while running
  double seconds = 0;  // as the worker measured it (done, failed)
  std::string worker;
  int64_t log_bytes = 0;  // streamed live
  // The step's whole output when its live part was clipped (hex digest
  // and size), "" otherwise.
  std::string full_log;
  std::string error;   // failed: why (the build's error for its step)
  int exit_code = -1;  // failed RUN: the process's exit code
  int line = 0;        // in the Dockerfile; 0 unknown
  // The size of the layer it made (0: none); -1 unknown.
  int64_t layer_bytes = -1;
  // Its cache key ("sha256:...", an action digest) and the key's parts
  // (name, fingerprint), when the worker reported them.
  std::string key;
  std::vector<std::pair<std::string, std::string>> key_parts;
  // A step that ran: why it missed the cache (ExplainMisses); the names of
  // the key's parts that changed.
  std::string miss;
  std::vector<std::string> miss_parts;
};

struct StageView {
  int index = 0;
  std::string name;
  std::vector<int> depends_on;
  // "waiting", "queued", "running", "done", "cached" (from the stage cache,
  // no worker) or "failed".
  std::string state = "waiting";
  std::string worker;
  std::string platform;
  int attempts = 0;
  double queued = 0, start = 0, end = 0;  // seconds since the epoch
  // The stage's track on its worker: stages a worker ran at the same time
  // get different lanes (its slots, as far as the events tell).
  int lane = 0;
  int steps_total = 0;
  std::vector<StepView> steps;
};

struct BuildView {
  std::string id;
  std::string tenant;
  std::string instance;
  std::string dockerfile_name;
  std::string target;
  std::string platform;
  // "running", "succeeded", "failed" or "cancelled"; actions are "action".
  std::string state = "running";
  std::string kind = "dockerfile";  // or "action"
  double submitted = 0, finished = 0;
  int code = 0;
  std::string error;
  std::string manifest;  // "sha256:..." of the image, "" without one
  int64_t manifest_size = 0;
  int steps_run = 0, steps_cached = 0;
  bool no_cache = false;
  std::vector<std::string> tags;  // as the client named the image
  std::vector<StageView> stages;
};

// The view of `build` after `events` (in the order they happened). A
// stage's times come from its events; an event's worker and time are as
// the scheduler recorded them.
BuildView MakeView(const v1::StoredBuild& build,
                   absl::Span<const v1::Event> events);

// Whether `earlier` is a build `later` should be compared with to tell why
// steps missed the cache: a Dockerfile build of the same tenant, instance,
// Dockerfile name, target and platform, submitted before it.
bool IsEarlierBuildOf(const v1::BuildSummary& earlier, const BuildView& later);

// Sets `miss` and `miss_parts` on each step of `view` that ran (or runs):
// which parts of its key differ from the same step (stage name, step
// number) in `earlier`, or that the key was the same (the entry was
// evicted, or the build asked for no cache), or that `earlier` had no such
// step. `earlier` null: no earlier build is known.
void ExplainMisses(const BuildView* earlier, BuildView* view);

// Which builds a list shows: `text` found (case-insensitive) in any of
// their fields given to Matches, `state` exactly (empty: any).
struct BuildFilter {
  std::string text;
  std::string state;
  // > 0: only builds submitted before it (seconds since the epoch).
  double submitted_before = 0;
  bool SubmittedInRange(double submitted) const {
    return submitted_before <= 0 || submitted < submitted_before;
  }
  bool Matches(absl::string_view build_state,
               std::initializer_list<absl::string_view> fields) const;
};

// "running", "succeeded", "failed" or "cancelled": a build's state by
// whether it finished and its code (google.rpc.Code).
std::string StateName(bool finished, int code);

// The view as the web API serves it (docs/web-api.md). Text is as the
// build wrote it: dump with error_handler_t::replace, which turns bytes
// that are not UTF-8 into U+FFFD.
nlohmann::json ToJson(const BuildView& view);

// The build's timeline as Chrome trace-event JSON (the "JSON Object
// Format": {"traceEvents": [...]}), which Perfetto and chrome://tracing
// open: one process per worker, one track (thread) per worker lane, a
// slice per stage and one per step inside it (a retried stage shows its
// last attempt).
nlohmann::json TraceEvents(const BuildView& view);

}  // namespace stagefarm::buildview

#endif  // STAGEFARM_BUILDVIEW_BUILD_VIEW_H_
