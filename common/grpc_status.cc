#include "common/grpc_status.h"

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/rpc/error_details.pb.h"

namespace stagefarm {
namespace {

constexpr char kPreconditionFailure[] =
    "type.googleapis.com/google.rpc.PreconditionFailure";

// The status's payloads as details of `out`.
void PayloadsTo(const absl::Status& status, google::rpc::Status* out) {
  status.ForEachPayload([out](absl::string_view url, const absl::Cord& value) {
    google::protobuf::Any* any = out->add_details();
    any->set_type_url(std::string(url));
    any->set_value(std::string(value));
  });
}

void PayloadsFrom(const google::rpc::Status& in, absl::Status* status) {
  for (const google::protobuf::Any& any : in.details()) {
    status->SetPayload(any.type_url(), absl::Cord(any.value()));
  }
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status details;
  PayloadsTo(status, &details);
  if (details.details_size() == 0) {
    return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                        std::string(status.message()));
  }
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()),
                      details.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(status.error_code()),
                   status.error_message());
  google::rpc::Status details;
  if (!status.error_details().empty() &&
      details.ParseFromString(status.error_details())) {
    PayloadsFrom(details, &out);
  }
  return out;
}

void ToRpcStatus(const absl::Status& status, google::rpc::Status* out) {
  out->set_code(static_cast<int>(status.code()));
  out->set_message(std::string(status.message()));
  PayloadsTo(status, out);
}

absl::Status FromRpcStatus(const google::rpc::Status& status) {
  absl::Status out(static_cast<absl::StatusCode>(status.code()),
                   status.message());
  if (!out.ok()) PayloadsFrom(status, &out);
  return out;
}

absl::Status MissingBlobs(const std::vector<Digest>& digests,
                          absl::string_view message) {
  google::rpc::PreconditionFailure failure;
  for (const Digest& d : digests) {
    auto* v = failure.add_violations();
    v->set_type("MISSING");
    v->set_subject(absl::StrCat("blobs/", d.hash(), "/", d.size()));
  }
  absl::Status s = absl::FailedPreconditionError(message);
  s.SetPayload(kPreconditionFailure, absl::Cord(failure.SerializeAsString()));
  return s;
}

std::vector<Digest> MissingBlobsOf(const absl::Status& status) {
  std::vector<Digest> out;
  auto payload = status.GetPayload(kPreconditionFailure);
  google::rpc::PreconditionFailure failure;
  if (!payload || !failure.ParseFromString(std::string(*payload))) return out;
  for (const auto& v : failure.violations()) {
    if (v.type() != "MISSING") continue;
    std::vector<absl::string_view> parts = absl::StrSplit(v.subject(), '/');
    int64_t size = 0;
    if (parts.size() != 3 || parts[0] != "blobs" ||
        !absl::SimpleAtoi(parts[2], &size)) {
      continue;
    }
    absl::StatusOr<Digest> d = Digest::Parse(parts[1], size);
    if (d.ok()) out.push_back(*d);
  }
  return out;
}

}  // namespace stagefarm
