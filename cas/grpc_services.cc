#include "cas/grpc_services.h"

#include <deque>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/resource_name.h"
#include "common/status_macros.h"

namespace stagefarm {

CasTraffic& Traffic() {
  static auto* traffic = new CasTraffic();
  return *traffic;
}
namespace {

using google::bytestream::QueryWriteStatusRequest;
using google::bytestream::QueryWriteStatusResponse;
using google::bytestream::ReadRequest;
using google::bytestream::ReadResponse;
using google::bytestream::WriteRequest;
using google::bytestream::WriteResponse;

// GetTree pages hold at most this many directories and bytes.
constexpr int kDefaultTreePageSize = 10000;
constexpr size_t kMaxTreePageBytes = 2 << 20;

grpc::Status Rpc(const absl::Status& status) { return ToGrpcStatus(status); }

// An upload whose bytes are not its digest: the store's DATA_LOSS, and
// REAPI's INVALID_ARGUMENT (BatchUpdateBlobs per blob, ByteStream.Write).
absl::Status UploadStatus(const absl::Status& status) {
  if (!absl::IsDataLoss(status)) return status;
  return absl::InvalidArgumentError(status.message());
}

// REAPI: more than the server's limit is INVALID_ARGUMENT.
grpc::Status TooManyItems(absl::string_view field, int n, int max) {
  return Rpc(absl::InvalidArgumentError(absl::StrCat(
      field, ": ", n, " items exceed the limit of ", max, " per request")));
}

}  // namespace

// ------------------------------------------------ ContentAddressableStorage

grpc::Status CasService::FindMissingBlobs(
    grpc::ServerContext* context, const reapi::FindMissingBlobsRequest* request,
    reapi::FindMissingBlobsResponse* response) {
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  if (request->blob_digests_size() > limits_.max_batch_items) {
    return TooManyItems("blob_digests", request->blob_digests_size(),
                        limits_.max_batch_items);
  }
  std::vector<Digest> digests;
  digests.reserve(request->blob_digests_size());
  for (int i = 0; i < request->blob_digests_size(); ++i) {
    absl::StatusOr<Digest> d = Digest::FromProto(
        request->blob_digests(i), absl::StrCat("blob_digests[", i, "]"));
    if (!d.ok()) return Rpc(d.status());
    digests.push_back(*d);
  }
  absl::StatusOr<std::vector<Digest>> missing =
      store_->FindMissing(*ns, digests);
  if (!missing.ok()) return Rpc(missing.status());
  for (const Digest& d : *missing)
    d.ToProto(response->add_missing_blob_digests());
  return grpc::Status::OK;
}

grpc::Status CasService::BatchUpdateBlobs(
    grpc::ServerContext* context, const reapi::BatchUpdateBlobsRequest* request,
    reapi::BatchUpdateBlobsResponse* response) {
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  if (request->requests_size() > limits_.max_batch_items) {
    return TooManyItems("requests", request->requests_size(),
                        limits_.max_batch_items);
  }
  int64_t total = 0;
  std::vector<std::pair<Digest, absl::string_view>> items;
  std::vector<absl::Status> pre(request->requests_size());
  std::vector<int> item_index;
  for (int i = 0; i < request->requests_size(); ++i) {
    const auto& r = request->requests(i);
    total += static_cast<int64_t>(r.data().size());
    absl::StatusOr<Digest> d =
        Digest::FromProto(r.digest(), absl::StrCat("requests[", i, "].digest"));
    if (!d.ok()) {
      pre[i] = d.status();
    } else if (d->size() != static_cast<int64_t>(r.data().size())) {
      pre[i] = absl::InvalidArgumentError(
          absl::StrCat("requests[", i, "].digest.size_bytes is ", d->size(),
                       " but data has ", r.data().size(), " bytes"));
    } else {
      items.emplace_back(*d, r.data());
      item_index.push_back(i);
    }
  }
  if (total > limits_.max_batch_total_size_bytes) {
    return Rpc(absl::InvalidArgumentError(absl::StrCat(
        "requests: ", total, " bytes exceed max_batch_total_size_bytes ",
        limits_.max_batch_total_size_bytes, "; use ByteStream.Write")));
  }
  std::vector<absl::Status> results = store_->PutBatch(*ns, items);
  Traffic().bytes_received += total;
  for (size_t k = 0; k < results.size(); ++k) pre[item_index[k]] = results[k];
  for (int i = 0; i < request->requests_size(); ++i) {
    auto* out = response->add_responses();
    *out->mutable_digest() = request->requests(i).digest();
    ToRpcStatus(UploadStatus(pre[i]), out->mutable_status());
  }
  return grpc::Status::OK;
}

grpc::Status CasService::BatchReadBlobs(
    grpc::ServerContext* context, const reapi::BatchReadBlobsRequest* request,
    reapi::BatchReadBlobsResponse* response) {
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  if (request->digests_size() > limits_.max_batch_items) {
    return TooManyItems("digests", request->digests_size(),
                        limits_.max_batch_items);
  }
  std::vector<Digest> digests;
  int64_t total = 0;
  for (int i = 0; i < request->digests_size(); ++i) {
    absl::StatusOr<Digest> d = Digest::FromProto(
        request->digests(i), absl::StrCat("digests[", i, "]"));
    if (!d.ok()) return Rpc(d.status());
    // Compare before adding: claimed sizes could overflow a sum.
    if (d->size() > limits_.max_batch_total_size_bytes - total) {
      total = limits_.max_batch_total_size_bytes + 1;
      break;
    }
    total += d->size();
    digests.push_back(*d);
  }
  if (total > limits_.max_batch_total_size_bytes) {
    return Rpc(absl::InvalidArgumentError(absl::StrCat(
        "digests: ", total, " bytes exceed max_batch_total_size_bytes ",
        limits_.max_batch_total_size_bytes, "; use ByteStream.Read")));
  }
  for (const Digest& d : digests) {
    auto* out = response->add_responses();
    d.ToProto(out->mutable_digest());
    absl::StatusOr<std::string> data = store_->Get(*ns, d);
    if (data.ok()) {
      Traffic().bytes_sent += static_cast<int64_t>(data->size());
      *out->mutable_data() = std::move(*data);
      ToRpcStatus(absl::OkStatus(), out->mutable_status());
    } else {
      ToRpcStatus(data.status(), out->mutable_status());
    }
  }
  return grpc::Status::OK;
}

grpc::Status CasService::GetTree(
    grpc::ServerContext* context, const reapi::GetTreeRequest* request,
    grpc::ServerWriter<reapi::GetTreeResponse>* writer) {
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  absl::StatusOr<Digest> root =
      Digest::FromProto(request->root_digest(), "root_digest");
  if (!root.ok()) return Rpc(root.status());
  if (request->page_size() < 0) {
    return Rpc(absl::InvalidArgumentError("page_size: negative"));
  }
  int page_size =
      request->page_size() > 0 ? request->page_size() : kDefaultTreePageSize;
  // The page token is the number of directories already returned, in the
  // breadth-first order of the tree (deterministic for one root).
  int64_t skip = 0;
  if (!request->page_token().empty() &&
      (!absl::SimpleAtoi(request->page_token(), &skip) || skip < 0)) {
    return Rpc(absl::InvalidArgumentError(
        absl::StrCat("page_token: \"", request->page_token(),
                     "\" is not from this server")));
  }
  std::deque<Digest> queue{*root};
  absl::flat_hash_set<Digest> seen{*root};
  int64_t index = 0;
  reapi::GetTreeResponse page;
  size_t page_bytes = 0;
  bool first = true;
  while (!queue.empty()) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    Digest d = queue.front();
    queue.pop_front();
    absl::StatusOr<std::string> bytes = store_->Get(*ns, d);
    if (!bytes.ok()) {
      if (first) return Rpc(bytes.status());
      continue;  // REAPI: return the portion of the tree that is present.
    }
    first = false;
    reapi::Directory dir;
    if (!dir.ParseFromString(*bytes)) {
      return Rpc(absl::InvalidArgumentError(
          absl::StrCat("directory ", d.ToString(), " is not a Directory")));
    }
    for (int i = 0; i < dir.directories_size(); ++i) {
      absl::StatusOr<Digest> child = Digest::FromProto(
          dir.directories(i).digest(),
          absl::StrCat("directory ", d.ToString(), " child ", i));
      if (!child.ok()) return Rpc(child.status());
      if (seen.insert(*child).second) queue.push_back(*child);
    }
    if (index++ < skip) continue;
    page_bytes += bytes->size();
    *page.add_directories() = std::move(dir);
    if (page.directories_size() >= page_size ||
        page_bytes >= kMaxTreePageBytes) {
      if (!queue.empty()) page.set_next_page_token(absl::StrCat(index));
      if (!writer->Write(page)) return grpc::Status::CANCELLED;
      page.Clear();
      page_bytes = 0;
    }
  }
  if (page.directories_size() > 0 || index <= skip) writer->Write(page);
  return grpc::Status::OK;
}

