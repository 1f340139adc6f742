#include "scheduler/web_source.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace stagefarm::scheduler {

SchedulerWebSource::SchedulerWebSource(SchedulerService* service,
                                       const CasTarget* cas,
                                       std::shared_ptr<const Tenants> tenants)
    : service_(service), cas_(cas), tenants_(std::move(tenants)) {}

absl::StatusOr<const Tenant*> SchedulerWebSource::ByToken(
    absl::string_view token) const {
  if (tenants_ == nullptr) return nullptr;
  return tenants_->ByToken(token);
}

std::vector<v1::BuildSummary> SchedulerWebSource::Summaries(
    const Tenant* caller, const buildview::BuildFilter& filter, size_t offset,
    size_t limit, size_t* total) {
  return service_->Summaries(caller, filter, offset, limit, total);
}

absl::StatusOr<v1::BuildRecord> SchedulerWebSource::Record(
    const Tenant* caller, const std::string& build_id) {
  return service_->Record(caller, build_id);
}

absl::Status SchedulerWebSource::Cancel(const Tenant* caller,
                                        const std::string& build_id) {
  return service_->Cancel(
      caller, build_id,
      caller == nullptr
          ? "cancelled (web view)"
          : absl::StrCat("cancelled by ", caller->name, " (web view)"));
}

uint64_t SchedulerWebSource::ChangeCount() { return service_->ChangeCount(); }

void SchedulerWebSource::WaitForChange(uint64_t seen, absl::Time deadline) {
  service_->WaitForChange(seen, deadline);
}

nlohmann::json SchedulerWebSource::Workers(const Tenant* caller) {
  return service_->WorkersJson(caller);
}

nlohmann::json SchedulerWebSource::Store(const Tenant* caller) {
  (void)caller;  // the store's totals are the farm's, not a tenant's
  if (cas_ == nullptr) return {{"cas", "none (the scheduler has no --cas)"}};
  CasClient client(*cas_, "");
  absl::StatusOr<v1::GetStatsResponse> stats = client.GetStats();
  if (!stats.ok()) {
    return {{"cas", absl::StrJoin(cas_->addresses, ",")},
            {"error", std::string(stats.status().message())}};
  }
  return {{"cas", absl::StrJoin(cas_->addresses, ",")},
          {"stored_bytes", stats->stored_bytes()},
          {"max_bytes", stats->max_bytes()},
          {"blob_count", stats->blob_count()},
          {"evicted_blobs", stats->evicted_blobs()},
          {"evicted_bytes", stats->evicted_bytes()},
          {"action_cache_entries", stats->action_cache_entries()},
          {"uploads_in_progress", stats->uploads_in_progress()}};
}

absl::Status SchedulerWebSource::CanRead(const Tenant* caller,
                                         const std::string& instance) const {
  if (caller != nullptr)
    RETURN_IF_ERROR(Tenants::CheckInstance(*caller, instance));
  if (cas_ == nullptr) {
    return absl::FailedPreconditionError(
        "the scheduler has no --cas: there is no store to read");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SchedulerWebSource::ReadBlob(
    const Tenant* caller, const std::string& instance, const Digest& digest,
    int64_t max_bytes) {
  RETURN_IF_ERROR(CanRead(caller, instance));
  CasClient client(*cas_, instance);
  std::string out;
  absl::Status s = client.Read(
      digest,
      [&out](absl::string_view chunk) {
        out.append(chunk.data(), chunk.size());
        return absl::OkStatus();
      },
      0, std::min(max_bytes, digest.size()));
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<build::bazel::remote::execution::v2::ActionResult>
SchedulerWebSource::ReadActionResult(const Tenant* caller,
                                     const std::string& instance,
                                     const Digest& action) {
  RETURN_IF_ERROR(CanRead(caller, instance));
  return CasClient(*cas_, instance).GetActionResult(action);
}

}  // namespace stagefarm::scheduler
