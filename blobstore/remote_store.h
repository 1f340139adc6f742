// RemoteBlobStore: the BlobStore and ActionCacheStorage interfaces over a
// remote REAPI CAS (CasClient), so the build engine can keep layers, step
// results and its action cache in a shared stagefarm-cas instead of a local
// RocksDB store. Made from a client, every call goes to the server's
// instance named in the client and the `ns` arguments are not used; made
// from a target (PerInstance), each call goes to the instance its `ns`
// names (the scheduler serving REAPI clients the farm's CAS). Reads and writes
// stream through ByteStream; nothing holds a large blob in memory. Thread-safe.
#ifndef STAGEFARM_BLOBSTORE_REMOTE_STORE_H_
#define STAGEFARM_BLOBSTORE_REMOTE_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "blobstore/blob_store.h"
#include "common/cas_client.h"

namespace stagefarm {

class RemoteBlobStore : public BlobStore, public ActionCacheStorage {
 public:
  explicit RemoteBlobStore(std::shared_ptr<CasClient> client)
      : client_(std::move(client)) {}
  // `instance_of`: the instance a call's `ns` stands for (nullopt: none,
  // the call fails with INVALID_ARGUMENT).
  using InstanceOf =
      std::function<std::optional<std::string>(absl::string_view ns)>;
  static std::unique_ptr<RemoteBlobStore> PerInstance(CasTarget target,
                                                      InstanceOf instance_of) {
    auto store = std::unique_ptr<RemoteBlobStore>(new RemoteBlobStore(nullptr));
    store->target_ = std::move(target);
    store->instance_of_ = std::move(instance_of);
    return store;
  }

  absl::StatusOr<std::vector<Digest>> FindMissing(
      absl::string_view ns, absl::Span<const Digest> digests) override;
  std::vector<absl::Status> PutBatch(
      absl::string_view ns,
      absl::Span<const std::pair<Digest, absl::string_view>> blobs) override;
  // NOT_FOUND here (not at the first Read) when the server lacks the blob.
  absl::StatusOr<std::unique_ptr<BlobReader>> OpenRead(absl::string_view ns,
                                                       const Digest& digest,
                                                       int64_t offset,
                                                       int64_t limit) override;
  // Streams to the server as Write() is called; Finish() ends the stream.
  // Upload keys are not used (a broken stream is an error, not resumed).
  absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWrite(
      absl::string_view ns, const Digest& digest,
      absl::string_view upload_key) override;
  absl::StatusOr<int64_t> QueryWrite(absl::string_view ns, const Digest& digest,
                                     absl::string_view upload_key) override;

  absl::StatusOr<std::string> GetAction(absl::string_view ns,
                                        const Digest& action) override;
  absl::Status PutAction(absl::string_view ns, const Digest& action,
                         absl::string_view serialized_result) override;
  // UNIMPLEMENTED: REAPI has no call to delete an action-cache entry.
  absl::Status DeleteAction(absl::string_view ns,
                            const Digest& action) override;

  // The client a store made from one uses (null for PerInstance).
  CasClient* client() { return client_.get(); }

 private:
  // The client for calls on `ns`.
  absl::StatusOr<CasClient*> Client(absl::string_view ns);

  std::shared_ptr<CasClient> client_;
  std::optional<CasTarget> target_;
  InstanceOf instance_of_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<CasClient>> by_instance_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace stagefarm

#endif  // STAGEFARM_BLOBSTORE_REMOTE_STORE_H_
