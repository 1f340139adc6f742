#include "blobstore/remote_store.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/resource_name.h"
#include "common/status_macros.h"

namespace stagefarm {
namespace {

class RemoteReader : public BlobReader {
 public:
  RemoteReader(google::bytestream::ByteStream::Stub* stub,
               const std::string& resource, int64_t offset, int64_t limit) {
    google::bytestream::ReadRequest request;
    request.set_resource_name(resource);
    request.set_read_offset(offset);
    request.set_read_limit(limit);
    stream_ = stub->Read(&context_, request);
  }
  ~RemoteReader() override {
    if (!done_) {
      context_.TryCancel();
      stream_->Finish().ok();
    }
  }

  // Reads the first message, so that a missing blob is known at open.
  absl::Status Start() { return Next(); }

  absl::StatusOr<size_t> Read(size_t max_bytes, std::string* out) override {
    if (pending_.empty() && !done_) RETURN_IF_ERROR(Next());
    size_t n = std::min(max_bytes, pending_.size() - pos_);
    out->append(pending_, pos_, n);
    pos_ += n;
    if (pos_ == pending_.size()) {
      pending_.clear();
      pos_ = 0;
    }
    return n;
  }

 private:
  absl::Status Next() {
    google::bytestream::ReadResponse response;
    // Skip empty messages; the stream's end is the blob's end.
    while (stream_->Read(&response)) {
      if (response.data().empty()) continue;
      pending_ = std::move(*response.mutable_data());
      pos_ = 0;
      return absl::OkStatus();
    }
    done_ = true;
    return FromGrpcStatus(stream_->Finish());
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<google::bytestream::ReadResponse>> stream_;
  std::string pending_;
  size_t pos_ = 0;
  bool done_ = false;
};

class RemoteWriter : public BlobWriter {
 public:
  // `after` runs once the CAS has the whole blob (copies it to replicas).
  RemoteWriter(google::bytestream::ByteStream::Stub* stub, std::string resource,
               const Digest& digest, bool present,
               std::function<absl::Status()> after)
      : resource_(std::move(resource)),
        digest_(digest),
        present_(present),
        after_(std::move(after)) {
    if (!present_) stream_ = stub->Write(&context_, &response_);
  }
  ~RemoteWriter() override {
    if (stream_ != nullptr && !finished_) {
      context_.TryCancel();
      stream_->Finish().ok();
    }
  }

  int64_t committed_bytes() const override {
    return present_ ? digest_.size() : sent_;
  }
  bool already_complete() const override { return present_; }

  absl::Status Write(int64_t offset, absl::string_view data) override {
    if (present_) return absl::OkStatus();
    if (offset != sent_) {
      return absl::InvalidArgumentError(
          absl::StrCat("write at offset ", offset, ", expected ", sent_));
    }
    if (sent_ + static_cast<int64_t>(data.size()) > digest_.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("data runs past the blob's ", digest_.size(), " bytes"));
    }
    google::bytestream::WriteRequest request;
    if (sent_ == 0) request.set_resource_name(resource_);
    request.set_write_offset(sent_);
    request.set_data(std::string(data));
    if (!stream_->Write(request)) return Broken();
    sent_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    if (present_) return absl::OkStatus();
    if (sent_ != digest_.size()) {
      return absl::DataLossError(absl::StrCat(
          "blob ", digest_.ToString(), " ended after ", sent_, " bytes"));
    }
    google::bytestream::WriteRequest request;
    if (sent_ == 0) request.set_resource_name(resource_);
    request.set_write_offset(sent_);
    request.set_finish_write(true);
    if (!stream_->Write(request)) return Broken();
    absl::Status closed = Close();
    // REAPI's answer to bytes that are not the digest, at the commit: the
    // interface's DATA_LOSS.
    if (absl::IsInvalidArgument(closed)) {
      return absl::DataLossError(closed.message());
    }
    RETURN_IF_ERROR(closed);
    return after_ ? after_() : absl::OkStatus();
  }

 private:
  absl::Status Broken() {
    absl::Status s = Close();
    return s.ok() ? absl::UnavailableError("the CAS closed the upload") : s;
  }
  absl::Status Close() {
    finished_ = true;
    stream_->WritesDone();
    RETURN_IF_ERROR(FromGrpcStatus(stream_->Finish()));
    if (response_.committed_size() != digest_.size()) {
      return absl::DataLossError(
          absl::StrCat("the CAS committed ", response_.committed_size(), " of ",
                       digest_.size(), " bytes"));
    }
    return absl::OkStatus();
  }

