// The one place where absl::Status and grpc::Status convert into each other.
// Codes map one to one (both follow google.rpc.Code).
#ifndef STAGEFARM_COMMON_GRPC_STATUS_H_
#define STAGEFARM_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"

namespace stagefarm {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
// For per-item results inside batch responses.
void ToRpcStatus(const absl::Status& status, google::rpc::Status* out);
absl::Status FromRpcStatus(const google::rpc::Status& status);

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_GRPC_STATUS_H_
