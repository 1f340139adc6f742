// Early-return helpers for absl::Status and absl::StatusOr<T>. Debian's
// Abseil (20220623) ships neither status macros nor absl/log, so the project
// keeps this one small pair.
#ifndef STAGEFARM_COMMON_STATUS_MACROS_H_
#define STAGEFARM_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SF_STATUS_CONCAT_INNER_(a, b) a##b
#define SF_STATUS_CONCAT_(a, b) SF_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status sf_status_ = (expr);      \
    if (!sf_status_.ok()) return sf_status_; \
  } while (false)

// ASSIGN_OR_RETURN(lhs, expr): evaluates a StatusOr, returns its status on
// error, otherwise moves the value into `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr)                                         \
  SF_ASSIGN_OR_RETURN_IMPL_(SF_STATUS_CONCAT_(sf_statusor_, __LINE__), lhs, \
                            expr)

#define SF_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)     \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // STAGEFARM_COMMON_STATUS_MACROS_H_
