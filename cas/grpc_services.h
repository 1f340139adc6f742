// The CAS's gRPC services: REAPI ContentAddressableStorage, Capabilities,
// ActionCache, google.bytestream.ByteStream, and stagefarm.v1.CasAdmin.
// They validate requests (INVALID_ARGUMENT names the field), map instance
// names to namespaces through InstancePolicy, and delegate to the stores.
// Synchronous gRPC services; thread-safe.
#ifndef STAGEFARM_CAS_GRPC_SERVICES_H_
#define STAGEFARM_CAS_GRPC_SERVICES_H_

#include <atomic>
#include <functional>

#include "blobstore/action_cache.h"
#include "blobstore/blob_store.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "cas/instance_policy.h"
#include "google/bytestream/bytestream.grpc.pb.h"
#include "stagefarm/v1/cas.grpc.pb.h"

namespace stagefarm {

// Limits advertised in Capabilities and enforced on batch calls.
struct CasLimits {
  int64_t max_batch_total_size_bytes = 4 << 20;
  // Chunk size of ByteStream reads.
  int64_t read_chunk_bytes = 1 << 20;
  // Most digests in one FindMissingBlobs or batch call.
  int max_batch_items = 100000;
};

// Bytes through the services and action-cache lookups since the process
// started, for its metrics. Process-wide.
struct CasTraffic {
  std::atomic<int64_t> bytes_received{0};  // blob bytes uploaded to us
  std::atomic<int64_t> bytes_sent{0};      // blob bytes read from us
  std::atomic<int64_t> action_hits{0};
  std::atomic<int64_t> action_misses{0};
};
CasTraffic& Traffic();

class CasService final : public reapi::ContentAddressableStorage::Service {
 public:
  CasService(BlobStore* store, const InstancePolicy* policy, CasLimits limits)
      : store_(store), policy_(policy), limits_(limits) {}

  grpc::Status FindMissingBlobs(
      grpc::ServerContext* context,
      const reapi::FindMissingBlobsRequest* request,
      reapi::FindMissingBlobsResponse* response) override;
  grpc::Status BatchUpdateBlobs(
      grpc::ServerContext* context,
      const reapi::BatchUpdateBlobsRequest* request,
      reapi::BatchUpdateBlobsResponse* response) override;
  grpc::Status BatchReadBlobs(grpc::ServerContext* context,
                              const reapi::BatchReadBlobsRequest* request,
                              reapi::BatchReadBlobsResponse* response) override;
  grpc::Status GetTree(
      grpc::ServerContext* context, const reapi::GetTreeRequest* request,
      grpc::ServerWriter<reapi::GetTreeResponse>* writer) override;

 private:
  BlobStore* store_;
  const InstancePolicy* policy_;
  CasLimits limits_;
};

class CapabilitiesService final : public reapi::Capabilities::Service {
 public:
  // `execution`: the endpoint also serves the Execution service (the
  // scheduler's), so clients may send it actions.
  CapabilitiesService(const InstancePolicy* policy, CasLimits limits,
                      bool execution = false)
      : policy_(policy), limits_(limits), execution_(execution) {}
  grpc::Status GetCapabilities(grpc::ServerContext* context,
                               const reapi::GetCapabilitiesRequest* request,
                               reapi::ServerCapabilities* response) override;

 private:
  const InstancePolicy* policy_;
  CasLimits limits_;
  bool execution_;
};

class ActionCacheService final : public reapi::ActionCache::Service {
 public:
  ActionCacheService(ActionCache* cache, const InstancePolicy* policy)
      : cache_(cache), policy_(policy) {}
  grpc::Status GetActionResult(grpc::ServerContext* context,
                               const reapi::GetActionResultRequest* request,
                               reapi::ActionResult* response) override;
  grpc::Status UpdateActionResult(
      grpc::ServerContext* context,
      const reapi::UpdateActionResultRequest* request,
      reapi::ActionResult* response) override;

 private:
  ActionCache* cache_;
  const InstancePolicy* policy_;
};

class ByteStreamService final : public google::bytestream::ByteStream::Service {
 public:
  ByteStreamService(BlobStore* store, const InstancePolicy* policy,
                    CasLimits limits)
      : store_(store), policy_(policy), limits_(limits) {}
  grpc::Status Read(
      grpc::ServerContext* context,
      const google::bytestream::ReadRequest* request,
      grpc::ServerWriter<google::bytestream::ReadResponse>* writer) override;
  grpc::Status Write(
      grpc::ServerContext* context,
      grpc::ServerReader<google::bytestream::WriteRequest>* reader,
      google::bytestream::WriteResponse* response) override;
  grpc::Status QueryWriteStatus(
      grpc::ServerContext* context,
      const google::bytestream::QueryWriteStatusRequest* request,
      google::bytestream::QueryWriteStatusResponse* response) override;

 private:
  BlobStore* store_;
  const InstancePolicy* policy_;
  CasLimits limits_;
};

class CasAdminService final : public v1::CasAdmin::Service {
 public:
  explicit CasAdminService(std::function<StoreStats()> stats)
      : stats_(std::move(stats)) {}
  grpc::Status GetStats(grpc::ServerContext* context,
                        const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override;

 private:
  std::function<StoreStats()> stats_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_CAS_GRPC_SERVICES_H_
