// Who is calling, and what they may touch. A tenants file (JSON) names each
// tenant, how it proves who it is, and the REAPI instances it may use:
//
//   {"tenants": [
//     {"name": "team-a", "tokens_sha256": ["<sha256 hex of the token>"],
//      "instances": ["team-a"]},
//     {"name": "ci", "certificates": ["ci-runner"], "instances": ["*"]},
//     {"name": "workers", "tokens_sha256": ["..."], "instances": ["*"],
//      "worker": true}]}
//
// "max_builds": N limits the tenant's builds running at once on the
// scheduler (more are refused with RESOURCE_EXHAUSTED); "max_bytes": N
// limits what each of its instances (not "*") may hold in the CAS.
//
// A caller is identified by "authorization: Bearer <token>" (the file keeps
// only the token's SHA-256) or by the common name of its verified client
// certificate (mutual TLS). Only "worker" tenants lease stages and write the
// action cache. The CAS and the scheduler load the same file (--tenants).
// Immutable after loading; thread-safe.
#ifndef STAGEFARM_COMMON_TENANTS_H_
#define STAGEFARM_COMMON_TENANTS_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm {

struct Tenant {
  std::string name;
  std::vector<std::string> instances;  // "*": every instance
  bool worker = false;
  int max_builds = 0;     // running at once; 0: no limit
  int64_t max_bytes = 0;  // per instance in the CAS; 0: no limit
};

class Tenants {
 public:
  // INVALID_ARGUMENT naming the file and the field for a bad file.
  static absl::StatusOr<std::shared_ptr<const Tenants>> Load(
      const std::string& path);
  static absl::StatusOr<std::shared_ptr<const Tenants>> Parse(
      absl::string_view json, const std::string& what);

  // The calling tenant; UNAUTHENTICATED when the call carries no token or
  // certificate the file knows.
  absl::StatusOr<const Tenant*> Identify(
      const grpc::ServerContext& context) const;
  // The tenant whose token this is (the web view's sessions);
  // UNAUTHENTICATED otherwise.
  absl::StatusOr<const Tenant*> ByToken(absl::string_view token) const;
  // PERMISSION_DENIED unless `tenant` may use `instance`.
  static absl::Status CheckInstance(const Tenant& tenant,
                                    absl::string_view instance);
  static absl::Status CheckWorker(const Tenant& tenant, absl::string_view what);
  const std::vector<Tenant>& all() const { return tenants_; }

 private:
  std::vector<Tenant> tenants_;
  std::map<std::string, size_t> by_token_hash_;
  std::map<std::string, size_t> by_certificate_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_TENANTS_H_
