// A failed system call as a Status: one mapping of errno to a code for
// every file and process operation (ENOENT is NOT_FOUND, EACCES and EPERM
// PERMISSION_DENIED, ENOSPC and EDQUOT RESOURCE_EXHAUSTED, ENAMETOOLONG
// INVALID_ARGUMENT, the rest INTERNAL), with "WHAT PATH: strerror".
#ifndef STAGEFARM_COMMON_ERRNO_STATUS_H_
#define STAGEFARM_COMMON_ERRNO_STATUS_H_

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace stagefarm {

inline absl::Status ErrnoStatus(int err, absl::string_view what,
                                absl::string_view path) {
  std::string msg =
      path.empty() ? absl::StrCat(what, ": ", std::strerror(err))
                   : absl::StrCat(what, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(msg);
    case ENAMETOOLONG:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_ERRNO_STATUS_H_
