// What the web view reads: the builds, workers and cache of a farm (the
// scheduler implements it) or of this machine's embedded engine (its
// history). Every call names its caller, a tenant already identified (null
// when tenants are off), and answers only what that caller may see.
// Implementations are thread-safe: each web request runs on its own thread.
#ifndef STAGEFARM_WEBUI_FARM_SOURCE_H_
#define STAGEFARM_WEBUI_FARM_SOURCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "buildview/build_view.h"
#include "common/digest.h"
#include "common/tenants.h"
#include "nlohmann/json.hpp"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::webui {

class FarmSource {
 public:
  virtual ~FarmSource() = default;

  // Whether callers must prove who they are (tenants are on).
  virtual bool TenantsOn() const = 0;
  // The tenant a bearer token belongs to; UNAUTHENTICATED otherwise.
  virtual absl::StatusOr<const Tenant*> ByToken(
      absl::string_view token) const = 0;

  // Running builds and the last finished ones, newest first: those that
  // match `filter`, from the `offset`th, at most `limit` (0: all); *total
  // says how many match.
  virtual std::vector<v1::BuildSummary> Summaries(
      const Tenant* caller, const buildview::BuildFilter& filter, size_t offset,
      size_t limit, size_t* total) = 0;
  // NOT_FOUND for a build the caller cannot see.
  virtual absl::StatusOr<v1::BuildRecord> Record(
      const Tenant* caller, const std::string& build_id) = 0;
  // NOT_FOUND, FAILED_PRECONDITION (finished), UNIMPLEMENTED (a history).
  virtual absl::Status Cancel(const Tenant* caller,
                              const std::string& build_id) = 0;

  // A number that grows whenever anything the views show changes (an
  // event, a build submitted or finished), and a wait for it to pass
  // `seen` (or for `deadline`).
  virtual uint64_t ChangeCount() = 0;
  virtual void WaitForChange(uint64_t seen, absl::Time deadline) = 0;

  // The workers as the web API serves them (docs/web-api.md): name,
  // slots, last seen, platforms, what each runs now (only the caller's
  // builds), recent failures, disk used.
  virtual nlohmann::json Workers(const Tenant* caller) = 0;
  // The store: size, bounds and eviction ({} entries for what the source
  // cannot tell).
  virtual nlohmann::json Store(const Tenant* caller) = 0;
  // A blob of `instance` (at most `max_bytes` of it); PERMISSION_DENIED for
  // an instance the caller may not use, NOT_FOUND when absent.
  virtual absl::StatusOr<std::string> ReadBlob(const Tenant* caller,
                                               const std::string& instance,
                                               const Digest& digest,
                                               int64_t max_bytes) = 0;
  // The action cache's entry for `action` in `instance` (a step's cache
  // key is an action digest): PERMISSION_DENIED, NOT_FOUND as ReadBlob.
  virtual absl::StatusOr<build::bazel::remote::execution::v2::ActionResult>
  ReadActionResult(const Tenant* caller, const std::string& instance,
                   const Digest& action) = 0;
};

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_FARM_SOURCE_H_
