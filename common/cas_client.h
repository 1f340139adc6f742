// CasClient: the REAPI client every stagefarm program uses to talk to a CAS
// (FindMissingBlobs, batches, ByteStream streaming with resumable uploads,
// the action cache, and stagefarm.v1.CasAdmin). Large blobs stream from and
// to callbacks in chunks; nothing holds a whole large blob in memory.
// Thread-safe (gRPC stubs are).
#ifndef STAGEFARM_COMMON_CAS_CLIENT_H_
#define STAGEFARM_COMMON_CAS_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "common/digest.h"
#include "google/bytestream/bytestream.grpc.pb.h"
#include "stagefarm/v1/cas.grpc.pb.h"

namespace stagefarm {

class CasClient {
 public:
  // `address` is HOST:PORT (plaintext).
  static std::shared_ptr<grpc::Channel> Connect(const std::string& address);

  CasClient(std::shared_ptr<grpc::Channel> channel, std::string instance_name);

  // Bytes per ByteStream message.
  static constexpr size_t kChunkBytes = 1 << 20;

  absl::StatusOr<std::vector<Digest>> FindMissing(
      const std::vector<Digest>& digests);
  // One status per blob, in order.
  absl::StatusOr<std::vector<absl::Status>> BatchUpdate(
      const std::vector<std::pair<Digest, std::string>>& blobs);
  absl::StatusOr<std::vector<std::pair<Digest, absl::StatusOr<std::string>>>>
  BatchRead(const std::vector<Digest>& digests);

  // Streams `digest` from `source`, which fills up to `max` bytes into the
  // buffer and returns how many (0 at the end). Resumes with
  // QueryWriteStatus if the stream breaks (up to `retries` times).
  using Source = std::function<absl::StatusOr<size_t>(char* buf, size_t max)>;
  absl::Status Write(const Digest& digest, const Source& source,
                     int retries = 3);
  absl::Status WriteString(const std::string& data);
  absl::Status WriteFile(const std::string& path, Digest* digest_out);

  // Streams the blob's bytes to `sink` in chunks.
  using Sink = std::function<absl::Status(absl::string_view)>;
  absl::Status Read(const Digest& digest, const Sink& sink, int64_t offset = 0,
                    int64_t limit = 0);
  absl::StatusOr<std::string> ReadString(const Digest& digest);

  absl::StatusOr<reapi::ActionResult> GetActionResult(const Digest& action);
  absl::Status UpdateActionResult(const Digest& action,
                                  const reapi::ActionResult& result,
                                  const std::string& bearer_token = "");
  absl::StatusOr<reapi::ServerCapabilities> GetCapabilities();
  absl::StatusOr<v1::GetStatsResponse> GetStats();

  const std::string& instance_name() const { return instance_name_; }
  google::bytestream::ByteStream::Stub* bytestream() {
    return bytestream_.get();
  }

 private:
  std::string instance_name_;
  std::unique_ptr<reapi::ContentAddressableStorage::Stub> cas_;
  std::unique_ptr<reapi::ActionCache::Stub> ac_;
  std::unique_ptr<reapi::Capabilities::Stub> capabilities_;
  std::unique_ptr<google::bytestream::ByteStream::Stub> bytestream_;
  std::unique_ptr<v1::CasAdmin::Stub> admin_;
};

// A random RFC 4122 version-4 UUID, for upload resource names.
std::string NewUuid();

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_CAS_CLIENT_H_
