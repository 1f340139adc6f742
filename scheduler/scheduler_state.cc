#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "scheduler/scheduler_service.h"

// The scheduler's --state: loading it at start (builds carry on where they
// were) and writing each change to it (scheduler/state_store.h).
namespace stagefarm::scheduler {

bool SchedulerService::ReopenState() {
  if (!state_->Reopen()) return false;
  // What could not be written meanwhile, whole.
  for (auto& [id, other] : builds_) {
    other->events_saved = 0;
    if (!WriteBuild(other.get()).ok()) return !state_->failed();
  }
  return !state_->failed();
}

absl::Status SchedulerService::StateReady() {
  if (!state_->failed() || ReopenState()) return absl::OkStatus();
  return state_->Refuse();
}

absl::Status SchedulerService::OpenState() {
  ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store,
                   StateStore::Open(options_.state_dir));
  ASSIGN_OR_RETURN(StateStore::Contents contents, store->Load());
  absl::MutexLock lock(&mu_);
  state_ = std::move(store);
  auto now = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<BuildState>> loaded;
  for (StateStore::StoredBuildEvents& stored : contents.builds) {
    std::shared_ptr<BuildState> b =
        FromRecord(stored.build, std::move(stored.events));
    AddBuild(b);
    loaded.push_back(b);
  }
  for (auto& [instance, tag] : contents.images) {
    images_.Set(instance, std::move(tag));
  }
  // Finished builds in the order they ended; running ones take up where
  // they were: a leased stage keeps its lease (its worker may still be
  // running it and will report), a queued one is queued again.
  std::sort(loaded.begin(), loaded.end(), [](const auto& x, const auto& y) {
    return x->finished_at < y->finished_at;
  });
  for (const auto& b : loaded) {
    if (b->finished) {
      KeepFinished(b.get());
      continue;
    }
    if (b->had_secrets) {
      // Its secrets were never written down, so stages still to run
      // could not get them.
      Finish(b.get(), static_cast<int>(grpc::StatusCode::UNAVAILABLE),
             "the scheduler restarted and does not keep a build's secrets; "
             "submit the build again");
      continue;
    }
    int leased = 0, queued = 0;
    for (auto& [index, st] : b->stages) {
      if (st.status == StageStatus::kLeased && !st.lease.empty()) {
        // Workers need a moment to reconnect: at least 5 s.
        // A restored lease names no process: the lease timeout decides.
        LeaseState& lease = leases_[st.lease];
        lease.build = b->id;
        lease.stage = index;
        lease.worker = st.worker;
        lease.deadline =
            now + std::max<std::chrono::milliseconds>(options_.lease_timeout,
                                                      std::chrono::seconds(5));
        ++leased;
      } else if (st.status == StageStatus::kLeased ||
                 st.status == StageStatus::kQueued) {
        Enqueue(b, index);
        ++queued;
      }
    }
    QueueReady(b);
    Event(b.get(), "restored", "",
          absl::StrCat("the scheduler restarted: ", leased,
                       " running stages keep their workers, ", queued,
                       " queued again"),
          "");
    absl::Status st = Save(b.get());
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status SchedulerService::Save(BuildState* b) {
  if (!HasState()) return absl::OkStatus();
  return WriteBuild(b);
}

v1::StoredBuild SchedulerService::RecordOf(const BuildState& b) {
  return ToRecord(b, [this](const std::string& lease) {
    mu_.AssertHeld();
    auto it = leases_.find(lease);
    return it == leases_.end() ? std::string() : it->second.worker;
  });
}

absl::Status SchedulerService::WriteBuild(BuildState* b) {
  RETURN_IF_ERROR(StateReady());
  v1::StoredBuild stored = RecordOf(*b);
  RETURN_IF_ERROR(state_->PutBuild(stored, b->events, b->events_saved));
  b->events_saved = b->events.size();
  return absl::OkStatus();
}

void SchedulerService::SaveOrLog(BuildState* b) {
  // Save logs its failures; the build goes on in memory and is written
  // whole at its next change.
  (void)Save(b);
}

void SchedulerService::Forget(const std::string& id) {
  EraseBuild(id);
  if (!HasState()) return;
  if (StateReady().ok()) (void)state_->DropBuild(id);
}

}  // namespace stagefarm::scheduler