// ------------------------------------------------------------ Capabilities

grpc::Status CapabilitiesService::GetCapabilities(
    grpc::ServerContext* context, const reapi::GetCapabilitiesRequest* request,
    reapi::ServerCapabilities* response) {
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  auto* cache = response->mutable_cache_capabilities();
  cache->add_digest_function(reapi::DigestFunction::SHA256);
  cache->mutable_action_cache_update_capabilities()->set_update_enabled(
      policy_->action_cache_writable_by_anyone());
  cache->set_max_batch_total_size_bytes(limits_.max_batch_total_size_bytes);
  cache->set_symlink_absolute_path_strategy(
      reapi::SymlinkAbsolutePathStrategy::ALLOWED);
  if (execution_) {
    auto* exec = response->mutable_execution_capabilities();
    exec->set_digest_function(reapi::DigestFunction::SHA256);
    exec->set_exec_enabled(true);
  }
  response->mutable_low_api_version()->set_major(2);
  response->mutable_high_api_version()->set_major(2);
  return grpc::Status::OK;
}

// ------------------------------------------------------------- ActionCache

grpc::Status ActionCacheService::GetActionResult(
    grpc::ServerContext* context, const reapi::GetActionResultRequest* request,
    reapi::ActionResult* response) {
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  absl::StatusOr<Digest> action =
      Digest::FromProto(request->action_digest(), "action_digest");
  if (!action.ok()) return Rpc(action.status());
  InlineRequest inline_request;
  inline_request.stdout_raw = request->inline_stdout();
  inline_request.stderr_raw = request->inline_stderr();
  inline_request.output_files.assign(request->inline_output_files().begin(),
                                     request->inline_output_files().end());
  absl::StatusOr<reapi::ActionResult> result =
      cache_->Get(*ns, *action, inline_request);
  ++(result.ok() ? Traffic().action_hits : Traffic().action_misses);
  if (!result.ok()) return Rpc(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status ActionCacheService::UpdateActionResult(
    grpc::ServerContext* context,
    const reapi::UpdateActionResultRequest* request,
    reapi::ActionResult* response) {
  absl::Status allowed = policy_->CheckActionCacheWrite(context);
  if (!allowed.ok()) return Rpc(allowed);
  absl::StatusOr<std::string> ns =
      policy_->Namespace(context, request->instance_name());
  if (!ns.ok()) return Rpc(ns.status());
  absl::StatusOr<Digest> action =
      Digest::FromProto(request->action_digest(), "action_digest");
  if (!action.ok()) return Rpc(action.status());
  absl::Status s = cache_->Update(*ns, *action, request->action_result());
  if (!s.ok()) return Rpc(s);
  *response = request->action_result();
  return grpc::Status::OK;
}

// -------------------------------------------------------------- ByteStream

grpc::Status ByteStreamService::Read(grpc::ServerContext* context,
                                     const ReadRequest* request,
                                     grpc::ServerWriter<ReadResponse>* writer) {
  absl::StatusOr<ReadResourceName> name =
      ParseReadResourceName(request->resource_name());
  if (!name.ok()) return Rpc(name.status());
  absl::StatusOr<std::string> ns = policy_->Namespace(
      context, name->instance_name, "resource_name instance");
  if (!ns.ok()) return Rpc(ns.status());
  if (request->read_offset() < 0) {
    return Rpc(absl::OutOfRangeError(
        absl::StrCat("read_offset: negative (", request->read_offset(), ")")));
  }
  absl::StatusOr<std::unique_ptr<BlobReader>> reader = store_->OpenRead(
      *ns, name->digest, request->read_offset(), request->read_limit());
  if (!reader.ok()) return Rpc(reader.status());
  ReadResponse response;
  grpc::WriteOptions options;
  while (true) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    response.mutable_data()->clear();
    absl::StatusOr<size_t> n = (*reader)->Read(
        static_cast<size_t>(limits_.read_chunk_bytes), response.mutable_data());
    if (!n.ok()) return Rpc(n.status());
    if (*n == 0) break;
    Traffic().bytes_sent += static_cast<int64_t>(*n);
    if (!writer->Write(response, options)) return grpc::Status::CANCELLED;
  }
  return grpc::Status::OK;
}

grpc::Status ByteStreamService::Write(grpc::ServerContext* context,
                                      grpc::ServerReader<WriteRequest>* reader,
                                      WriteResponse* response) {
  WriteRequest request;
  if (!reader->Read(&request)) {
    return Rpc(absl::InvalidArgumentError("Write: no requests in the stream"));
  }
  const std::string resource = request.resource_name();
  absl::StatusOr<WriteResourceName> name = ParseWriteResourceName(resource);
  if (!name.ok()) return Rpc(name.status());
  absl::StatusOr<std::string> ns = policy_->Namespace(
      context, name->instance_name, "resource_name instance");
  if (!ns.ok()) return Rpc(ns.status());
  absl::StatusOr<std::unique_ptr<BlobWriter>> writer = store_->OpenWrite(
      *ns, name->digest, resource.substr(0, resource.find("/blobs/")));
  if (!writer.ok()) return Rpc(writer.status());
  BlobWriter& w = **writer;
  if (w.already_complete()) {
    // REAPI: the server may answer at once when the blob is already present.
    response->set_committed_size(name->digest.size());
    return grpc::Status::OK;
  }
  while (true) {
    if (!request.resource_name().empty() &&
        request.resource_name() != resource) {
      return Rpc(absl::InvalidArgumentError(
          absl::StrCat("resource_name: changed within the stream to \"",
                       request.resource_name(), "\"")));
    }
    // A client that resumes from an older offset (or restarts from zero)
    // resends bytes the server already holds: skip them. The final digest
    // check covers the whole blob either way.
    absl::string_view data = request.data();
    int64_t offset = request.write_offset();
    if (offset < 0 || offset > w.committed_bytes()) {
      return Rpc(absl::InvalidArgumentError(absl::StrCat(
          "write_offset: ", offset, " is past the committed size ",
          w.committed_bytes(), " (resume at the committed size)")));
    }
    int64_t overlap = std::min<int64_t>(w.committed_bytes() - offset,
                                        static_cast<int64_t>(data.size()));
    data.remove_prefix(static_cast<size_t>(overlap));
    absl::Status s = w.Write(offset + overlap, data);
    if (!s.ok()) return Rpc(s);
    Traffic().bytes_received += static_cast<int64_t>(data.size());
    if (request.finish_write()) {
      s = w.Finish();
      if (!s.ok()) return Rpc(UploadStatus(s));
      response->set_committed_size(w.committed_bytes());
      return grpc::Status::OK;
    }
    if (!reader->Read(&request)) break;
  }
  // The client went away or closed early: what it sent stays resumable.
  return Rpc(absl::InvalidArgumentError(absl::StrCat(
      "Write: stream ended without finish_write after ", w.committed_bytes(),
      " bytes; resume from there with the same resource_name")));
}

grpc::Status ByteStreamService::QueryWriteStatus(
    grpc::ServerContext* context, const QueryWriteStatusRequest* request,
    QueryWriteStatusResponse* response) {
  const std::string& resource = request->resource_name();
  absl::StatusOr<WriteResourceName> name = ParseWriteResourceName(resource);
  if (!name.ok()) return Rpc(name.status());
  absl::StatusOr<std::string> ns = policy_->Namespace(
      context, name->instance_name, "resource_name instance");
  if (!ns.ok()) return Rpc(ns.status());
  absl::StatusOr<int64_t> committed = store_->QueryWrite(
      *ns, name->digest, resource.substr(0, resource.find("/blobs/")));
  if (!committed.ok()) return Rpc(committed.status());
  response->set_committed_size(*committed);
  absl::StatusOr<std::vector<Digest>> missing =
      store_->FindMissing(*ns, {name->digest});
  response->set_complete(missing.ok() && missing->empty());
  return grpc::Status::OK;
}

// ---------------------------------------------------------------- CasAdmin

grpc::Status CasAdminService::GetStats(grpc::ServerContext* /*context*/,
                                       const v1::GetStatsRequest*,
                                       v1::GetStatsResponse* response) {
  StoreStats s = stats_();
  response->set_stored_bytes(s.stored_bytes);
  response->set_blob_count(s.blob_count);
  response->set_max_bytes(s.max_bytes);
  response->set_evicted_blobs(s.evicted_blobs);
  response->set_evicted_bytes(s.evicted_bytes);
  response->set_action_cache_entries(s.action_cache_entries);
  response->set_uploads_in_progress(s.uploads_in_progress);
  return grpc::Status::OK;
}

}  // namespace stagefarm
