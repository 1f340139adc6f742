// InstancePolicy: maps a request's REAPI instance_name to a storage
// namespace and decides who may write the action cache.
//
// Each instance is its own namespace (tenant) unless the operator shares a
// group of instances (--share-instances=a,b,c): members of a group read and
// write one namespace. Action-cache writes are open to every client, to
// nobody, or to callers presenting the workers' bearer token.
// Immutable after construction; thread-safe.
#ifndef STAGEFARM_CAS_INSTANCE_POLICY_H_
#define STAGEFARM_CAS_INSTANCE_POLICY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tenants.h"

namespace stagefarm {

enum class ActionCacheWriters {
  kAll,    // any client (a plain Bazel remote cache)
  kNone,   // read-only action cache
  kToken,  // only callers with "authorization: Bearer <token>"
};

struct InstancePolicyOptions {
  // Each inner list is a group of instance names sharing one namespace.
  std::vector<std::vector<std::string>> share_groups;
  ActionCacheWriters ac_writers = ActionCacheWriters::kAll;
  std::string ac_token;
  // When set (--tenants), every call must come from a known tenant allowed
  // the instance it names, and only worker tenants write the action cache.
  std::shared_ptr<const Tenants> tenants;
};

class InstancePolicy {
 public:
  static absl::StatusOr<InstancePolicy> Create(InstancePolicyOptions options);

  // The namespace for `instance_name` (validated; INVALID_ARGUMENT names the
  // field).
  absl::StatusOr<std::string> Namespace(
      absl::string_view instance_name,
      absl::string_view field = "instance_name") const;
  // The same for a call: with tenants, the caller must be allowed
  // `instance_name` (UNAUTHENTICATED, PERMISSION_DENIED).
  absl::StatusOr<std::string> Namespace(
      const grpc::ServerContext* context, absl::string_view instance_name,
      absl::string_view field = "instance_name") const;
  // The instance a namespace made by Namespace() stands for, when it is
  // one instance's own (not a shared group's); nullopt otherwise.
  static std::optional<std::string> InstanceOf(absl::string_view ns);
  // With tenants: OK for any known caller (UNAUTHENTICATED otherwise).
  absl::Status CheckCaller(const grpc::ServerContext* context) const;

  // OK if a caller whose "authorization" metadata is `authorization` may
  // write the action cache; PERMISSION_DENIED otherwise.
  absl::Status CheckActionCacheWrite(absl::string_view authorization) const;
  // With tenants: only worker tenants; else as above, from the metadata.
  absl::Status CheckActionCacheWrite(const grpc::ServerContext* context) const;
  bool action_cache_writable_by_anyone() const {
    return options_.ac_writers == ActionCacheWriters::kAll &&
           options_.tenants == nullptr;
  }

 private:
  explicit InstancePolicy(InstancePolicyOptions options)
      : options_(std::move(options)) {}

  InstancePolicyOptions options_;
  absl::flat_hash_map<std::string, std::string> group_of_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_CAS_INSTANCE_POLICY_H_
