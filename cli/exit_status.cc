#include "cli/exit_status.h"

#include <iostream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace stagefarm::cli {

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return absl::IsInvalidArgument(status) ? kUsageError : kFailure;
}

absl::StatusOr<Digest> ParseDigestArg(const std::string& arg) {
  std::vector<std::string> parts = absl::StrSplit(arg, '/');
  int64_t size = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &size)) {
    return absl::InvalidArgumentError(
        "digest \"" + arg + "\": expected HASH/SIZE (sha256 hex, bytes)");
  }
  return Digest::Parse(parts[0], size, "digest");
}

}  // namespace stagefarm::cli
