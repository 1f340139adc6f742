#include "scheduler/scheduler_service.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "archives/compression.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/plan.h"
#include "platform/platform.h"
#include "scheduler/build_provenance.h"

namespace stagefarm::scheduler {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

std::string SchedulerService::RandomId() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof(bytes));
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

double SchedulerService::UnixNow() { return UnixSeconds(); }

absl::StatusOr<std::unique_ptr<SchedulerService>> SchedulerService::Create(
    SchedulerOptions options) {
  auto service = std::make_unique<SchedulerService>(options);
  if (!options.state_dir.empty()) {
    absl::Status st = service->OpenState();
    if (!st.ok()) return st;
  }
  return service;
}

SchedulerService::SchedulerService(SchedulerOptions options)
    : options_(options) {
  if (!options_.cas_address.empty()) {
    cas_ = CasClient::Connect(options_.cas_address);
  }
  reaper_ = std::thread([this] { ExpireLeases(); });
}

SchedulerService::~SchedulerService() {
  Stop();
  reaper_.join();
}

void SchedulerService::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [id, b] : builds_) b->cv.SignalAll();
    changes_cv_.SignalAll();
    for (grpc::ServerContext* attend : attend_contexts_) attend->TryCancel();
  }
  work_cv_.SignalAll();
  reaper_cv_.SignalAll();
}

absl::StatusOr<const Tenant*> SchedulerService::Caller(
    grpc::ServerContext* context) const {
  if (options_.tenants == nullptr) return nullptr;
  return options_.tenants->Identify(*context);
}

absl::Status SchedulerService::CheckInstanceCaller(
    grpc::ServerContext* context, const std::string& instance) const {
  ASSIGN_OR_RETURN(const Tenant* caller, Caller(context));
  if (caller == nullptr) return absl::OkStatus();
  return Tenants::CheckInstance(*caller, instance);
}

absl::Status SchedulerService::CheckWorkerCaller(grpc::ServerContext* context,
                                                 const char* what) const {
  ASSIGN_OR_RETURN(const Tenant* caller, Caller(context));
  if (caller == nullptr) return absl::OkStatus();
  return Tenants::CheckWorker(*caller, what);
}

size_t SchedulerService::BuildCount() {
  absl::MutexLock lock(&mu_);
  return builds_.size();
}

size_t SchedulerService::RunningCount() {
  absl::MutexLock lock(&mu_);
  return running_.size();
}

SchedulerService::Stats SchedulerService::GetStats() {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.queued = queue_.size();
  s.finished_event_bytes = finished_bytes_;
  s.leased = leases_.size();
  for (const auto& [id, b] : builds_) {
    if (!b->finished) {
      ++s.running_builds;
      s.running_event_bytes += b->event_bytes;
      for (const auto& [i, st] : b->stages) {
        s.waiting += st.status == StageStatus::kWaiting ? 1 : 0;
      }
    } else if (b->code == 0) {
      ++s.succeeded_builds;
    } else {
      ++s.failed_builds;
    }
  }
  auto now = std::chrono::steady_clock::now();
  for (auto it = worker_seen_.begin(); it != worker_seen_.end();) {
    if (now - it->second > std::chrono::minutes(1)) {
      it = worker_seen_.erase(it);
    } else {
      ++it;
    }
  }
  s.workers = worker_seen_.size();
  std::set<std::string> busy;
  for (const auto& [id, l] : leases_) busy.insert(l.worker);
  s.busy_workers = busy.size();
  s.builds_submitted = builds_submitted_;
  s.dispatches = dispatches_;
  s.dispatches_by_platform = dispatches_by_platform_;
  s.lease_expiries = lease_expiries_;
  s.worker_deaths = worker_deaths_;
  s.stage_cache_hits = stage_cache_hits_.load();
  s.stage_cache_misses = stage_cache_misses_.load();
  s.actions_queued = actions_queued_.load();
  s.action_cache_hits = action_cache_hits_.load();
  s.actions_joined = actions_joined_.load();
  s.stages_joined = stages_joined_;
  s.disk_full_errors = state_ ? state_->disk_full_errors() : 0;
  return s;
}

