// The boundary where a library's exception stops: a step, a stage, an RPC
// handler, a worker's task, a command. What escapes `f` becomes an INTERNAL
// status naming `where` and the exception's text, so no input can abort a
// process. Inside the boundary, code reports errors as absl::Status.
#ifndef STAGEFARM_COMMON_CONTAIN_H_
#define STAGEFARM_COMMON_CONTAIN_H_

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace stagefarm {

// Runs `f` (returning absl::Status or absl::StatusOr<T>) and returns its
// result, or INTERNAL "WHERE: internal error: WHAT" if it threw.
template <typename F>
auto ContainExceptions(absl::string_view where, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(where, ": internal error: ", e.what()));
  } catch (...) {
    return absl::InternalError(
        absl::StrCat(where, ": internal error: an unknown exception"));
  }
}

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_CONTAIN_H_
