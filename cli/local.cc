#include "cli/local.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/farm_client.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "executor/rootless.h"

namespace stagefarm::cli {

std::string DefaultHome() {
  if (const char* h = getenv("STAGEFARM_HOME"); h != nullptr && *h != '\0') {
    return h;
  }
  const char* home = getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "/root",
                      "/.local/share/stagefarm");
}

absl::StatusOr<std::unique_ptr<Local>> Local::Open(const LocalOptions& o) {
  auto l = std::unique_ptr<Local>(new Local());
  std::string home = o.home.empty() ? DefaultHome() : o.home;
  RETURN_IF_ERROR(MakeDirs(home, 0700));
  char* real = realpath(home.c_str(), nullptr);
  if (real == nullptr) {
    return absl::InternalError(absl::StrCat("cannot resolve ", home));
  }
  l->home_ = real;
  free(real);
  if (!o.cas_address.empty()) {
    auto client = std::make_shared<CasClient>(CasClient::Connect(o.cas_address),
                                              o.cas_instance);
    // Fail now, naming the address, rather than at the first blob.
    auto caps = client->GetCapabilities();
    if (!caps.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot reach the CAS at ",
                                                 o.cas_address, ": ",
                                                 caps.status().message()));
    }
    l->remote_ = std::make_unique<RemoteBlobStore>(std::move(client));
    l->blobs_ = l->remote_.get();
    l->actions_ = l->remote_.get();
  } else {
    RocksDbBlobStoreOptions so;
    so.path = l->home_ + "/cas";
    // Each command is a short-lived process: open tables lazily (a build
    // reads a few small ones; the large layer chunks only when exported).
    so.max_open_files = 64;
    so.flush_on_close_wal_bytes = 1 << 20;
    so.log_errors_only = true;
    so.abandon_compactions_at_close = true;
    so.memtable_bloom = false;
    // One process at a time owns the store (RocksDB's lock): wait for it.
    auto store = RocksDbBlobStore::Open(so);
    auto deadline = std::chrono::steady_clock::now() + o.lock_timeout;
    bool said = false;
    while (!store.ok() && absl::StrContains(store.status().message(), "lock") &&
           std::chrono::steady_clock::now() < deadline) {
      if (!said) {
        fprintf(stderr,
                "waiting for %s: another stagefarm process is using it\n",
                so.path.c_str());
        said = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      store = RocksDbBlobStore::Open(so);
    }
    if (!store.ok()) {
      if (absl::StrContains(store.status().message(), "lock")) {
        return absl::UnavailableError(absl::StrCat(
            "the local store ", so.path,
            " is still in use by another stagefarm process; use another "
            "STAGEFARM_HOME to work in parallel"));
      }
      return store.status();
    }
    l->store_ = std::move(*store);
    l->blobs_ = l->store_.get();
    l->actions_ = l->store_.get();
  }
  if (!o.server.empty() && l->remote_ != nullptr) {
    // On a farm, names live in the farm's index (every client sees them).
    l->images_ = std::make_unique<image::ImageStore>(
        l->blobs_, kNamespace,
        FarmTagIndex(o.server, l->remote_->client()->instance_name()));
  } else {
    l->images_ = std::make_unique<image::ImageStore>(l->blobs_, kNamespace,
                                                     l->home_ + "/images.json");
  }
  registry::RegistryOptions ro_reg =
      registry::RegistryOptions::FromEnvironment(l->home_);
  ro_reg.insecure.insert(ro_reg.insecure.end(), o.insecure_registries.begin(),
                         o.insecure_registries.end());
  ro_reg.mirrors.insert(ro_reg.mirrors.begin(), o.registry_mirrors.begin(),
                        o.registry_mirrors.end());
  l->registry_ = std::make_unique<registry::RegistryClient>(ro_reg);
  l->images_->SetPuller(
      [images = l->images_.get(), client = l->registry_.get()](
          const std::string& name, const platform::Platform& want) {
        return client->Pull(
            images, name,
            [](const std::string& line) {
              fprintf(stderr, "%s\n", line.c_str());
            },
            want);
      });
  ASSIGN_OR_RETURN(
      l->snapshots_,
      snapshot::Snapshotter::Open(l->home_ + "/worker", l->blobs_, kNamespace));
  executor::RuncOptions ro;
  ro.runtime = o.runtime;
  ro.state_dir = l->home_ + "/runc";
  ro.bundles_dir = l->home_ + "/bundles";
  ro.force_no_network = o.force_no_network;
  ro.default_memory_bytes = o.memory_bytes;
  ro.default_pids_limit = o.pids_limit;
  if (o.shm_bytes > 0) ro.shm_bytes = o.shm_bytes;
  ro.rootless = stagefarm::InUserNamespace();
  ASSIGN_OR_RETURN(l->executor_, executor::RuncExecutor::Create(ro));
  engine::EngineOptions eo;
  eo.ns = kNamespace;
  eo.cache_mounts = l->home_ + "/cache-mounts";
  eo.cache_mount_ids = l->home_ + "/cache-mount-ids";
  eo.force_no_network = o.force_no_network;
  // The user's own machine: a build given network.host may use it.
  eo.permit_host_network = true;
  eo.memory_bytes = o.memory_bytes;
  eo.pids_limit = o.pids_limit;
  l->engine_ = std::make_unique<engine::BuildEngine>(
      l->blobs_, l->actions_, l->images_.get(), l->snapshots_.get(),
      l->executor_.get(), eo);
  return l;
}

}  // namespace stagefarm::cli
