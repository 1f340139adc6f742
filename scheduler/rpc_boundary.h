// The boundary of an RPC handler: an exception that escapes a handler (a
// library's, thrown on a request's content) answers INTERNAL with its text
// and is logged, instead of aborting the server or gRPC's own catch-all
// answer (UNKNOWN "Unexpected error in RPC handling", the text lost).
#ifndef STAGEFARM_SCHEDULER_RPC_BOUNDARY_H_
#define STAGEFARM_SCHEDULER_RPC_BOUNDARY_H_

#include <grpcpp/grpcpp.h>

#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/log.h"

namespace stagefarm::scheduler {

// Runs `handler` (returning grpc::Status) for the RPC named `rpc`.
template <typename F>
grpc::Status ContainRpc(absl::string_view rpc, F&& handler) {
  std::string what;
  try {
    return handler();
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an unknown exception";
  }
  std::string message = absl::StrCat(rpc, ": internal error: ", what);
  LogError(message, {{"rpc", std::string(rpc)}});
  return grpc::Status(grpc::StatusCode::INTERNAL, message);
}

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_RPC_BOUNDARY_H_