  std::string resource_;
  Digest digest_;
  bool present_;
  std::function<absl::Status()> after_;
  grpc::ClientContext context_;
  google::bytestream::WriteResponse response_;
  std::unique_ptr<grpc::ClientWriter<google::bytestream::WriteRequest>> stream_;
  int64_t sent_ = 0;
  bool finished_ = false;
};

}  // namespace

absl::StatusOr<std::vector<Digest>> RemoteBlobStore::FindMissing(
    absl::string_view ns, absl::Span<const Digest> digests) {
  ASSIGN_OR_RETURN(CasClient * client, Client(ns));
  return client->FindMissing(
      std::vector<Digest>(digests.begin(), digests.end()));
}

std::vector<absl::Status> RemoteBlobStore::PutBatch(
    absl::string_view ns,
    absl::Span<const std::pair<Digest, absl::string_view>> blobs) {
  std::vector<absl::Status> results(blobs.size());
  absl::StatusOr<CasClient*> client = Client(ns);
  if (!client.ok()) {
    std::fill(results.begin(), results.end(), client.status());
    return results;
  }
  BatchUploader batches(
      *client, [&](size_t i, const absl::Status& s, bool whole_request) {
        // REAPI's per-blob INVALID_ARGUMENT is a digest that does not match the
        // data: the interface's DATA_LOSS.
        results[i] = !whole_request && absl::IsInvalidArgument(s)
                         ? absl::DataLossError(s.message())
                         : s;
      });
  for (size_t i = 0; i < blobs.size(); ++i) {
    const auto& [digest, data] = blobs[i];
    if (digest.size() > BatchUploader::kBatchBytes) {
      results[i] = (*client)->Write(
          digest,
          [data = data, pos = size_t{0}](
              char* buf, size_t max) mutable -> absl::StatusOr<size_t> {
            size_t n = std::min(max, data.size() - pos);
            std::copy_n(data.data() + pos, n, buf);
            pos += n;
            return n;
          });
      continue;
    }
    batches.Add(i, digest, std::string(data));
  }
  batches.Flush();
  return results;
}

absl::StatusOr<std::unique_ptr<BlobReader>> RemoteBlobStore::OpenRead(
    absl::string_view ns, const Digest& digest, int64_t offset, int64_t limit) {
  if (offset < 0 || offset > digest.size()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset,
                                              " is outside the blob of ",
                                              digest.size(), " bytes"));
  }
  // The first shard that has it (with replicas, the next on a miss).
  absl::Status last;
  ASSIGN_OR_RETURN(CasClient * client, Client(ns));
  for (size_t shard : client->ShardsFor(digest)) {
    auto reader = std::make_unique<RemoteReader>(
        client->bytestream(shard),
        MakeReadResourceName(client->instance_name(), digest), offset, limit);
    // The empty blob, or a read at its end, has no message to wait for.
    if (digest.size() == offset)
      return std::unique_ptr<BlobReader>(std::move(reader));
    last = reader->Start();
    client->Note(shard, last);
    if (last.ok()) return std::unique_ptr<BlobReader>(std::move(reader));
    if (client->shard_count() > 1) {
      last = absl::Status(
          last.code(), absl::StrCat("CAS shard ", client->shard_address(shard),
                                    ": ", last.message()));
    }
    if (!absl::IsNotFound(last) && !absl::IsUnavailable(last)) break;
  }
  return last;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> RemoteBlobStore::OpenWrite(
    absl::string_view ns, const Digest& digest,
    absl::string_view /*upload_key*/) {
  ASSIGN_OR_RETURN(std::vector<Digest> missing,
                   FindMissing(ns, absl::Span<const Digest>(&digest, 1)));
  // To the first of its shards (those seen down go last); replicas get a
  // copy once it is whole.
  ASSIGN_OR_RETURN(CasClient * client, Client(ns));
  std::vector<size_t> shards = client->ShardsFor(digest);
  std::function<absl::Status()> after;
  if (shards.size() > 1) {
    after = [client, digest] { return client->Replicate(digest); };
  }
  return std::unique_ptr<BlobWriter>(std::make_unique<RemoteWriter>(
      client->bytestream(shards[0]),
      MakeWriteResourceName(client->instance_name(), NewUuid(), digest), digest,
      missing.empty(), std::move(after)));
}

absl::StatusOr<int64_t> RemoteBlobStore::QueryWrite(
    absl::string_view ns, const Digest& digest,
    absl::string_view /*upload_key*/) {
  ASSIGN_OR_RETURN(std::vector<Digest> missing,
                   FindMissing(ns, absl::Span<const Digest>(&digest, 1)));
  if (missing.empty()) return digest.size();
  return absl::NotFoundError("no upload of " + digest.ToString());
}

absl::StatusOr<std::string> RemoteBlobStore::GetAction(absl::string_view ns,
                                                       const Digest& action) {
  ASSIGN_OR_RETURN(CasClient * client, Client(ns));
  ASSIGN_OR_RETURN(reapi::ActionResult result, client->GetActionResult(action));
  return result.SerializeAsString();
}

absl::Status RemoteBlobStore::PutAction(absl::string_view ns,
                                        const Digest& action,
                                        absl::string_view serialized_result) {
  reapi::ActionResult result;
  if (!result.ParseFromArray(serialized_result.data(),
                             static_cast<int>(serialized_result.size()))) {
    return absl::InvalidArgumentError("unreadable ActionResult");
  }
  ASSIGN_OR_RETURN(CasClient * client, Client(ns));
  return client->UpdateActionResult(action, result);
}

absl::StatusOr<CasClient*> RemoteBlobStore::Client(absl::string_view ns) {
  if (!target_) return client_.get();
  std::optional<std::string> instance = instance_of_(ns);
  if (!instance) {
    return absl::InvalidArgumentError(
        "instance_name: not one instance of the farm's CAS");
  }
  absl::MutexLock lock(&mu_);
  std::shared_ptr<CasClient>& c = by_instance_[*instance];
  if (c == nullptr) c = std::make_shared<CasClient>(*target_, *instance);
  return c.get();
}

absl::Status RemoteBlobStore::DeleteAction(absl::string_view ns,
                                           const Digest& action) {
  return absl::UnimplementedError(absl::StrCat(
      "cannot delete action ", action.ToString(), " from a remote CAS"));
}

}  // namespace stagefarm