void SchedulerService::Event(BuildState* b, const std::string& kind,
                             const std::string& stage, const std::string& text,
                             const std::string& worker) {
  v1::Event e;
  e.set_kind(kind);
  e.set_stage(stage);
  e.set_text(text);
  e.set_worker(worker);
  e.set_unix_time(UnixNow());
  b->AddEvent(std::move(e));
  b->cv.SignalAll();
  Changed();
  LogInfo(kind, {{"build", b->id},
                 {"tenant", b->tenant},
                 {"stage", stage},
                 {"worker", worker},
                 {"detail", text}});
}

void SchedulerService::QueueReady(const std::shared_ptr<BuildState>& b) {
  for (auto& [index, st] : b->stages) {
    // A stage waiting for an identical one in flight is done by it.
    if (st.status != StageStatus::kWaiting || !st.waiting_for.empty()) {
      continue;
    }
    bool ready = true;
    for (int dep : st.depends_on) {
      if (b->stages[dep].status != StageStatus::kDone) ready = false;
    }
    if (ready) Enqueue(b, index);
  }
}

void SchedulerService::Enqueue(const std::shared_ptr<BuildState>& b,
                               int index) {
  if (JoinStage(b, index)) return;
  StageState& st = b->stages[index];
  st.status = StageStatus::kQueued;
  st.queued_at = std::chrono::steady_clock::now();
  st.lease.clear();
  StageQueue::Entry entry{b->id,       index,           PreferredWorker(*b, st),
                          st.platform, st.avoid_worker, ""};
  if (entry.preferred.empty()) {
    entry.affinity = bases_.WorkerFor(BaseImageKey(*b, st));
  }
  // Never wait for a worker that may not take it.
  if (entry.affinity == entry.avoid) entry.affinity.clear();
  queue_.Push(std::move(entry));
  if (!st.avoid_worker.empty() &&
      !LiveWorkerRuns(st.platform, /*native_only=*/false, st.avoid_worker)) {
    // A rebuild's stage needs a second worker; say so where the client of
    // the checked build watches too.
    std::string text =
        absl::StrCat("waiting for a worker other than ", st.avoid_worker,
                     ": a reproducibility rebuild runs each stage elsewhere");
    Event(b.get(), "waiting", st.display, text, "");
    auto checked = builds_.find(b->verify_of);
    if (checked != builds_.end()) {
      Event(checked->second.get(), "waiting", st.display, text, "");
    }
  }
  if (!st.platform.empty() &&
      !LiveWorkerRuns(st.platform, /*native_only=*/false, "")) {
    // Said once a queueing; the stage waits for such a worker to come.
    Event(b.get(), "waiting", st.display,
          absl::StrCat(
              "waiting for a worker that runs ", st.platform,
              ": no live worker does (",
              worker_platforms_.empty() ? "no workers" : LiveWorkerPlatforms(),
              ")"),
          "");
  }
  work_cv_.SignalAll();
}

absl::Status SchedulerService::Admit(const Tenant* caller) {
  if (caller == nullptr || caller->max_builds <= 0) return absl::OkStatus();
  int running = 0;
  for (const BuildState* other : running_) {
    running += other->tenant == caller->name ? 1 : 0;
  }
  if (running < caller->max_builds) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("tenant ", caller->name, " has ", running,
                   " builds running, its limit (max_builds); submit again "
                   "when one has finished"));
}

