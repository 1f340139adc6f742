// The embedded default: scheduler, worker and CAS in one process, with
// their state under one directory ($STAGEFARM_HOME, default
// ~/.local/share/stagefarm):
//   cas/          RocksDB blob store and action cache
//   images.json   the image index (tags)
//   worker/       snapshots and scratch (worker/snapshots.h)
//   cache-mounts/ RUN --mount=type=cache directories
//   runc/         runtime state; bundles/ runtime bundles
// One process at a time: RocksDB holds a lock on cas/, and a second process
// waits for it (saying so) rather than failing.
// With a remote CAS (LocalOptions::cas_address), blobs and the action cache
// live there instead of in cas/: clients with different homes and
// checkouts share one build cache; the image index and snapshots stay local.
#ifndef STAGEFARM_CLI_LOCAL_H_
#define STAGEFARM_CLI_LOCAL_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "blobstore/remote_store.h"
#include "blobstore/rocksdb_blob_store.h"
#include "engine/build_engine.h"
#include "executor/runc_executor.h"
#include "image/image_store.h"
#include "registry/client.h"
#include "snapshot/snapshots.h"

namespace stagefarm::cli {

struct LocalOptions {
  std::string home;  // "" = $STAGEFARM_HOME or ~/.local/share/stagefarm
  std::string runtime = "runc";
  bool force_no_network = false;
  int64_t memory_bytes = 0;
  int64_t pids_limit = 0;
  int64_t shm_bytes = 0;  // each RUN's /dev/shm; 0: the runtime's 64 MiB
  // HOST:PORT of a stagefarm-cas (or any REAPI CAS) to keep blobs and the
  // action cache in, and its instance name; "" = the local store.
  std::string cas_address;
  std::string cas_instance;
  // HOST:PORT of the farm's scheduler (or STAGEFARM_SERVER); "" = none.
  std::string server;
  // Registries reached over plain HTTP or unverified TLS, and mirrors for
  // docker.io (added to STAGEFARM_INSECURE_REGISTRIES and
  // STAGEFARM_REGISTRY_MIRRORS).
  std::vector<std::string> insecure_registries;
  std::vector<std::string> registry_mirrors;
  // --platform of pull, run and image inspect|export ("" = this
  // machine's).
  std::string platform;
  // `run --network`: default (a namespace of its own behind a bridge with
  // NAT, as `docker run`), none or host.
  std::string run_network = "default";
  // How long to wait for another process holding the store.
  std::chrono::milliseconds lock_timeout = std::chrono::minutes(30);
};

class Local {
 public:
  static absl::StatusOr<std::unique_ptr<Local>> Open(const LocalOptions& o);

  const std::string& home() const { return home_; }
  // Names not in the index are pulled from a registry through registry().
  image::ImageStore* images() { return images_.get(); }
  registry::RegistryClient* registry() { return registry_.get(); }
  snapshot::Snapshotter* snapshots() { return snapshots_.get(); }
  engine::BuildEngine* engine() { return engine_.get(); }
  executor::Executor* executor() { return executor_.get(); }
  BlobStore* store() { return blobs_; }
  // The action cache's entries (local or the remote CAS's).
  ActionCacheStorage* actions() { return actions_; }
  // The local RocksDB store (null when blobs live in a remote CAS).
  RocksDbBlobStore* local_store() { return store_.get(); }
  // The remote CAS, when LocalOptions::cas_address is set (else null).
  RemoteBlobStore* remote() { return remote_.get(); }
  static constexpr char kNamespace[] = "i:";

 private:
  std::string home_;
  std::unique_ptr<RocksDbBlobStore> store_;
  std::unique_ptr<RemoteBlobStore> remote_;
  BlobStore* blobs_ = nullptr;
  ActionCacheStorage* actions_ = nullptr;
  std::unique_ptr<image::ImageStore> images_;
  std::unique_ptr<registry::RegistryClient> registry_;
  std::unique_ptr<snapshot::Snapshotter> snapshots_;
  std::unique_ptr<executor::Executor> executor_;
  std::unique_ptr<engine::BuildEngine> engine_;
};

// $STAGEFARM_HOME, else $HOME/.local/share/stagefarm.
std::string DefaultHome();

}  // namespace stagefarm::cli

#endif  // STAGEFARM_CLI_LOCAL_H_
