// A stage's view of its instance's shared cache mounts (cachemount/): pulls
// and pushes go to them, and sharing=locked caches (and every push) are
// held through the scheduler under the stage's lease (farm.proto,
// LockCache).
#ifndef STAGEFARM_WORKER_TASK_CACHE_SYNC_H_
#define STAGEFARM_WORKER_TASK_CACHE_SYNC_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cache_sync.h"
#include "stagefarm/v1/farm.grpc.pb.h"

namespace stagefarm::worker {

class TaskCacheSync : public engine::CacheMountSync {
 public:
  TaskCacheSync(engine::CacheMountSync* shared, v1::Scheduler::Stub* scheduler,
                std::string lease, const std::atomic<bool>* cancel)
      : shared_(shared),
        scheduler_(scheduler),
        lease_(std::move(lease)),
        cancel_(cancel) {}

  absl::Status Pull(const std::string& id, const std::string& dir) override {
    return shared_->Pull(id, dir);
  }
  // Publishing reads the cache's latest pointer, merges what another
  // worker published and writes the pointer: two workers doing that at
  // once would lose one's files, so it holds the farm's lock on the cache
  // meanwhile (a sharing=locked step holds it already: its lease takes it
  // again at once; it is dropped after Push either way).
  absl::Status Push(const std::string& id, const std::string& dir) override {
    absl::StatusOr<std::unique_ptr<Hold>> hold = Lock(id);
    if (!hold.ok()) return hold.status();
    return shared_->Push(id, dir);
  }

  // Asks the scheduler until it grants the lock or the stage is cancelled.
  absl::StatusOr<std::unique_ptr<Hold>> Lock(const std::string& id) override {
    while (true) {
      if (cancel_ != nullptr && cancel_->load()) {
        return absl::CancelledError("stage cancelled");
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(15));
      v1::LockCacheRequest req;
      req.set_lease_id(lease_);
      req.set_cache_id(id);
      req.set_wait_ms(2000);
      v1::LockCacheResponse resp;
      grpc::Status s = scheduler_->LockCache(&ctx, req, &resp);
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cache mount ", id, ": cannot lock it: ", s.error_message()));
      }
      if (s.ok() && resp.held()) {
        return std::unique_ptr<Hold>(new Held(scheduler_, lease_, id));
      }
      if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

 private:
  // Releases the lock (best effort: the lease's end releases it anyway).
  class Held : public Hold {
   public:
    Held(v1::Scheduler::Stub* scheduler, std::string lease, std::string id)
        : scheduler_(scheduler), lease_(std::move(lease)), id_(std::move(id)) {}
    ~Held() override {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      v1::LockCacheRequest req;
      req.set_lease_id(lease_);
      req.set_cache_id(id_);
      req.set_release(true);
      v1::LockCacheResponse resp;
      (void)scheduler_->LockCache(&ctx, req, &resp);
    }

   private:
    v1::Scheduler::Stub* scheduler_;
    std::string lease_, id_;
  };

  engine::CacheMountSync* shared_;
  v1::Scheduler::Stub* scheduler_;
  const std::string lease_;
  const std::atomic<bool>* cancel_;
};

}  // namespace stagefarm::worker

#endif  // STAGEFARM_WORKER_TASK_CACHE_SYNC_H_
