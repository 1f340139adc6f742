// The embedded engine's build history: each build on this machine is kept
// as the farm keeps its builds (a v1::BuildRecord, secrets never in it)
// in $STAGEFARM_HOME/history/<id>.record, written whole while it runs and
// when it ends; the last kMaxBuilds builds and kMaxBytes stay. `stagefarm
// builds ls|trace` and `logs` without a farm, and `stagefarm ui` (the web
// view of this machine) read it. Thread-safe.
#ifndef STAGEFARM_CLI_LOCAL_HISTORY_H_
#define STAGEFARM_CLI_LOCAL_HISTORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/local.h"
#include "stagefarm/v1/farm.pb.h"
#include "webui/farm_source.h"

namespace stagefarm::cli {

class LocalHistory : public webui::FarmSource {
 public:
  static constexpr size_t kMaxBuilds = 500;
  static constexpr int64_t kMaxBytes = int64_t{512} << 20;

  // `options` opens the store for the CAS browser (only while no build
  // holds it).
  LocalHistory(std::string home, LocalOptions options);

  // Writes `record` (a whole file or nothing), then drops the oldest
  // records beyond the bounds.
  absl::Status Save(const v1::BuildRecord& record);
  // Newest first.
  std::vector<v1::BuildRecord> All();

  // webui::FarmSource: no tenants on one's own machine.
  bool TenantsOn() const override { return false; }
  absl::StatusOr<const Tenant*> ByToken(absl::string_view) const override {
    return nullptr;
  }
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

  // The summary `builds ls` and the web view list a record by.
  static v1::BuildSummary Summary(const v1::BuildRecord& record);

 private:
  std::string dir_;
  LocalOptions options_;
};

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_LOCAL_HISTORY_H_
