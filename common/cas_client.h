// CasClient: the REAPI client every stagefarm program uses to talk to a CAS
// (FindMissingBlobs, batches, ByteStream streaming with resumable uploads,
// the action cache, and stagefarm.v1.CasAdmin). Large blobs stream from and
// to callbacks in chunks; nothing holds a whole large blob in memory.
// Thread-safe (gRPC stubs are).
#ifndef STAGEFARM_COMMON_CAS_CLIENT_H_
#define STAGEFARM_COMMON_CAS_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
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

// Where a CasClient's calls go: one CAS, or several CAS servers ("shards")
// that blobs and action-cache entries are spread over by rendezvous hashing
// on the digest, each kept on `replicas` of them.
struct CasTarget {
  std::vector<std::string> addresses;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  int replicas = 1;
};

class CasClient {
 public:
  // `address` is HOST:PORT, or a comma-separated list of shards
  // ("cas-0:8980,cas-1:8980,cas-2:8980": every client must list the same
  // shards, in any order). STAGEFARM_CAS_REPLICAS (default 1) sets on how
  // many shards each blob is kept. TLS as configured (common/tls.h).
  static CasTarget Connect(const std::string& address);

  CasClient(std::shared_ptr<grpc::Channel> channel, std::string instance_name);
  CasClient(const CasTarget& target, std::string instance_name);

  // Bytes per ByteStream message.
  static constexpr size_t kChunkBytes = 1 << 20;
  // Digests per FindMissingBlobs request (stagefarm-cas takes 100,000).
  static constexpr size_t kFindMissingBatch = 10000;

  // Any number of digests, asked kFindMissingBatch at a time. With shards:
  // a blob counts as present when every reachable shard that should hold
  // it has it; a blob none of whose shards answers is an UNAVAILABLE error
  // naming them.
  absl::StatusOr<std::vector<Digest>> FindMissing(
      const std::vector<Digest>& digests);
  // One status per blob, in order.
  absl::StatusOr<std::vector<absl::Status>> BatchUpdate(
      const std::vector<std::pair<Digest, std::string>>& blobs);
  absl::StatusOr<std::vector<std::pair<Digest, absl::StatusOr<std::string>>>>
  BatchRead(const std::vector<Digest>& digests);

  // Streams `digest` from `source`, which fills up to `max` bytes into the
  // buffer and returns how many (0 at the end). Resumes with
  // QueryWriteStatus if the stream breaks (up to `retries` times). With
  // replicas, the first shard that takes it is copied to the others.
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
  // Summed over the shards.
  absl::StatusOr<v1::GetStatsResponse> GetStats();

  const std::string& instance_name() const { return instance_name_; }
  size_t shard_count() const { return shards_.size(); }
  // The shards that keep `digest`, best first (rendezvous order; shards
  // seen failing in the last seconds last).
  std::vector<size_t> ShardsFor(const Digest& digest) const;
  const std::string& shard_address(size_t shard) const {
    return shards_[shard].address;
  }
  google::bytestream::ByteStream::Stub* bytestream(size_t shard) {
    return shards_[shard].bytestream.get();
  }
  // Notes how a call to `shard` ended (UNAVAILABLE marks it down for a few
  // seconds, so writes go to its replicas first).
  void Note(size_t shard, const absl::Status& status);
  // Copies `digest` from a shard that has it to its other shards that lack
  // it (no-op with one replica).
  absl::Status Replicate(const Digest& digest);

 private:
  struct Shard {
    std::string address;
    std::unique_ptr<reapi::ContentAddressableStorage::Stub> cas;
    std::unique_ptr<reapi::ActionCache::Stub> ac;
    std::unique_ptr<reapi::Capabilities::Stub> capabilities;
    std::unique_ptr<google::bytestream::ByteStream::Stub> bytestream;
    std::unique_ptr<v1::CasAdmin::Stub> admin;
    // steady_clock ticks until which the shard counts as down.
    std::unique_ptr<std::atomic<int64_t>> down_until;
    std::shared_ptr<grpc::Channel> channel;
  };
  // Whether the shard's channel is connected or connects within 2 s.
  bool Reachable(size_t shard);
  void AddShard(const std::string& address,
                const std::shared_ptr<grpc::Channel>& channel);
  absl::Status WriteTo(size_t shard, const Digest& digest, const Source& source,
                       int retries);
  absl::Status ReadFrom(size_t shard, const Digest& digest, const Sink& sink,
                        int64_t offset, int64_t limit, bool* sunk);
  // A shard's failure, naming it when there are several.
  absl::Status ShardError(size_t shard, const absl::Status& status) const;

  std::string instance_name_;
  std::vector<Shard> shards_;
  int replicas_ = 1;
};

// Small blobs sent in BatchUpdateBlobs requests of at most kBatchBytes
// (under the 4 MiB a CAS advertises), as they are added: the one batching
// path for every client. Not thread-safe.
class BatchUploader {
 public:
  static constexpr int64_t kBatchBytes = 3 << 20;
  // Servers bound the items of a request too (stagefarm-cas: 100,000),
  // and each costs its digest besides its bytes: 3 MiB of 15-byte files
  // was ~176,000 items and ~20 MiB of message.
  static constexpr size_t kBatchItems = 10000;
  static constexpr int64_t kItemOverheadBytes = 100;
  // Hears of each blob, by the tag it was added with, once its request is
  // answered: the blob's own status, or (`whole_request`) the error of a
  // request that failed as a whole.
  using Done = std::function<void(size_t tag, const absl::Status& status,
                                  bool whole_request)>;

  BatchUploader(CasClient* cas, Done done)
      : cas_(cas), done_(std::move(done)) {}
  BatchUploader(const BatchUploader&) = delete;
  BatchUploader& operator=(const BatchUploader&) = delete;

  // Queues a blob (at most kBatchBytes), sending the queue first when the
  // blob would not fit in its request (bytes with each item's overhead, or
  // kBatchItems).
  void Add(size_t tag, const Digest& digest, std::string bytes);
  // Sends what is queued.
  void Flush();

 private:
  CasClient* cas_;
  Done done_;
  std::vector<std::pair<Digest, std::string>> batch_;
  std::vector<size_t> tags_;
  int64_t bytes_ = 0;
};

// A random RFC 4122 version-4 UUID, for upload resource names.
std::string NewUuid();

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_CAS_CLIENT_H_
