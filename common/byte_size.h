// Sizes in bytes as Docker takes them (go-units RAMInBytes, behind
// `docker run --memory` and `docker build --shm-size`): a decimal number,
// an optional space, and an optional unit b, k, m, g, t or p (powers of
// 1024, any case) that may be followed by "b" or "ib": "256m", "1g",
// "512KiB", "1.5g", "1048576". Pure; thread-safe.
#ifndef STAGEFARM_COMMON_BYTE_SIZE_H_
#define STAGEFARM_COMMON_BYTE_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm {

// INVALID_ARGUMENT naming `text` (escaped) and what is wrong; OUT_OF_RANGE
// past 2^63-1 bytes. A fraction of a byte is dropped, as Docker does.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

// `bytes` in the largest binary unit that keeps it short: "256 MiB",
// "1.5 GiB", "300 B".
std::string FormatBinaryBytes(int64_t bytes);

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_BYTE_SIZE_H_
