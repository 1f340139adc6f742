// A build's life in the scheduler: made from a spec (NewBuild), its
// stages looked up in the stage cache (UseStageCache), and its end
// (Finish): a reproducibility rebuild first when asked (StartRebuild,
// Verified), then the provenance (Succeeded). Part of SchedulerService
// (scheduler_service.h); every function here runs under its lock but
// NewBuild and UseStageCache, which run before the build is shared.
#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "archives/compression.h"
#include "common/cas_client.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/entitlements.h"
#include "frontend/dockerfile/plan.h"
#include "platform/platform.h"
#include "scheduler/build_provenance.h"
#include "scheduler/scheduler_service.h"
#include "stagecache/stage_cache.h"

namespace stagefarm::scheduler {
namespace {

using stagecache::LookupStage;
using stagecache::StageHit;
using stagecache::StageKey;

}  // namespace

void SchedulerService::Finish(BuildState* b, int code,
                              const std::string& error) {
  if (b->finished) return;
  b->finished = true;
  NotRunning(b);
  b->code = code;
  b->error = error;
  b->finished_at = UnixNow();
  b->cv.SignalAll();
  Changed();
  Log(code == 0 ? "info" : "error", "build-finished",
      {{"build", b->id},
       {"tenant", b->tenant},
       {"code", std::to_string(code)},
       {"seconds", absl::StrFormat("%.2f", b->finished_at - b->submitted)},
       {"error", error}});
  if (b->log_bytes_dropped > 0) {
    Event(b, "note", "",
          absl::StrCat(b->log_bytes_dropped,
                       " bytes of this build's output were not kept by the "
                       "scheduler (its bound on a build's events)"),
          "");
  }
  KeepFinished(b);
  SaveOrLog(b);
  if (!b->verify_of.empty()) Verified(b);
  if (!b->rebuild_id.empty() && code != 0) {
    // The rebuild checks nothing any more.
    auto rebuild = builds_.find(b->rebuild_id);
    if (rebuild != builds_.end()) {
      Finish(rebuild->second.get(),
             static_cast<int>(grpc::StatusCode::CANCELLED),
             "the build it checks ended");
    }
  }
}

void SchedulerService::KeepFinished(BuildState* b) {
  // Finished builds stay listed (and watchable) until keep_finished newer
  // ones end, or their events together pass keep_event_bytes; the newest
  // stays whatever its size.
  b->kept_bytes = b->event_bytes;
  finished_bytes_ += b->kept_bytes;
  finished_order_.push_back(b->id);
  while (finished_order_.size() > options_.keep_finished ||
         (finished_bytes_ > options_.keep_event_bytes &&
          finished_order_.size() > 1)) {
    auto it = builds_.find(finished_order_.front());
    if (it != builds_.end()) finished_bytes_ -= it->second->kept_bytes;
    Forget(finished_order_.front());
    finished_order_.pop_front();
  }
}

void SchedulerService::Succeeded(const std::shared_ptr<BuildState>& b,
                                 const std::string& reproduced) {
  if (b->spec.verify_reproducible() && b->rebuild_id.empty()) {
    StartRebuild(b);
    return;
  }
  if (!b->spec.provenance().empty()) {
    ProvenanceSigner signer{options_.signing_key.get(), options_.builder_id,
                            options_.version};
    absl::StatusOr<std::string> envelope =
        MakeProvenance(*b, signer, reproduced, UnixNow());
    if (!envelope.ok()) {
      Finish(b.get(), static_cast<int>(envelope.status().code()),
             absl::StrCat("making the build's provenance: ",
                          envelope.status().message()));
      return;
    }
    b->result.set_provenance(*std::move(envelope));
  }
  Finish(b.get(), 0, "");
}

void SchedulerService::StartRebuild(const std::shared_ptr<BuildState>& b) {
  v1::BuildSpec spec = b->spec;
  spec.set_no_cache(true);
  spec.set_verify_reproducible(false);
  spec.clear_provenance();
  absl::StatusOr<std::shared_ptr<BuildState>> made = NewBuild(spec);
  if (!made.ok()) {
    Finish(b.get(), static_cast<int>(made.status().code()),
           absl::StrCat("starting the reproducibility rebuild: ",
                        made.status().message()));
    return;
  }
  std::shared_ptr<BuildState> rebuild = *std::move(made);
  rebuild->tenant = b->tenant;
  rebuild->verify_of = b->id;
  b->rebuild_id = rebuild->id;
  std::set<std::string> avoided;
  for (auto& [index, st] : rebuild->stages) {
    auto first = b->stages.find(index);
    if (first == b->stages.end()) continue;
    st.avoid_worker = first->second.worker;
    if (!st.avoid_worker.empty()) avoided.insert(st.avoid_worker);
  }
  AddBuild(rebuild);
  ++builds_submitted_;
  auto made_digest = Digest::FromProto(b->result.manifest());
  Event(b.get(), "verify", "",
        absl::StrCat(
            "built sha256:", made_digest.ok() ? made_digest->hash() : "?",
            "; building it again without cache, each stage on "
            "another worker than the first time (build ",
            rebuild->id, ")"),
        "");
  Event(rebuild.get(), "queued", "",
        absl::StrCat("build ", rebuild->id, ": rebuilds ", b->id,
                     " without cache, away from ",
                     avoided.empty() ? std::string("no worker")
                                     : absl::StrJoin(avoided, ", ")),
        "");
  QueueReady(rebuild);
  SaveOrLog(rebuild.get());
}

void SchedulerService::Verified(BuildState* rebuild) {
  auto it = builds_.find(rebuild->verify_of);
  if (it == builds_.end() || it->second->finished) return;
  std::shared_ptr<BuildState> b = it->second;
  if (rebuild->code != 0) {
    Finish(b.get(), rebuild->code,
           absl::StrCat("the rebuild that checks reproducibility (build ",
                        rebuild->id, ") failed: ", rebuild->error));
    return;
  }
  *b->result.mutable_rebuild_manifest() = rebuild->result.manifest();
  auto first = Digest::FromProto(b->result.manifest());
  auto second = Digest::FromProto(rebuild->result.manifest());
  if (!first.ok() || !second.ok()) {
    Finish(b.get(), static_cast<int>(grpc::StatusCode::INTERNAL),
           "the reproducibility rebuild reported no image");
    return;
  }
  if (*first == *second) {
    Event(b.get(), "verify", "",
          absl::StrCat("reproducible: the rebuild made the same image "
                       "sha256:",
                       second->hash()),
          "");
    Succeeded(b, second->hash());
  } else {
    Finish(
        b.get(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION),
        absl::StrCat("not reproducible: the build made sha256:", first->hash(),
                     ", the rebuild without cache on other workers sha256:",
                     second->hash()));
  }
}

absl::StatusOr<std::shared_ptr<BuildState>> SchedulerService::NewBuild(
    const v1::BuildSpec& spec) {
  auto invalid = [](absl::string_view m) {
    return absl::InvalidArgumentError(m);
  };
  if (spec.dockerfile().empty()) return invalid("spec.dockerfile: empty");
  if (!Digest::FromProto(spec.context()).ok()) {
    return invalid("spec.context: not a valid digest");
  }
  if (!archives::ParseCompression(spec.compression())) {
    return invalid("spec.compression: must be gzip, zstd or uncompressed");
  }
  if (!spec.provenance().empty() && spec.provenance() != "min" &&
      spec.provenance() != "max") {
    return invalid("spec.provenance: must be min, max or empty");
  }
  if (spec.verify_reproducible() && !spec.has_source_date_epoch()) {
    return invalid(
        "spec.verify_reproducible: needs source_date_epoch (a reproducible "
        "build sets its times from SOURCE_DATE_EPOCH)");
  }
  // Platforms normalized (empty: this machine's), so that keys and the
  // workers agree on them.
  std::string platforms[2];
  const std::string* asked[2] = {&spec.target_platform(),
                                 &spec.build_platform()};
  for (int i = 0; i < 2; ++i) {
    auto p = platform::Parse(asked[i]->empty() ? platform::Host().String()
                                               : *asked[i]);
    if (!p.ok()) {
      return invalid(absl::StrCat(
          i == 0 ? "spec.target_platform: " : "spec.build_platform: ",
          p.status().message()));
    }
    platforms[i] = p->String();
  }
  dockerfile::PlanOptions po;
  po.target = spec.target();
  po.target_platform = platforms[0];
  po.build_platform = platforms[1];
  for (const auto& [k, v] : spec.build_args()) po.build_args[k] = v;
  std::string name =
      spec.dockerfile_name().empty() ? "Dockerfile" : spec.dockerfile_name();
  ASSIGN_OR_RETURN(dockerfile::Plan plan,
                   dockerfile::PlanDockerfile(spec.dockerfile(), po, name));
  const std::set<std::string> entitlements(spec.entitlements().begin(),
                                           spec.entitlements().end());
  {
    absl::Status s = dockerfile::CheckEntitlementNames(entitlements);
    if (!s.ok())
      return invalid(absl::StrCat("spec.entitlements: ", s.message()));
  }
  RETURN_IF_ERROR(dockerfile::CheckEntitled(plan, entitlements, name));
  auto b = std::make_shared<BuildState>();
  b->id = RandomId();
  b->spec = spec;
  b->spec.set_target_platform(platforms[0]);
  b->spec.set_build_platform(platforms[1]);
  // The secrets' ids as the scheduler saw them (the provenance names them).
  b->spec.clear_secret_ids();
  for (const auto& [id, value] : spec.secrets()) b->spec.add_secret_ids(id);
  std::sort(b->spec.mutable_secret_ids()->begin(),
            b->spec.mutable_secret_ids()->end());
  auto bound = [](int64_t asked, int64_t most) {
    return asked > 0 && asked < most ? asked : most;
  };
  b->spec.set_log_max_bytes(
      bound(spec.log_max_bytes(), options_.log_max_bytes));
  b->spec.set_log_rate_bytes(
      bound(spec.log_rate_bytes(), options_.log_rate_bytes));
  b->created = Rfc3339(spec.has_source_date_epoch()
                           ? spec.source_date_epoch()
                           : static_cast<int64_t>(time(nullptr)));
  b->target = plan.target;
  b->submitted = UnixNow();
  for (const auto& st : plan.stages) {
    if (!st.needed) continue;
    StageState& s = b->stages[st.index];
    s.display = st.DisplayName();
    s.depends_on = st.depends_on;
    s.base_stage = st.base_stage;
    if (st.base_stage < 0 && st.base != "scratch") s.base_image = st.base;
    auto p = platform::Parse(dockerfile::StagePlatform(plan, st.index, po));
    if (!p.ok()) {
      return invalid(
          absl::StrCat(name, ":", st.line, ": ", p.status().message()));
    }
    s.platform = p->String();
  }
  return b;
}

void SchedulerService::UseStageCache(BuildState* b) {
  // Keys first: a stage's key needs the keys of the stages it depends on.
  std::function<const std::string&(int)> key =
      [&](int index) -> const std::string& {
    StageState& st = b->stages[index];
    if (st.key.empty()) {
      std::vector<std::string> deps;
      for (int d : st.depends_on) deps.push_back(key(d));
      st.key = StageKey(b->spec, index, index == b->target, deps);
    }
    return st.key;
  };
  for (auto& [index, st] : b->stages) key(index);
  if (!cas_ || b->spec.no_cache()) return;
  CasClient cas(*cas_, b->spec.instance_name());
  std::map<int, StageHit> hits;
  for (const auto& [index, st] : b->stages) {
    auto hit = LookupStage(&cas, st.key);
    if (!hit.ok()) {
      LogError("stage cache: " + hit.status().ToString(),
               {{"build", b->id}, {"stage", st.display}});
    } else if (hit->has_value()) {
      hits[index] = **hit;
    }
    ++(hit.ok() && hit->has_value() ? stage_cache_hits_ : stage_cache_misses_);
  }
  // From the target down: a stage found in the cache needs none of the
  // stages below it (its key covers theirs); only missed stages need what
  // they depend on.
  std::set<int> keep;
  std::function<void(int)> visit = [&](int index) {
    mu_.AssertHeld();
    if (!keep.insert(index).second) return;
    StageState& st = b->stages[index];
    auto hit = hits.find(index);
    if (hit == hits.end()) {
      for (int d : st.depends_on) visit(d);
      return;
    }
    st.cached = true;
    st.result = hit->second.state;
    if (index == b->target) {
      st.depends_on.clear();  // only the image is left to make
      Event(b, "stage-cached", st.display,
            "found in the cache; only the image is left to make", "");
    } else {
      st.status = StageStatus::kDone;
      Event(b, "stage-done", st.display, "from the cache (no worker)", "");
    }
  };
  {
    // The build is not shared yet; Event's contract is the lock.
    absl::MutexLock lock(&mu_);
    visit(b->target);
  }
  // Steps of every stage that will not run count as cached (as if each
  // had gone to a worker to find its steps cached).
  for (auto it = b->stages.begin(); it != b->stages.end();) {
    bool runs = keep.count(it->first) && !it->second.cached;
    auto hit = hits.find(it->first);
    if (!runs && hit != hits.end()) b->steps_cached += hit->second.steps;
    it = keep.count(it->first) ? std::next(it) : b->stages.erase(it);
  }
}

}  // namespace stagefarm::scheduler
