// Users and groups as a container image defines them: "user[:group]"
// resolved with the image's own /etc/passwd and /etc/group (read inside the
// root file system, links resolved within it), as Docker and BuildKit do for
// USER, WORKDIR ownership and --chown. Thread-safe (no shared state).
#ifndef STAGEFARM_ENGINE_USER_DB_H_
#define STAGEFARM_ENGINE_USER_DB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace stagefarm::engine {

struct UserIds {
  uint32_t uid = 0;
  uint32_t gid = 0;
  // With groups: the primary group, then the user's supplementary groups.
  std::vector<uint32_t> additional;
};

// "" means root. A name missing from passwd is FAILED_PRECONDITION; an
// unknown numeric uid gets gid 0; "user:group" gives only that group.
absl::StatusOr<UserIds> ResolveUser(const std::string& rootfs,
                                    const std::string& spec, bool with_groups);

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_USER_DB_H_