grpc::Status SchedulerService::BuildBody(
    grpc::ServerContext* context, const v1::SubmitBuildRequest* request,
    grpc::ServerWriter<v1::BuildUpdate>* writer) {
  const v1::BuildSpec& spec = request->spec();
  absl::StatusOr<const Tenant*> caller = Caller(context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (*caller != nullptr) {
    absl::Status s = Tenants::CheckInstance(**caller, spec.instance_name());
    if (!s.ok()) return ToGrpcStatus(s);
  }
  absl::StatusOr<std::shared_ptr<BuildState>> made = NewBuild(spec);
  if (!made.ok()) return ToGrpcStatus(made.status());
  std::shared_ptr<BuildState> b = *std::move(made);
  if (*caller != nullptr) b->tenant = (*caller)->name;
  UseStageCache(b.get());
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Admit(*caller); !s.ok()) return ToGrpcStatus(s);
    AddBuild(b);
    ++builds_submitted_;
    LogInfo("build-submitted", {{"build", b->id},
                                {"tenant", b->tenant},
                                {"instance", spec.instance_name()},
                                {"stages", std::to_string(b->stages.size())}});
    int to_run = 0;
    for (const auto& [index, st] : b->stages) {
      to_run += st.status == StageStatus::kDone ? 0 : 1;
    }
    Event(b.get(), "queued", "",
          absl::StrCat("build ", b->id, ": ", to_run, " stages to run"), "");
    // The build's first event, before what the stage cache said.
    std::rotate(b->events.begin(), b->events.end() - 1, b->events.end());
    QueueReady(b);
    absl::Status saved = Save(b.get());
    if (!saved.ok()) {
      // Its queue entries are stale now (Pick drops finished builds' ones;
      // they hold the last reference).
      b->finished = true;
      EraseBuild(b->id);
      return ToGrpcStatus(saved);
    }
  }
  return Stream(context, b, writer, /*owner=*/true);
}

