// Status conversions keep codes, messages and details, and REAPI's
// missing-blob answer round-trips through gRPC and google.rpc.Status.
#include "common/grpc_status.h"

#include <gtest/gtest.h>

namespace stagefarm {
namespace {

TEST(GrpcStatus, CodesAndMessagesBothWays) {
  absl::Status s = absl::NotFoundError("no blob");
  grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(g.error_message(), "no blob");
  EXPECT_TRUE(g.error_details().empty());
  EXPECT_EQ(FromGrpcStatus(g), s);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  google::rpc::Status r;
  ToRpcStatus(s, &r);
  EXPECT_EQ(r.code(), 5);
  EXPECT_EQ(FromRpcStatus(r), s);
}

TEST(GrpcStatus, MissingBlobsRoundTrip) {
  std::vector<Digest> blobs = {Digest::Of("a"), Digest::Of("bb")};
  absl::Status s = MissingBlobs(blobs, "inputs are missing");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MissingBlobsOf(s), blobs);
  // Through gRPC's binary details.
  grpc::Status g = ToGrpcStatus(s);
  EXPECT_FALSE(g.error_details().empty());
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(g.error_details()));
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(),
            "type.googleapis.com/google.rpc.PreconditionFailure");
  EXPECT_EQ(MissingBlobsOf(FromGrpcStatus(g)), blobs);
  // Through google.rpc.Status (ExecuteResponse.status).
  google::rpc::Status r;
  ToRpcStatus(s, &r);
  EXPECT_EQ(MissingBlobsOf(FromRpcStatus(r)), blobs);
  // Any other status names none.
  EXPECT_TRUE(MissingBlobsOf(absl::NotFoundError("x")).empty());
}

}  // namespace
}  // namespace stagefarm
