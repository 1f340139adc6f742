// Worker presence: each worker process holds an Attend stream open for its
// life. When every stream of a process has ended and it has not come back
// within the death grace, the process died while it held its leases (the
// kernel closed its connection); its stages are taken back at once, and a
// stage that killed max_worker_deaths processes fails its build instead of
// being offered to another worker. A network cut leaves the stream open on
// this side, so the lease timeout still decides there (a retry, as
// before): a cut is no sign against the stage.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

std::string SchedulerService::WhileRunning(int step,
                                           const std::string& instruction) {
  if (step <= 0) return "before its first step";
  return absl::StrCat("while running step ", step,
                      instruction.empty() ? "" : " (", instruction,
                      instruction.empty() ? "" : ")");
}

grpc::Status SchedulerService::AttendBody(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AttendResponse, v1::WorkerPresence>* stream) {
  if (absl::Status s = CheckWorkerCaller(context, "attend"); !s.ok()) {
    return ToGrpcStatus(s);
  }
  v1::WorkerPresence hello;
  if (!stream->Read(&hello)) return grpc::Status::OK;
  if (hello.worker().empty() || hello.incarnation().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first WorkerPresence names no worker or "
                        "incarnation");
  }
  const std::string& incarnation = hello.incarnation();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status::OK;
    attend_contexts_.insert(context);
    ++attending_[incarnation];
    // Back in time (a broken connection, not a death): its leases stand.
    for (auto& [id, lease] : leases_) {
      if (lease.incarnation == incarnation) lease.orphaned_since.reset();
    }
    // A restarted worker names the stages its previous process held.
    for (const v1::HeldStage& lost : hello.lost()) {
      auto it = leases_.find(lost.lease_id());
      if (it == leases_.end() || it->second.worker != hello.worker() ||
          it->second.incarnation == incarnation) {
        continue;
      }
      LostWithWorker(lost.lease_id(),
                     absl::StrCat("process ended ",
                                  WhileRunning(lost.step(), lost.instruction()),
                                  " (told by the worker restarted)"));
    }
  }
  stream->Write(v1::AttendResponse());
  v1::WorkerPresence message;
  while (stream->Read(&message)) {
    if (!message.has_step()) continue;
    absl::MutexLock lock(&mu_);
    auto it = leases_.find(message.step().lease_id());
    if (it != leases_.end() && it->second.incarnation == incarnation) {
      it->second.step = message.step().step();
      it->second.instruction = message.step().instruction();
    }
  }
  absl::MutexLock lock(&mu_);
  attend_contexts_.erase(context);
  if (--attending_[incarnation] <= 0) {
    attending_.erase(incarnation);
    if (!stopping_) Orphan(incarnation);
  }
  return grpc::Status::OK;
}

void SchedulerService::Orphan(const std::string& incarnation) {
  auto now = std::chrono::steady_clock::now();
  for (auto& [id, lease] : leases_) {
    if (lease.incarnation != incarnation || lease.orphaned_since) continue;
    lease.orphaned_since = now;
    LogInfo("worker-gone", {{"worker", lease.worker},
                            {"incarnation", incarnation},
                            {"lease", id},
                            {"build", lease.build}});
  }
  reaper_cv_.SignalAll();
}

void SchedulerService::ReapOrphans(std::chrono::steady_clock::time_point now) {
  std::vector<std::pair<std::string, std::string>> lost;
  for (const auto& [id, lease] : leases_) {
    if (lease.orphaned_since &&
        now - *lease.orphaned_since >= options_.worker_death_grace) {
      lost.emplace_back(
          id, absl::StrCat("process died ",
                           WhileRunning(lease.step, lease.instruction)));
    }
  }
  for (const auto& [id, how] : lost) LostWithWorker(id, how);
  if (!lost.empty()) work_cv_.SignalAll();
}

void SchedulerService::LostWithWorker(const std::string& lease_id,
                                      const std::string& how) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  const LeaseState lease = it->second;
  leases_.erase(it);
  ++worker_deaths_;
  worker_platforms_[lease.worker].failures.push_back(UnixNow());
  auto bit = builds_.find(lease.build);
  if (bit == builds_.end() || bit->second->finished) return;
  BuildState* b = bit->second.get();
  StageState& st = b->stages[lease.stage];
  if (st.status != StageStatus::kLeased || st.lease != lease_id) return;
  std::string death = absl::StrCat("worker ", lease.worker, ": ", how);
  st.worker_deaths.push_back(death);
  const int deaths = static_cast<int>(st.worker_deaths.size());
  LogError("worker-died", {{"build", b->id},
                           {"stage", st.display},
                           {"worker", lease.worker},
                           {"deaths", std::to_string(deaths)},
                           {"detail", how}});
  if (deaths >= options_.max_worker_deaths) {
    std::string why = absl::StrCat(
        "stage ", st.display, " killed ", deaths, " workers (",
        absl::StrJoin(st.worker_deaths, "; "), "); not offered to ",
        deaths == 2 ? "a third" : "another worker");
    if (lease.step > 0) {
      // The step it was at, for views of the build (its failure).
      v1::Event e;
      e.set_kind("failed");
      e.set_stage(st.display);
      e.set_step(lease.step);
      // Steps in the stage, as the worker's events said.
      for (auto it = b->events.rbegin(); it != b->events.rend(); ++it) {
        if (it->kind() == "started" && it->stage() == st.display &&
            it->steps() > 0) {
          e.set_steps(it->steps());
          break;
        }
      }
      e.set_text(why);
      e.set_worker(lease.worker);
      e.set_unix_time(UnixNow());
      b->AddEvent(std::move(e));
    }
    Finish(b, static_cast<int>(grpc::StatusCode::INTERNAL), why);
    return;
  }
  if (st.attempts >= options_.max_attempts) {
    Finish(b, static_cast<int>(grpc::StatusCode::UNAVAILABLE),
           absl::StrCat("stage ", st.display, " was lost by ", st.attempts,
                        " workers; the last, ", death));
    return;
  }
  Event(b, "retry", st.display,
        absl::StrCat(death,
                     "; the stage runs again on another worker (a "
                     "stage that kills ",
                     options_.max_worker_deaths, " workers fails its build)"),
        lease.worker);
  Enqueue(bit->second, lease.stage);
  SaveOrLog(b);
}

}  // namespace stagefarm::scheduler
