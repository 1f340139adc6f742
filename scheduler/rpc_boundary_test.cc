#include "scheduler/rpc_boundary.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace stagefarm::scheduler {
namespace {

TEST(ContainRpc, AnExceptionAnswersInternalWithItsText) {
  grpc::Status s = ContainRpc("Report", []() -> grpc::Status {
    throw std::runtime_error("incomplete UTF-8 string; last byte: 0xE9");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(s.error_message().find("Report: internal error: "),
            std::string::npos);
  EXPECT_NE(s.error_message().find("UTF-8"), std::string::npos)
      << s.error_message();
}

TEST(ContainRpc, AnythingThrownIsContained) {
  grpc::Status s = ContainRpc("Lease", []() -> grpc::Status { throw 7; });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message(), "Lease: internal error: an unknown exception");
}

TEST(ContainRpc, TheHandlersOwnStatusPassesThrough) {
  grpc::Status s = ContainRpc("GetBuild", [] {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no build x");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no build x");
}

}  // namespace
}  // namespace stagefarm::scheduler
