// The farm as the web view reads it (webui::FarmSource): builds, workers
// and leases from the SchedulerService, the store and its blobs from the
// farm's CAS (the scheduler's --cas), with the scheduler's tenants.
#ifndef STAGEFARM_SCHEDULER_WEB_SOURCE_H_
#define STAGEFARM_SCHEDULER_WEB_SOURCE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/cas_client.h"
#include "common/tenants.h"
#include "scheduler/scheduler_service.h"
#include "webui/farm_source.h"

namespace stagefarm::scheduler {

class SchedulerWebSource : public webui::FarmSource {
 public:
  // `cas` may be null (no --cas: the store's pages say so).
  SchedulerWebSource(SchedulerService* service, const CasTarget* cas,
                     std::shared_ptr<const Tenants> tenants);

  bool TenantsOn() const override { return tenants_ != nullptr; }
  absl::StatusOr<const Tenant*> ByToken(absl::string_view token) const override;
  std::vector<v1::BuildSummary> Summaries(const Tenant* caller,
                                          const buildview::BuildFilter& filter,
                                          size_t offset, size_t limit,
                                          size_t* total) override;
  absl::StatusOr<v1::BuildRecord> Record(const Tenant* caller,
                                         const std::string& build_id) override;
  absl::Status Cancel(const Tenant* caller,
                      const std::string& build_id) override;
  uint64_t ChangeCount() override;
  void WaitForChange(uint64_t seen, absl::Time deadline) override;
  nlohmann::json Workers(const Tenant* caller) override;
  nlohmann::json Store(const Tenant* caller) override;
  absl::StatusOr<build::bazel::remote::execution::v2::ActionResult>
  ReadActionResult(const Tenant* caller, const std::string& instance,
                   const Digest& action) override;
  absl::StatusOr<std::string> ReadBlob(const Tenant* caller,
                                       const std::string& instance,
                                       const Digest& digest,
                                       int64_t max_bytes) override;

 private:
  // PERMISSION_DENIED for an instance the caller may not use;
  // FAILED_PRECONDITION without a store.
  absl::Status CanRead(const Tenant* caller, const std::string& instance) const;
  SchedulerService* service_;
  const CasTarget* cas_;
  std::shared_ptr<const Tenants> tenants_;
};

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_WEB_SOURCE_H_
