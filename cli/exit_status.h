// How every `stagefarm` command ends on an error: the message on stderr
// and the exit status (2 for a usage error, 1 for any other failure).
#ifndef STAGEFARM_CLI_EXIT_STATUS_H_
#define STAGEFARM_CLI_EXIT_STATUS_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/digest.h"

namespace stagefarm::cli {

constexpr int kFailure = 1;
constexpr int kUsageError = 2;

// Prints "error: MESSAGE" on stderr; returns the exit status: 2 for
// INVALID_ARGUMENT, else 1.
int Fail(const absl::Status& status);

// "HASH/SIZE" as the CAS commands print digests.
absl::StatusOr<Digest> ParseDigestArg(const std::string& arg);

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_EXIT_STATUS_H_
