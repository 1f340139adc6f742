// Farm-wide locks for RUN --mount=type=cache,sharing=locked: a leased stage
// holds a cache against stages on other workers (farm.proto, LockCache).
#include <algorithm>
#include <chrono>

#include "common/grpc_status.h"
#include "scheduler/scheduler_service.h"

namespace stagefarm::scheduler {

grpc::Status SchedulerService::LockCacheBody(
    grpc::ServerContext* context, const v1::LockCacheRequest* request,
    v1::LockCacheResponse* response) {
  if (absl::Status s = CheckWorkerCaller(context, "lock caches"); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->cache_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "cache_id: empty");
  }
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(std::clamp(request->wait_ms(), 0, 10'000));
  absl::MutexLock lock(&mu_);
  auto lit = leases_.find(request->lease_id());
  if (lit == leases_.end()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "lease_id: no such lease (expired, or the build is "
                        "over)");
  }
  auto bit = builds_.find(lit->second.build);
  if (bit == builds_.end()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "lease_id: its build is gone");
  }
  const auto key =
      std::make_pair(bit->second->spec.instance_name(), request->cache_id());
  if (request->release()) {
    auto it = cache_locks_.find(key);
    if (it != cache_locks_.end() && it->second == request->lease_id()) {
      cache_locks_.erase(it);
      cache_lock_cv_.SignalAll();
    }
    response->set_held(false);
    return grpc::Status::OK;
  }
  while (true) {
    auto it = cache_locks_.find(key);
    // Free, ours already, or held by a lease that ended.
    if (it == cache_locks_.end() || it->second == request->lease_id() ||
        leases_.find(it->second) == leases_.end()) {
      cache_locks_[key] = request->lease_id();
      response->set_held(true);
      return grpc::Status::OK;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || stopping_ || context->IsCancelled()) break;
    // Leases end without a signal here: look again at least every 100 ms.
    cache_lock_cv_.WaitWithTimeout(
        &mu_, absl::Milliseconds(std::min<int64_t>(
                  100, std::chrono::duration_cast<std::chrono::milliseconds>(
                           deadline - now)
                           .count())));
    if (leases_.find(request->lease_id()) == leases_.end()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "lease_id: the lease ended while waiting");
    }
  }
  response->set_held(false);
  return grpc::Status::OK;
}

}  // namespace stagefarm::scheduler
