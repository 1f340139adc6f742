#include "frontend/dockerfile/entitlements.h"

#include <variant>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace stagefarm::dockerfile {

absl::Status CheckEntitlementNames(const std::set<std::string>& names) {
  for (const std::string& n : names) {
    if (n != kNetworkHost && n != kSecurityInsecure) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown entitlement \"", n, "\" (", kNetworkHost,
                       " or ", kSecurityInsecure, ")"));
    }
  }
  return absl::OkStatus();
}

std::string RequiredEntitlement(const RunInst& run) {
  if (run.network == "host") return kNetworkHost;
  if (run.security == "insecure") return kSecurityInsecure;
  return "";
}

absl::Status CheckEntitled(const Instruction& inst,
                           const std::set<std::string>& granted,
                           absl::string_view filename) {
  const auto* run = std::get_if<RunInst>(&inst.value);
  if (run == nullptr) return absl::OkStatus();
  std::string needed = RequiredEntitlement(*run);
  if (needed.empty() || granted.count(needed) > 0) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      filename, ":", inst.line, ": RUN ",
      needed == kNetworkHost ? "--network=host" : "--security=insecure",
      " needs the ", needed, " entitlement (build with --allow ", needed, ")"));
}

absl::Status CheckEntitled(const Plan& plan,
                           const std::set<std::string>& granted,
                           absl::string_view filename, int only) {
  for (const Stage& st : plan.stages) {
    if (only >= 0 ? st.index != only : !st.needed) continue;
    for (const Instruction& inst : st.instructions) {
      RETURN_IF_ERROR(CheckEntitled(inst, granted, filename));
    }
  }
  return absl::OkStatus();
}

}  // namespace stagefarm::dockerfile
