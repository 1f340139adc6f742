// Entitlements: what a RUN step may do only when the build is given it,
// with BuildKit's names. `RUN --network=host` needs "network.host",
// `RUN --security=insecure` needs "security.insecure" (`stagefarm build
// --allow NAME`).
#ifndef STAGEFARM_FRONTEND_DOCKERFILE_ENTITLEMENTS_H_
#define STAGEFARM_FRONTEND_DOCKERFILE_ENTITLEMENTS_H_

#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "frontend/dockerfile/instructions.h"
#include "frontend/dockerfile/plan.h"

namespace stagefarm::dockerfile {

inline constexpr char kNetworkHost[] = "network.host";
inline constexpr char kSecurityInsecure[] = "security.insecure";

// INVALID_ARGUMENT naming the unknown one and the known ones.
absl::Status CheckEntitlementNames(const std::set<std::string>& names);

// The entitlement `run` needs ("" for none).
std::string RequiredEntitlement(const RunInst& run);

// PERMISSION_DENIED "FILE:LINE: RUN --network=host needs the network.host
// entitlement (build with --allow network.host)" when `inst` is a RUN
// needing one that `granted` lacks.
absl::Status CheckEntitled(const Instruction& inst,
                           const std::set<std::string>& granted,
                           absl::string_view filename);

// CheckEntitled for every instruction of the needed stages (or of stage
// `only` when it is not -1), so a build is refused before anything runs.
absl::Status CheckEntitled(const Plan& plan,
                           const std::set<std::string>& granted,
                           absl::string_view filename, int only = -1);

}  // namespace stagefarm::dockerfile

#endif  // STAGEFARM_FRONTEND_DOCKERFILE_ENTITLEMENTS_H_
