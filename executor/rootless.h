// Rootless: the engine run without root. An ordinary user's process enters
// a user namespace of its own, mapped to the user's subordinate ids
// (/etc/subuid and /etc/subgid, through newuidmap and newgidmap from the
// uidmap package), with a mount namespace of its own. There it is root of
// what it makes: it mounts overlayfs (the kernel allows it in a user
// namespace) and runs runc, whose containers are then rootless. The
// user's own id is root's there; container id N (N >= 1) is the user's
// Nth subordinate id on disk and N again inside, so layers read back with
// the owners the steps gave, and images are the same as a rootful
// engine's.
#ifndef STAGEFARM_EXECUTOR_ROOTLESS_H_
#define STAGEFARM_EXECUTOR_ROOTLESS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/user_namespace.h"

namespace stagefarm::executor {

// For an ordinary user (effective uid not 0) outside a user namespace:
// executes this program again (`argv`, as main got it) inside a new user
// and mount namespace mapped to the user's subordinate ids, through
// util-linux's unshare; returns only on failure. Does nothing for root or
// inside a user namespace. FAILED_PRECONDITION, saying what to do, when
// the user has no subordinate ids or newuidmap is missing.
absl::Status EnterUserNamespace(char** argv);

// The first range of subordinate ids FILE (/etc/subuid, /etc/subgid)
// gives the user NAME or numeric ID, as "START:COUNT"; NOT_FOUND when it
// gives none. Pure but for reading FILE.
absl::StatusOr<std::string> SubordinateRange(const std::string& file,
                                             const std::string& name,
                                             unsigned id);

}  // namespace stagefarm::executor

#endif  // STAGEFARM_EXECUTOR_ROOTLESS_H_
