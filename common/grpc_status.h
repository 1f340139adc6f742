// The one place where absl::Status and grpc::Status convert into each other.
// Codes map one to one (both follow google.rpc.Code). An absl::Status's
// payloads are google.rpc.Status details: the payload's URL is the Any's
// type URL and its bytes the Any's value, both ways (on a grpc::Status as
// the serialized google.rpc.Status in its binary details).
#ifndef STAGEFARM_COMMON_GRPC_STATUS_H_
#define STAGEFARM_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <vector>

#include "absl/status/status.h"
#include "common/digest.h"
#include "google/rpc/status.pb.h"

namespace stagefarm {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
// For per-item results inside batch responses, and ExecuteResponse.status.
void ToRpcStatus(const absl::Status& status, google::rpc::Status* out);
absl::Status FromRpcStatus(const google::rpc::Status& status);

// REAPI's answer for blobs an action needs that the CAS lacks:
// FAILED_PRECONDITION with a google.rpc.PreconditionFailure detail, one
// violation {type "MISSING", subject "blobs/HASH/SIZE"} a blob, which tells
// a client (Bazel) to upload them and try again.
absl::Status MissingBlobs(const std::vector<Digest>& digests,
                          absl::string_view message);
// The blobs a status made by MissingBlobs names (empty for any other).
std::vector<Digest> MissingBlobsOf(const absl::Status& status);

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_GRPC_STATUS_H_
