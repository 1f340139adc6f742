// ActionCache: REAPI action-cache semantics over ActionCacheStorage and the
// CAS. A result is served only while every blob it references (output
// files, output directory trees and their files, stdout, stderr) is in the
// CAS; otherwise the entry is dropped and the answer is NOT_FOUND, as REAPI
// asks, so eviction can never hand out a dangling result. Updates must
// reference blobs that exist. Thread-safe if its stores are.
//
// A CAS that is one shard of several (CasClient spreads blobs over shards)
// holds only some of a result's outputs, so it cannot check them: with
// `shard` set the checks (and inlining of outputs) are left to the client,
// which asks every shard (common/cas_client.h).
#ifndef STAGEFARM_BLOBSTORE_ACTION_CACHE_H_
#define STAGEFARM_BLOBSTORE_ACTION_CACHE_H_

#include "absl/status/statusor.h"
#include "blobstore/blob_store.h"
#include "common/digest.h"

namespace stagefarm {

struct InlineRequest {
  bool stdout_raw = false;
  bool stderr_raw = false;
  std::vector<std::string> output_files;
};

class ActionCache {
 public:
  ActionCache(BlobStore* cas, ActionCacheStorage* storage, bool shard = false)
      : cas_(cas), storage_(storage), shard_(shard) {}

  absl::StatusOr<reapi::ActionResult> Get(absl::string_view ns,
                                          const Digest& action,
                                          const InlineRequest& inline_request);
  absl::Status Update(absl::string_view ns, const Digest& action,
                      reapi::ActionResult result);

 private:
  // Digests `result` references, validated; INVALID_ARGUMENT names the field.
  absl::StatusOr<std::vector<Digest>> Referenced(
      absl::string_view ns, const reapi::ActionResult& result,
      bool include_tree_contents);

  BlobStore* cas_;
  ActionCacheStorage* storage_;
  bool shard_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_BLOBSTORE_ACTION_CACHE_H_
