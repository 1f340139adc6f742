// ByteStream resource names as REAPI v2 defines them:
//   read:  {instance_name}/blobs/[{digest_function}/]{hash}/{size}[/{filename}]
//   write:
//   {instance_name}/uploads/{uuid}/blobs/[{digest_function}/]{hash}/{size}[/{metadata}]
// The instance name may contain slashes but no segment named "blobs",
// "uploads", "compressed-blobs", "actions", "actionResults", "operations" or
// "capabilities". Pure; thread-compatible.
#ifndef STAGEFARM_COMMON_RESOURCE_NAME_H_
#define STAGEFARM_COMMON_RESOURCE_NAME_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/digest.h"

namespace stagefarm {

struct ReadResourceName {
  std::string instance_name;
  Digest digest;
};

struct WriteResourceName {
  std::string instance_name;
  std::string uuid;
  Digest digest;
};

absl::StatusOr<ReadResourceName> ParseReadResourceName(absl::string_view name);
absl::StatusOr<WriteResourceName> ParseWriteResourceName(
    absl::string_view name);

std::string MakeReadResourceName(absl::string_view instance_name,
                                 const Digest& digest);
std::string MakeWriteResourceName(absl::string_view instance_name,
                                  absl::string_view uuid, const Digest& digest);

// Checks an instance name from any request: no empty segments, no reserved
// segment names, no NUL, at most 1024 bytes. `field` names the field.
absl::Status ValidateInstanceName(absl::string_view instance_name,
                                  absl::string_view field = "instance_name");

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_RESOURCE_NAME_H_
