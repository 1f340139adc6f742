// The scheduler's views of its builds and workers: the list (ListBuilds,
// Summaries, paged by submission time), one build (WatchBuild, GetBuild,
// Record), cancelling, the change count the web view's event stream waits
// on, and the workers as the web view shows them. Part of SchedulerService
// (scheduler_service.h).
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "buildview/build_view.h"
#include "common/grpc_status.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

grpc::Status SchedulerService::ListBuildsBody(
    grpc::ServerContext* context, const v1::ListBuildsRequest* request,
    v1::ListBuildsResponse* response) {
  absl::StatusOr<const Tenant*> caller = Caller(context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (request->limit() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "ListBuildsRequest.limit must not be negative");
  }
  buildview::BuildFilter filter;
  filter.state = request->state();
  size_t total = 0;
  for (v1::BuildSummary& sum : Summaries(
           *caller, filter, 0, static_cast<size_t>(request->limit()), &total)) {
    *response->add_builds() = std::move(sum);
  }
  return grpc::Status::OK;
}

void SchedulerService::AddBuild(std::shared_ptr<BuildState> b) {
  by_time_.emplace(b->submitted, b->id);
  if (!b->finished) {
    running_.insert(b.get());
    std::string key = ActionJoinKey(b->spec);
    if (!key.empty()) running_actions_[key].push_back(b.get());
  }
  builds_[b->id] = std::move(b);
}

void SchedulerService::NotRunning(BuildState* b) {
  ReleaseStageRuns(b);
  if (running_.erase(b) == 0) return;
  std::string key = ActionJoinKey(b->spec);
  if (key.empty()) return;
  auto it = running_actions_.find(key);
  if (it == running_actions_.end()) return;
  std::vector<BuildState*>& same = it->second;
  same.erase(std::remove(same.begin(), same.end(), b), same.end());
  if (same.empty()) running_actions_.erase(it);
}

void SchedulerService::EraseBuild(const std::string& id) {
  auto it = builds_.find(id);
  if (it == builds_.end()) return;
  NotRunning(it->second.get());
  by_time_.erase({it->second->submitted, id});
  builds_.erase(it);
}

std::vector<v1::BuildSummary> SchedulerService::Summaries(
    const Tenant* caller, const buildview::BuildFilter& filter, size_t offset,
    size_t limit, size_t* total) {
  std::vector<v1::BuildSummary> out;
  *total = 0;
  absl::MutexLock lock(&mu_);
  // Newest first; only what the page shows is copied out.
  for (auto t = by_time_.rbegin(); t != by_time_.rend(); ++t) {
    auto it = builds_.find(t->second);
    if (it == builds_.end()) continue;
    const BuildState* b = it->second.get();
    if (!Sees(caller, *b)) continue;
    const std::string state = buildview::StateName(b->finished, b->code);
    if (!filter.SubmittedInRange(b->submitted)) continue;
    if (!filter.Matches(state, {b->id, b->spec.dockerfile_name(), b->tenant,
                                b->spec.target(), b->spec.target_platform(),
                                b->spec.instance_name(), b->error,
                                absl::StrJoin(b->spec.tags(), " ")})) {
      continue;
    }
    const size_t index = (*total)++;
    if (index < offset || (limit > 0 && index >= offset + limit)) continue;
    v1::BuildSummary* sum = &out.emplace_back();
    sum->set_build_id(b->id);
    sum->set_state(state);
    sum->set_dockerfile_name(b->spec.dockerfile_name());
    sum->set_instance_name(b->spec.instance_name());
    sum->set_submitted(b->submitted);
    sum->set_finished(b->finished_at);
    sum->set_stages(static_cast<int32_t>(b->stages.size()));
    int done = 0;
    for (const auto& [i, st] : b->stages) {
      if (st.status == StageStatus::kDone) ++done;
    }
    sum->set_stages_done(done);
    sum->set_platform(b->spec.target_platform());
    sum->set_tenant(b->tenant);
    sum->set_steps_run(b->steps_run);
    sum->set_steps_cached(b->steps_cached);
    sum->set_target(b->spec.target());
    *sum->mutable_tags() = b->spec.tags();
    if (!b->finished) {
      for (const auto& [i, st] : b->stages) {
        if (st.status == StageStatus::kQueued && !st.platform.empty() &&
            !LiveWorkerRuns(st.platform, /*native_only=*/false, "")) {
          sum->set_waiting_for(
              absl::StrCat("a worker that runs ", st.platform));
          break;
        }
      }
    }
    sum->set_error(b->error);
    if (b->result.has_manifest()) {
      *sum->mutable_manifest() = b->result.manifest();
    }
  }
  return out;
}

