#include "cas/instance_policy.h"

#include <openssl/crypto.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/resource_name.h"
#include "common/status_macros.h"

namespace stagefarm {

absl::StatusOr<InstancePolicy> InstancePolicy::Create(
    InstancePolicyOptions options) {
  if (options.ac_writers == ActionCacheWriters::kToken &&
      options.ac_token.empty()) {
    return absl::InvalidArgumentError(
        "action cache writers: token mode needs a non-empty token");
  }
  InstancePolicy policy(std::move(options));
  for (const auto& group : policy.options_.share_groups) {
    if (group.empty()) continue;
    std::string ns = absl::StrCat("g:", group.front());
    for (const std::string& instance : group) {
      RETURN_IF_ERROR(ValidateInstanceName(instance, "shared instance"));
      if (!policy.group_of_.emplace(instance, ns).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "shared instance \"", instance, "\" is in two groups"));
      }
    }
  }
  return policy;
}

absl::StatusOr<std::string> InstancePolicy::Namespace(
    absl::string_view instance_name, absl::string_view field) const {
  RETURN_IF_ERROR(ValidateInstanceName(instance_name, field));
  auto it = group_of_.find(instance_name);
  if (it != group_of_.end()) return it->second;
  return absl::StrCat("i:", instance_name);
}

std::optional<std::string> InstancePolicy::InstanceOf(absl::string_view ns) {
  if (!absl::ConsumePrefix(&ns, "i:")) return std::nullopt;
  return std::string(ns);
}

absl::StatusOr<std::string> InstancePolicy::Namespace(
    const grpc::ServerContext* context, absl::string_view instance_name,
    absl::string_view field) const {
  if (options_.tenants != nullptr) {
    absl::StatusOr<const Tenant*> tenant = options_.tenants->Identify(*context);
    if (!tenant.ok()) return tenant.status();
    absl::Status s = Tenants::CheckInstance(**tenant, instance_name);
    if (!s.ok()) return s;
  }
  return Namespace(instance_name, field);
}

absl::Status InstancePolicy::CheckCaller(
    const grpc::ServerContext* context) const {
  if (options_.tenants == nullptr) return absl::OkStatus();
  return options_.tenants->Identify(*context).status();
}

absl::Status InstancePolicy::CheckActionCacheWrite(
    const grpc::ServerContext* context) const {
  if (options_.tenants != nullptr) {
    absl::StatusOr<const Tenant*> tenant = options_.tenants->Identify(*context);
    if (!tenant.ok()) return tenant.status();
    return Tenants::CheckWorker(**tenant, "write the action cache");
  }
  std::string authorization;
  auto it = context->client_metadata().find("authorization");
  if (it != context->client_metadata().end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  return CheckActionCacheWrite(authorization);
}

absl::Status InstancePolicy::CheckActionCacheWrite(
    absl::string_view authorization) const {
  switch (options_.ac_writers) {
    case ActionCacheWriters::kAll:
      return absl::OkStatus();
    case ActionCacheWriters::kNone:
      return absl::PermissionDeniedError(
          "UpdateActionResult: this cache's action cache is read-only");
    case ActionCacheWriters::kToken: {
      constexpr absl::string_view kBearer = "Bearer ";
      if (absl::StartsWith(authorization, kBearer)) {
        absl::string_view token = authorization.substr(kBearer.size());
        if (token.size() == options_.ac_token.size() &&
            CRYPTO_memcmp(token.data(), options_.ac_token.data(),
                          token.size()) == 0) {
          return absl::OkStatus();
        }
      }
      return absl::PermissionDeniedError(
          "UpdateActionResult: only trusted workers may write the action "
          "cache (missing or wrong authorization token)");
    }
  }
  return absl::InternalError("unknown action cache policy");
}

}  // namespace stagefarm
