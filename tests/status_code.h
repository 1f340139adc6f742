// The code of a Status or of a StatusOr's status, for tests that check how
// an operation failed (not only that it did).
#ifndef STAGEFARM_TESTS_STATUS_CODE_H_
#define STAGEFARM_TESTS_STATUS_CODE_H_

#include "absl/status/statusor.h"

namespace stagefarm::testing {

inline absl::StatusCode CodeOf(const absl::Status& status) {
  return status.code();
}

template <typename T>
absl::StatusCode CodeOf(const absl::StatusOr<T>& status_or) {
  return status_or.status().code();
}

}  // namespace stagefarm::testing

#endif  // STAGEFARM_TESTS_STATUS_CODE_H_
