#include "common/cas_client.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/channel.h"
#include "common/grpc_status.h"
#include "common/resource_name.h"
#include "common/status_macros.h"

namespace stagefarm {

std::string NewUuid() {
  uint8_t b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    // Fall back to a weaker source; uniqueness, not secrecy, matters here.
    for (auto& x : b) x = static_cast<uint8_t>(std::rand());
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return absl::StrFormat(
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
      b[12], b[13], b[14], b[15]);
}

std::shared_ptr<grpc::Channel> CasClient::Connect(const std::string& address) {
  return FarmChannel(address);
}

CasClient::CasClient(std::shared_ptr<grpc::Channel> channel,
                     std::string instance_name)
    : instance_name_(std::move(instance_name)),
      cas_(reapi::ContentAddressableStorage::NewStub(channel)),
      ac_(reapi::ActionCache::NewStub(channel)),
      capabilities_(reapi::Capabilities::NewStub(channel)),
      bytestream_(google::bytestream::ByteStream::NewStub(channel)),
      admin_(v1::CasAdmin::NewStub(channel)) {}

absl::StatusOr<std::vector<Digest>> CasClient::FindMissing(
    const std::vector<Digest>& digests) {
  reapi::FindMissingBlobsRequest request;
  request.set_instance_name(instance_name_);
  for (const Digest& d : digests) d.ToProto(request.add_blob_digests());
  reapi::FindMissingBlobsResponse response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(
      FromGrpcStatus(cas_->FindMissingBlobs(&context, request, &response)));
  std::vector<Digest> missing;
  for (const auto& p : response.missing_blob_digests()) {
    ASSIGN_OR_RETURN(Digest d, Digest::FromProto(p, "missing_blob_digests"));
    missing.push_back(d);
  }
  return missing;
}

absl::StatusOr<std::vector<absl::Status>> CasClient::BatchUpdate(
    const std::vector<std::pair<Digest, std::string>>& blobs) {
  reapi::BatchUpdateBlobsRequest request;
  request.set_instance_name(instance_name_);
  for (const auto& [digest, data] : blobs) {
    auto* r = request.add_requests();
    digest.ToProto(r->mutable_digest());
    r->set_data(data);
  }
  reapi::BatchUpdateBlobsResponse response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(
      FromGrpcStatus(cas_->BatchUpdateBlobs(&context, request, &response)));
  std::vector<absl::Status> out;
  for (const auto& r : response.responses())
    out.push_back(FromRpcStatus(r.status()));
  if (out.size() != blobs.size()) {
    return absl::InternalError("BatchUpdateBlobs: wrong number of responses");
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<Digest, absl::StatusOr<std::string>>>>
CasClient::BatchRead(const std::vector<Digest>& digests) {
  reapi::BatchReadBlobsRequest request;
  request.set_instance_name(instance_name_);
  for (const Digest& d : digests) d.ToProto(request.add_digests());
  reapi::BatchReadBlobsResponse response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(
      FromGrpcStatus(cas_->BatchReadBlobs(&context, request, &response)));
  std::vector<std::pair<Digest, absl::StatusOr<std::string>>> out;
  for (auto& r : *response.mutable_responses()) {
    ASSIGN_OR_RETURN(Digest d,
                     Digest::FromProto(r.digest(), "responses.digest"));
    absl::Status s = FromRpcStatus(r.status());
    if (s.ok()) {
      out.emplace_back(d, std::move(*r.mutable_data()));
    } else {
      out.emplace_back(d, s);
    }
  }
  return out;
}

absl::Status CasClient::Write(const Digest& digest, const Source& source,
                              int retries) {
  std::string resource =
      MakeWriteResourceName(instance_name_, NewUuid(), digest);
  int64_t offset = 0;
  std::string pending;  // read from source but not yet acknowledged
  std::vector<char> buf(kChunkBytes);
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext context;
    google::bytestream::WriteResponse response;
    auto stream = bytestream_->Write(&context, &response);
    google::bytestream::WriteRequest request;
    request.set_resource_name(resource);
    bool broken = false;
    bool finished = false;
    while (!broken && !finished) {
      if (pending.empty()) {
        ASSIGN_OR_RETURN(size_t n, source(buf.data(), buf.size()));
        pending.assign(buf.data(), n);
      }
      request.set_write_offset(offset);
      request.set_data(pending);
      finished = offset + static_cast<int64_t>(pending.size()) >= digest.size();
      request.set_finish_write(finished);
      if (pending.empty() && !finished) {
        return absl::DataLossError(absl::StrCat(
            "source ended after ", offset, " of ", digest.size(), " bytes"));
      }
      if (!stream->Write(request)) {
        broken = true;
        break;
      }
      offset += static_cast<int64_t>(pending.size());
      pending.clear();
      request.clear_resource_name();
    }
    stream->WritesDone();
    grpc::Status status = stream->Finish();
    if (status.ok()) {
      if (response.committed_size() != digest.size()) {
        return absl::DataLossError(
            absl::StrCat("server committed ", response.committed_size(), " of ",
                         digest.size(), " bytes"));
      }
      return absl::OkStatus();
    }
    bool retryable =
        status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
        status.error_code() == grpc::StatusCode::ABORTED;
    if (!retryable || attempt >= retries) return FromGrpcStatus(status);
    // Resume where the server stopped; the source cannot rewind, so the
    // upload restarts only if the server kept everything we sent.
    grpc::ClientContext query_context;
    google::bytestream::QueryWriteStatusRequest query;
    query.set_resource_name(resource);
    google::bytestream::QueryWriteStatusResponse query_response;
    grpc::Status qs =
        bytestream_->QueryWriteStatus(&query_context, query, &query_response);
    if (!qs.ok()) return FromGrpcStatus(status);
    if (query_response.complete()) return absl::OkStatus();
    if (query_response.committed_size() != offset)
      return FromGrpcStatus(status);
  }
}

absl::Status CasClient::WriteString(const std::string& data) {
  size_t pos = 0;
  return Write(Digest::Of(data),
               [&](char* buf, size_t max) -> absl::StatusOr<size_t> {
                 size_t n = std::min(max, data.size() - pos);
                 std::memcpy(buf, data.data() + pos, n);
                 pos += n;
                 return n;
               });
}

absl::Status CasClient::WriteFile(const std::string& path, Digest* digest_out) {
  // First pass hashes, second streams: the file never sits in memory.
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  Sha256 hash;
  std::vector<char> buf(kChunkBytes);
  int64_t size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    hash.Update(
        absl::string_view(buf.data(), static_cast<size_t>(in.gcount())));
    size += in.gcount();
  }
  Digest digest = Digest::FromRaw(hash.Final(), size);
  if (digest_out) *digest_out = digest;
  ASSIGN_OR_RETURN(std::vector<Digest> missing, FindMissing({digest}));
  if (missing.empty()) return absl::OkStatus();
  in.clear();
  in.seekg(0);
  return Write(digest, [&](char* out, size_t max) -> absl::StatusOr<size_t> {
    in.read(out, static_cast<std::streamsize>(max));
    if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", path));
    return static_cast<size_t>(in.gcount());
  });
}

absl::Status CasClient::Read(const Digest& digest, const Sink& sink,
                             int64_t offset, int64_t limit) {
  grpc::ClientContext context;
  google::bytestream::ReadRequest request;
  request.set_resource_name(MakeReadResourceName(instance_name_, digest));
  request.set_read_offset(offset);
  request.set_read_limit(limit);
  auto reader = bytestream_->Read(&context, request);
  google::bytestream::ReadResponse response;
  absl::Status sink_status;
  while (reader->Read(&response)) {
    sink_status = sink(response.data());
    if (!sink_status.ok()) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  RETURN_IF_ERROR(sink_status);
  return FromGrpcStatus(status);
}

absl::StatusOr<std::string> CasClient::ReadString(const Digest& digest) {
  std::string out;
  RETURN_IF_ERROR(Read(digest, [&](absl::string_view chunk) {
    out.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<reapi::ActionResult> CasClient::GetActionResult(
    const Digest& action) {
  reapi::GetActionResultRequest request;
  request.set_instance_name(instance_name_);
  action.ToProto(request.mutable_action_digest());
  reapi::ActionResult result;
  grpc::ClientContext context;
  RETURN_IF_ERROR(
      FromGrpcStatus(ac_->GetActionResult(&context, request, &result)));
  return result;
}

absl::Status CasClient::UpdateActionResult(const Digest& action,
                                           const reapi::ActionResult& result,
                                           const std::string& bearer_token) {
  reapi::UpdateActionResultRequest request;
  request.set_instance_name(instance_name_);
  action.ToProto(request.mutable_action_digest());
  *request.mutable_action_result() = result;
  reapi::ActionResult response;
  grpc::ClientContext context;
  if (!bearer_token.empty()) {
    context.AddMetadata("authorization", "Bearer " + bearer_token);
  }
  return FromGrpcStatus(ac_->UpdateActionResult(&context, request, &response));
}

absl::StatusOr<reapi::ServerCapabilities> CasClient::GetCapabilities() {
  reapi::GetCapabilitiesRequest request;
  request.set_instance_name(instance_name_);
  reapi::ServerCapabilities response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(FromGrpcStatus(
      capabilities_->GetCapabilities(&context, request, &response)));
  return response;
}

absl::StatusOr<v1::GetStatsResponse> CasClient::GetStats() {
  v1::GetStatsRequest request;
  v1::GetStatsResponse response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(
      FromGrpcStatus(admin_->GetStats(&context, request, &response)));
  return response;
}

}  // namespace stagefarm
