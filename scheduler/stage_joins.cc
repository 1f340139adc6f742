// Identical stages in flight run once: a stage queued while another build's
// stage of the same key (same instance, same stage key: the stage cache's
// key, stagecache/stage_cache.h) is queued or leased waits for that one
// instead of being queued (StageState::waiting_for names the build). When
// the run succeeds each waiting stage completes from its result as a stage
// cache hit does (a target only has its image left to make); when the run
// ends without one (its build failed or was cancelled) the first waiting
// stage is queued to run itself and the others wait for it.
//
// The index holds the stages of running builds that are queued or leased,
// no others: an entry goes when its stage is done or its build stops
// running (NotRunning), so it is bounded by the stages in flight. It is
// not kept in --state: after a restart it holds the stages queued again,
// not those whose leases were given back, and stages that waited are
// queued normally; an identical stage may then run twice (as before this
// index). Part of SchedulerService (scheduler_service.h), under its lock.
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

std::string SchedulerService::StageJoinKey(const BuildState& b,
                                           const StageState& st) {
  // Builds that must run their stages themselves (no cache, a
  // reproducibility rebuild), REAPI actions (joined by running_actions_)
  // and a target found in the stage cache (only its image is left to
  // make) run alone.
  if (st.key.empty() || st.cached || b.spec.no_cache() ||
      !b.verify_of.empty() || b.spec.has_action()) {
    return "";
  }
  return absl::StrCat(b.spec.instance_name().size(), ":",
                      b.spec.instance_name(), st.key);
}

const StageState* SchedulerService::StageInFlight(const StageRun& run) {
  auto bit = builds_.find(run.build);
  if (bit == builds_.end() || bit->second->finished) return nullptr;
  auto st = bit->second->stages.find(run.stage);
  if (st == bit->second->stages.end() ||
      (st->second.status != StageStatus::kQueued &&
       st->second.status != StageStatus::kLeased)) {
    return nullptr;
  }
  return &st->second;
}

bool SchedulerService::JoinStage(const std::shared_ptr<BuildState>& b,
                                 int index) {
  StageState& st = b->stages[index];
  if (!st.waiting_for.empty()) return true;
  std::string key = StageJoinKey(*b, st);
  if (key.empty()) return false;
  auto [it, added] = stage_runs_.try_emplace(key);
  StageRun& run = it->second;
  if (!added && !(run.build == b->id && run.stage == index)) {
    if (const StageState* other = StageInFlight(run); other != nullptr) {
      run.waiters.emplace_back(b->id, index);
      st.status = StageStatus::kWaiting;
      st.lease.clear();
      st.waiting_for = run.build;
      ++stages_joined_;
      Event(b.get(), "waiting", st.display,
            absl::StrCat(
                "waiting for build ", run.build, "'s stage ", other->display,
                " (the same stage, already ",
                other->status == StageStatus::kLeased ? "running" : "queued",
                "): it runs once for both"),
            "");
      return true;
    }
    // Its run is over (a stale entry): this stage runs in its place; the
    // stages that waited for it were queued or completed already.
    run.waiters.clear();
  }
  run.build = b->id;
  run.stage = index;
  return false;
}

std::vector<std::pair<std::shared_ptr<BuildState>, int>>
SchedulerService::TakeWaiters(const BuildState& b, int index) {
  std::vector<std::pair<std::shared_ptr<BuildState>, int>> out;
  auto st = b.stages.find(index);
  if (st == b.stages.end()) return out;
  auto it = stage_runs_.find(StageJoinKey(b, st->second));
  if (it == stage_runs_.end() || it->second.build != b.id ||
      it->second.stage != index) {
    return out;
  }
  std::vector<std::pair<std::string, int>> waiters =
      std::move(it->second.waiters);
  stage_runs_.erase(it);
  for (const auto& [build, stage] : waiters) {
    auto wit = builds_.find(build);
    if (wit == builds_.end() || wit->second->finished) continue;
    auto sit = wit->second->stages.find(stage);
    if (sit == wit->second->stages.end() || sit->second.waiting_for != b.id ||
        sit->second.status != StageStatus::kWaiting) {
      continue;
    }
    sit->second.waiting_for.clear();
    out.emplace_back(wit->second, stage);
  }
  return out;
}

void SchedulerService::StageRan(BuildState* b, int index) {
  const StageState& st = b->stages[index];
  for (const auto& [w, stage] : TakeWaiters(*b, index)) {
    StageState& ws = w->stages[stage];
    ws.result = st.result;
    if (stage == w->target) {
      // As a target found in the stage cache: its image is left to make.
      ws.cached = true;
      ws.depends_on.clear();
      Event(w.get(), "stage-cached", ws.display,
            absl::StrCat("run by build ", b->id,
                         " (the same stage); only the image is left to make"),
            "");
      Enqueue(w, stage);
    } else {
      ws.status = StageStatus::kDone;
      ws.worker = st.worker;  // holds its layers: placement of what follows
      Event(w.get(), "stage-done", ws.display,
            absl::StrCat("run by build ", b->id, " on ", st.worker,
                         " (the same stage; no worker)"),
            "");
      QueueReady(w);
    }
    SaveOrLog(w.get());
  }
}

void SchedulerService::ReleaseStageRuns(BuildState* b) {
  std::vector<int> indexes;
  for (const auto& [index, st] : b->stages) indexes.push_back(index);
  for (int index : indexes) {
    for (const auto& [w, stage] : TakeWaiters(*b, index)) {
      Event(w.get(), "retry", w->stages[stage].display,
            absl::StrCat("build ", b->id,
                         " ended without this stage's result; it runs here"),
            "");
      // The first waiting stage runs; the others wait for it.
      Enqueue(w, stage);
      SaveOrLog(w.get());
    }
  }
}

}  // namespace stagefarm::scheduler
