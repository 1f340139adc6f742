// CasServer: one stagefarm-cas process. Opens the RocksDB store, builds the
// instance policy and serves every CAS service, grpc.health.v1 and server
// reflection on one port. Used by main.cc and by in-process tests.
// Start() once; the other methods are thread-safe afterwards.
#ifndef STAGEFARM_CAS_CAS_SERVER_H_
#define STAGEFARM_CAS_CAS_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "blobstore/action_cache.h"
#include "blobstore/rocksdb_blob_store.h"
#include "cas/grpc_services.h"
#include "cas/instance_policy.h"
#include "common/metrics.h"

namespace stagefarm {

struct CasServerOptions {
  // HOST:PORT; port 0 picks a free port (see port()).
  std::string listen = "127.0.0.1:0";
  RocksDbBlobStoreOptions store;
  InstancePolicyOptions policy;
  CasLimits limits;
  // One shard of several: the action cache leaves output checks to clients.
  bool shard = false;
  // Records every call's latency (stagefarm_rpc_duration_seconds) when set.
  Metrics* metrics = nullptr;
};

class CasServer {
 public:
  static absl::StatusOr<std::unique_ptr<CasServer>> Start(
      const CasServerOptions& options);
  ~CasServer();

  int port() const { return port_; }
  std::string address() const;
  RocksDbBlobStore* store() { return store_.get(); }
  // Blocks until Shutdown() is called from another thread.
  void Wait();
  // Stops accepting calls and gives calls in flight up to 5 s to finish.
  void Shutdown();

 private:
  CasServer() = default;

  std::string host_;
  int port_ = 0;
  std::unique_ptr<RocksDbBlobStore> store_;
  std::unique_ptr<InstancePolicy> policy_;
  std::unique_ptr<ActionCache> action_cache_;
  std::unique_ptr<CasService> cas_;
  std::unique_ptr<CapabilitiesService> capabilities_;
  std::unique_ptr<ActionCacheService> ac_service_;
  std::unique_ptr<ByteStreamService> bytestream_;
  std::unique_ptr<CasAdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  bool shut_down_ = false;
};

}  // namespace stagefarm

#endif  // STAGEFARM_CAS_CAS_SERVER_H_