grpc::Status SchedulerService::Stream(
    grpc::ServerContext* context, std::shared_ptr<BuildState> b,
    grpc::ServerWriter<v1::BuildUpdate>* writer, bool owner) {
  size_t sent = 0;
  {
    absl::MutexLock lock(&mu_);
    streams_[context] = b.get();
  }
  // Unregistered on every return (after the inner lock is released).
  struct Unregister {
    SchedulerService* service;
    grpc::ServerContext* context;
    ~Unregister() {
      absl::MutexLock lock(&service->mu_);
      service->streams_.erase(context);
    }
  } unregister{this, context};
  while (true) {
    v1::BuildUpdate update;
    update.set_build_id(b->id);
    bool done = false;
    {
      absl::MutexLock lock(&mu_);
      // The reaper wakes a stream whose client went away (and Stop all of
      // them); the deadline is only a safety net.
      absl::Time until = absl::Now() + absl::Seconds(30);
      while (b->events.size() <= sent && !b->finished && !stopping_ &&
             !context->IsCancelled()) {
        if (b->cv.WaitWithDeadline(&mu_, until)) break;
      }
      if (stopping_ && !b->finished && HasState()) {
        // The build goes on when the scheduler is back; the client
        // reattaches.
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the scheduler is restarting");
      }
      if (context->IsCancelled()) {
        if (!owner) return grpc::Status::CANCELLED;
        Finish(b.get(), static_cast<int>(grpc::StatusCode::CANCELLED),
               "the client went away");
      }
      if (stopping_ && !b->finished) {
        Finish(b.get(), static_cast<int>(grpc::StatusCode::UNAVAILABLE),
               "the scheduler is shutting down");
      }
      // Updates stay far below the message bound (common/channel.h): a
      // long build's events go out in several.
      size_t bytes = 0;
      for (; sent < b->events.size() && bytes < kUpdateBytes; ++sent) {
        bytes += b->events[sent].ByteSizeLong();
        *update.add_events() = b->events[sent];
      }
      if (b->finished && sent == b->events.size()) {
        done = true;
        update.set_finished(true);
        update.set_code(b->code);
        update.set_error(b->error);
        if (b->result.has_manifest()) {
          *update.mutable_manifest() = b->result.manifest();
        }
        if (b->result.has_rebuild_manifest()) {
          *update.mutable_rebuild_manifest() = b->result.rebuild_manifest();
        }
        update.set_provenance(b->result.provenance());
        update.set_steps_run(b->steps_run);
        update.set_steps_cached(b->steps_cached);
      }
    }
    if (update.events_size() > 0 || done) {
      if (!writer->Write(update)) {
        if (owner) {
          absl::MutexLock lock(&mu_);
          // A scheduler shutting down with a state directory breaks the
          // stream itself; the build goes on after the restart.
          if (!(stopping_ && HasState())) {
            Finish(b.get(), static_cast<int>(grpc::StatusCode::CANCELLED),
                   "the client went away");
          }
        }
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
    }
    if (done) return grpc::Status::OK;
  }
}

grpc::Status SchedulerService::GetFarmBody(
    grpc::ServerContext* context, const v1::GetFarmRequest* /*request*/,
    v1::FarmInfo* response) {
  if (absl::Status s = Caller(context).status(); !s.ok()) {
    return ToGrpcStatus(s);
  }
  response->set_cas(options_.cas_address);
  if (options_.signing_key) {
    response->set_signing_key(options_.signing_key->PublicPem());
  }
  return grpc::Status::OK;
}

grpc::Status SchedulerService::ListImagesBody(
    grpc::ServerContext* context, const v1::ListImagesRequest* request,
    v1::ListImagesResponse* response) {
  if (absl::Status s = CheckInstanceCaller(context, request->instance_name());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::MutexLock lock(&mu_);
  for (v1::ImageTag& tag : images_.List(request->instance_name())) {
    *response->add_images() = std::move(tag);
  }
  return grpc::Status::OK;
}

grpc::Status SchedulerService::SetImageBody(
    grpc::ServerContext* context, const v1::SetImageRequest* request,
    v1::SetImageResponse* /*response*/) {
  if (absl::Status s = CheckInstanceCaller(context, request->instance_name());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  const v1::ImageTag& tag = request->image();
  if (absl::Status s = ImageIndex::Check(tag); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::MutexLock lock(&mu_);
  if (HasState()) {
    absl::Status s = StateReady();
    if (s.ok()) s = state_->PutImage(request->instance_name(), tag);
    if (!s.ok()) return ToGrpcStatus(s);
  }
  images_.Set(request->instance_name(), tag);
  return grpc::Status::OK;
}

grpc::Status SchedulerService::RemoveImageBody(
    grpc::ServerContext* context, const v1::RemoveImageRequest* request,
    v1::RemoveImageResponse* /*response*/) {
  if (absl::Status s = CheckInstanceCaller(context, request->instance_name());
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::MutexLock lock(&mu_);
  if (!images_.Has(request->instance_name(), request->name())) {
    return ToGrpcStatus(
        images_.Remove(request->instance_name(), request->name()));
  }
  if (HasState()) {
    absl::Status s = StateReady();
    if (s.ok())
      s = state_->DropImage(request->instance_name(), request->name());
    if (!s.ok()) return ToGrpcStatus(s);
  }
  return ToGrpcStatus(
      images_.Remove(request->instance_name(), request->name()));
}

grpc::Status SchedulerService::LeaseBody(grpc::ServerContext* context,
                                         const v1::LeaseRequest* request,
                                         v1::LeaseResponse* response) {
  if (absl::Status s = CheckWorkerCaller(context, "lease stages"); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->worker().empty()) return Invalid("worker: empty");
  auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(std::clamp(request->wait_ms(), 0, 30000));
  response->set_heartbeat_ms(static_cast<int32_t>(options_.heartbeat.count()));
  for (const auto* list :
       {&request->native_platforms(), &request->emulated_platforms()}) {
    for (const std::string& p : *list) {
      auto parsed = platform::Parse(p);
      if (!parsed.ok() || parsed->String() != p) {
        return Invalid(absl::StrCat("platforms: \"", p,
                                    "\" is not a normalized platform"));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  worker_seen_[request->worker()] = std::chrono::steady_clock::now();
  WorkerPlatforms& wp = worker_platforms_[request->worker()];
  wp.slots = request->slots();
  wp.layer_cache_bytes = request->layer_cache_bytes();
  wp.last_seen = UnixNow();
  wp.native = {request->native_platforms().begin(),
               request->native_platforms().end()};
  wp.emulated = {request->emulated_platforms().begin(),
                 request->emulated_platforms().end()};
  if (wp.native.empty() && wp.emulated.empty()) {
    wp.native.insert(platform::Host().String());  // an older worker
  }
  ++asking_[request->worker()];
  absl::Cleanup not_asking = [this, &request] {
    mu_.AssertHeld();  // runs before the lock is released
    if (--asking_[request->worker()] == 0) asking_.erase(request->worker());
  };
  while (true) {
    bool held = false;
    auto pick = Pick(request->worker(), &held);
    if (pick) {
      ++dispatches_;
      auto [b, index] = *pick;
      const std::string& build_id = b->id;
      StageState& st = b->stages[index];
      bool emulated =
          Fit(request->worker(), st.platform) == StageQueue::Fit::kEmulated;
      ++dispatches_by_platform_[{st.platform,
                                 emulated ? "emulated" : "native"}];
      st.status = StageStatus::kLeased;
      ++st.attempts;
      st.lease = RandomId();
      LeaseState& lease = leases_[st.lease];
      lease.build = build_id;
      lease.stage = index;
      lease.worker = request->worker();
      lease.deadline =
          std::chrono::steady_clock::now() + options_.lease_timeout;
      lease.incarnation = request->incarnation();
      if (!lease.incarnation.empty() &&
          attending_.count(lease.incarnation) == 0) {
        // Its process's Attend stream is not open (yet, or any more):
        // the death grace decides unless it (re)opens.
        lease.orphaned_since = std::chrono::steady_clock::now();
      }
      Event(b, "stage-started", st.display,
            absl::StrCat(
                "on ", request->worker(),
                emulated ? absl::StrCat(" (", st.platform, ", emulated)") : "",
                st.attempts > 1 ? absl::StrCat(" (attempt ", st.attempts, ")")
                                : ""),
            request->worker());
      v1::StageTask* task = response->mutable_task();
      task->set_lease_id(st.lease);
      task->set_build_id(build_id);
      task->set_stage_index(index);
      *task->mutable_spec() = b->spec;
      for (int dep : st.depends_on) {
        (*task->mutable_dependencies())[dep] = b->stages[dep].result;
      }
      task->set_assemble(index == b->target);
      task->set_created(b->created);
      task->set_stage_key(st.key);
      if (st.cached) task->set_cached_state(st.result);
      SaveOrLog(b);
      return grpc::Status::OK;
    }
    auto now = std::chrono::steady_clock::now();
    if (stopping_ || context->IsCancelled() || now >= deadline) {
      return grpc::Status::OK;
    }
    // A stage held for another worker is looked at again shortly.
    auto until = held
                     ? std::min(deadline, now + StageQueue::kPlacementGrace / 4)
                     : deadline;
    work_cv_.WaitWithTimeout(&mu_, absl::FromChrono(until - now));
  }
}

std::optional<std::pair<BuildState*, int>> SchedulerService::Pick(
    const std::string& worker, bool* held) {
  auto queued_at = [this](const StageQueue::Entry& e)
      -> std::optional<StageQueue::Clock::time_point> {
    mu_.AssertHeld();
    auto b = builds_.find(e.build);
    if (b == builds_.end() || b->second->finished) return std::nullopt;
    auto st = b->second->stages.find(e.stage);
    if (st == b->second->stages.end() ||
        st->second.status != StageStatus::kQueued) {
      return std::nullopt;
    }
    return st->second.queued_at;
  };
  StageQueue::Asker asker;
  asker.worker = worker;
  asker.fit = [this, &worker](const std::string& p) {
    mu_.AssertHeld();
    return Fit(worker, p);
  };
  asker.native_elsewhere = [this, &worker](const std::string& p) {
    mu_.AssertHeld();
    return LiveWorkerRuns(p, /*native_only=*/true, worker);
  };
  asker.idle = [this](const std::string& w) {
    mu_.AssertHeld();
    return asking_.count(w) > 0;
  };
  std::optional<StageQueue::Entry> e =
      queue_.Pick(asker, std::chrono::steady_clock::now(), queued_at, held);
  if (!e) return std::nullopt;
  // queued_at found the build; a lookup that cannot insert all the same.
  auto b = builds_.find(e->build);
  if (b == builds_.end()) return std::nullopt;
  return std::make_pair(b->second.get(), e->stage);
}

StageQueue::Fit SchedulerService::Fit(const std::string& worker,
                                      const std::string& platform) {
  auto it = worker_platforms_.find(worker);
  if (platform.empty()) return StageQueue::Fit::kNative;
  if (it == worker_platforms_.end()) return StageQueue::Fit::kNo;
  if (it->second.native.count(platform)) return StageQueue::Fit::kNative;
  if (it->second.emulated.count(platform)) return StageQueue::Fit::kEmulated;
  return StageQueue::Fit::kNo;
}

bool SchedulerService::LiveWorkerRuns(const std::string& platform,
                                      bool native_only,
                                      const std::string& except) {
  auto now = std::chrono::steady_clock::now();
  for (const auto& [worker, wp] : worker_platforms_) {
    if (worker == except) continue;
    auto seen = worker_seen_.find(worker);
    if (seen == worker_seen_.end() ||
        now - seen->second > options_.lease_timeout) {
      continue;
    }
    if (wp.native.count(platform) ||
        (!native_only && wp.emulated.count(platform))) {
      return true;
    }
  }
  return false;
}

std::string SchedulerService::LiveWorkerPlatforms() {
  std::vector<std::string> out;
  for (const auto& [worker, wp] : worker_platforms_) {
    std::string text =
        absl::StrCat(worker, ": ", absl::StrJoin(wp.native, " "));
    if (!wp.emulated.empty()) {
      absl::StrAppend(&text, "; emulated ", absl::StrJoin(wp.emulated, " "));
    }
    out.push_back(text);
  }
  return absl::StrJoin(out, ", ");
}

grpc::Status SchedulerService::ReportBody(grpc::ServerContext* context,
                                          const v1::StageReport* request,
                                          v1::StageReportResponse* response) {
  if (absl::Status s = CheckWorkerCaller(context, "report stages"); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::MutexLock lock(&mu_);
  auto lit = leases_.find(request->lease_id());
  if (lit == leases_.end()) {
    response->set_stop(true);  // expired, or the build is over
    return grpc::Status::OK;
  }
  LeaseState& lease = lit->second;
  auto bit = builds_.find(lease.build);
  if (bit == builds_.end() || bit->second->finished) {
    leases_.erase(lit);
    response->set_stop(true);
    return grpc::Status::OK;
  }
  BuildState* b = bit->second.get();
  StageState& st = b->stages[lease.stage];
  const double now = UnixNow();
  const size_t report_start = b->events.size();
  for (v1::Event e : request->events()) {
    if (e.kind() == "log" &&
        b->event_bytes + EventBytes(e) > options_.build_event_bytes) {
      if (b->log_bytes_dropped == 0) {
        Event(b, "note", e.stage(),
              absl::StrCat("the build's events passed the scheduler's bound "
                           "(",
                           options_.build_event_bytes,
                           " bytes): its further output is not kept or shown "
                           "live (a step's whole output is still kept when "
                           "it passed --log-max-bytes: stagefarm logs "
                           "--full)"),
              lease.worker);
      }
      b->log_bytes_dropped += static_cast<int64_t>(e.text().size());
      continue;
    }
    e.set_worker(lease.worker);
    // The worker's time of the event is finer than its report's arrival;
    // one from the future (a clock ahead of ours) is now.
    if (e.unix_time() <= 0 || e.unix_time() > now) e.set_unix_time(now);
    b->AddReported(std::move(e), report_start);
  }
  if (!request->events().empty() || request->finished()) Changed();
  lease.deadline = std::chrono::steady_clock::now() + options_.lease_timeout;
  if (request->finished()) {
    // A copy: the lease is erased before its fields are used below.
    const LeaseState done = lease;
    const std::string& worker = done.worker;
    leases_.erase(lit);
    b->steps_run += request->steps_run();
    b->steps_cached += request->steps_cached();
    if (request->code() != 0 && request->worker_fault() &&
        st.attempts < options_.max_attempts) {
      // The worker's own trouble (a full disk): another worker may do it.
      Event(b, "retry", st.display,
            absl::StrCat(worker, " could not run it (", request->error(),
                         "); the stage runs again"),
            worker);
      Enqueue(bit->second, done.stage);
      work_cv_.SignalAll();
    } else if (request->code() != 0) {
      // A step that fails fails the build: running it elsewhere would fail
      // the same way.
      worker_platforms_[worker].failures.push_back(UnixNow());
      Finish(b, request->code(), request->error());
    } else {
      st.status = StageStatus::kDone;
      st.result = request->image_state();
      st.worker = worker;
      std::string base = BaseImageKey(*b, st);
      if (!base.empty()) bases_.Ran(base, worker);
      Event(b, "stage-done", st.display, absl::StrCat("on ", worker), worker);
      StageRan(b, done.stage);
      if (done.stage == b->target) {
        *b->result.mutable_manifest() = request->manifest();
        b->result.set_execute_response(request->execute_response());
        Succeeded(bit->second, "");
      } else {
        QueueReady(bit->second);
      }
    }
  }
  if (request->events_size() > 0) b->cv.SignalAll();
  if (request->events_size() > 0 || request->finished()) SaveOrLog(b);
  return grpc::Status::OK;
}

void SchedulerService::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  auto streams_checked = std::chrono::steady_clock::now();
  while (!stopping_) {
    reaper_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
    auto now = std::chrono::steady_clock::now();
    // The reaper's thread must not die of a build's content either.
    try {
      ReapOnce(now, &streams_checked);
    } catch (const std::exception& e) {
      LogError(absl::StrCat("the lease reaper: internal error: ", e.what()));
    } catch (...) {
      LogError("the lease reaper: internal error: an unknown exception");
    }
  }
}

void SchedulerService::ReapOnce(
    std::chrono::steady_clock::time_point now,
    std::chrono::steady_clock::time_point* streams_checked) {
  ReapOrphans(now);
  if (now - *streams_checked >= std::chrono::seconds(1)) {
    // Streams whose client went away: their owner's build is cancelled.
    *streams_checked = now;
    for (const auto& [context, b] : streams_) {
      if (context->IsCancelled()) b->cv.SignalAll();
    }
  }
  bool changed = false;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    LeaseState lease = it->second;
    it = leases_.erase(it);
    ++lease_expiries_;
    auto bit = builds_.find(lease.build);
    if (bit == builds_.end() || bit->second->finished) continue;
    BuildState* b = bit->second.get();
    StageState& st = b->stages[lease.stage];
    changed = true;
    if (st.attempts >= options_.max_attempts) {
      Finish(b, static_cast<int>(grpc::StatusCode::UNAVAILABLE),
             absl::StrCat("stage ", st.display, " was lost by ", st.attempts,
                          " workers (no report within the lease time); "
                          "the last was ",
                          lease.worker));
      continue;
    }
    Event(
        b, "retry", st.display,
        absl::StrCat(lease.worker, " stopped reporting; the stage runs again"),
        lease.worker);
    Enqueue(bit->second, lease.stage);
    SaveOrLog(b);
  }
  if (changed) {
    mu_.Unlock();
    work_cv_.SignalAll();
    mu_.Lock();
  }
}

}  // namespace stagefarm::scheduler