grpc::Status SchedulerService::WatchBuildBody(
    grpc::ServerContext* context, const v1::WatchBuildRequest* request,
    grpc::ServerWriter<v1::BuildUpdate>* writer) {
  absl::StatusOr<const Tenant*> caller = Caller(context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  std::shared_ptr<BuildState> b;
  {
    absl::MutexLock lock(&mu_);
    auto it = builds_.find(request->build_id());
    // Another tenant's build is not there for this caller.
    if (it != builds_.end() && Sees(*caller, *it->second)) b = it->second;
  }
  if (b == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no build " + request->build_id() +
                            absl::StrCat(" (it may be older than the last ",
                                         options_.keep_finished, ")"));
  }
  return Stream(context, b, writer, /*owner=*/false);
}

grpc::Status SchedulerService::CancelBuildBody(
    grpc::ServerContext* context, const v1::CancelBuildRequest* request,
    v1::CancelBuildResponse* /*response*/) {
  absl::StatusOr<const Tenant*> caller = Caller(context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return ToGrpcStatus(
      Cancel(*caller, request->build_id(), "cancelled (stagefarm cancel)"));
}

absl::Status SchedulerService::Cancel(const Tenant* caller,
                                      const std::string& build_id,
                                      const std::string& why) {
  absl::MutexLock lock(&mu_);
  auto it = builds_.find(build_id);
  if (it == builds_.end() || !Sees(caller, *it->second)) {
    return absl::NotFoundError("no build " + build_id);
  }
  if (it->second->finished) {
    return absl::FailedPreconditionError("build " + build_id + " has finished");
  }
  Finish(it->second.get(), static_cast<int>(grpc::StatusCode::CANCELLED), why);
  return absl::OkStatus();
}

grpc::Status SchedulerService::GetBuildBody(grpc::ServerContext* context,
                                            const v1::GetBuildRequest* request,
                                            v1::BuildRecord* response) {
  absl::StatusOr<const Tenant*> caller = Caller(context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  absl::StatusOr<v1::BuildRecord> record = Record(*caller, request->build_id());
  if (!record.ok()) return ToGrpcStatus(record.status());
  *response = std::move(*record);
  return grpc::Status::OK;
}

absl::StatusOr<v1::BuildRecord> SchedulerService::Record(
    const Tenant* caller, const std::string& build_id) {
  absl::MutexLock lock(&mu_);
  auto it = builds_.find(build_id);
  if (it == builds_.end() || !Sees(caller, *it->second)) {
    return absl::NotFoundError(absl::StrCat("no build ", build_id,
                                            " (it may be older than the last ",
                                            options_.keep_finished, ")"));
  }
  const BuildState& b = *it->second;
  v1::BuildRecord record;
  *record.mutable_build() = RecordOf(b);
  for (const v1::Event& e : b.events) *record.add_events() = e;
  return record;
}

uint64_t SchedulerService::ChangeCount() {
  absl::MutexLock lock(&mu_);
  return changes_;
}

void SchedulerService::WaitForChange(uint64_t seen, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (changes_ <= seen && !stopping_ &&
         !changes_cv_.WaitWithDeadline(&mu_, deadline)) {
  }
}

nlohmann::json SchedulerService::WorkersJson(const Tenant* caller) {
  absl::MutexLock lock(&mu_);
  const auto now = std::chrono::steady_clock::now();
  const double hour_ago = UnixNow() - 3600;
  std::map<std::string, nlohmann::json> running;  // worker -> [{build, stage}]
  std::map<std::string, int> busy;
  for (const auto& [id, lease] : leases_) {
    ++busy[lease.worker];
    auto bit = builds_.find(lease.build);
    if (bit == builds_.end() || !Sees(caller, *bit->second)) continue;
    auto st = bit->second->stages.find(lease.stage);
    running[lease.worker].push_back(
        {{"build", lease.build},
         {"stage", st == bit->second->stages.end() ? "" : st->second.display}});
  }
  nlohmann::json out = nlohmann::json::array();
  for (auto& [name, wp] : worker_platforms_) {
    while (!wp.failures.empty() && wp.failures.front() < hour_ago) {
      wp.failures.pop_front();
    }
    auto seen = worker_seen_.find(name);
    const bool live = seen != worker_seen_.end() &&
                      now - seen->second <= options_.lease_timeout;
    nlohmann::json platforms = nlohmann::json::array();
    for (const std::string& p : wp.native) platforms.push_back(p);
    for (const std::string& p : wp.emulated) {
      platforms.push_back(absl::StrCat(p, " (emulated)"));
    }
    out.push_back({{"name", name},
                   {"live", live},
                   {"slots", wp.slots},
                   {"busy", busy[name]},
                   {"platforms", std::move(platforms)},
                   {"running", running.count(name) ? running[name]
                                                   : nlohmann::json::array()},
                   {"failures", wp.failures.size()},
                   {"disk_bytes", wp.layer_cache_bytes},
                   {"last_seen", wp.last_seen}});
  }
  return out;
}

absl::StatusOr<const Tenant*> SchedulerService::CallerByToken(
    absl::string_view token) const {
  if (options_.tenants == nullptr) return nullptr;
  return options_.tenants->ByToken(token);
}

}  // namespace stagefarm::scheduler
