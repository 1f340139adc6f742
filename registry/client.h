// A client of the OCI distribution API (the registry HTTP API v2): pulls
// images into an ImageStore (manifest lists resolved to the platform,
// every blob streamed into the store and verified against its digest) and
// pushes images from it (HEAD checks so present blobs are not sent,
// cross-repository mounts from repositories of the same registry the store
// knows, monolithic or chunked uploads, then the manifest). Basic and bearer
// token authentication with credentials from Docker's config file; TLS with
// per-registry CA and client certificates (certs.d/<host>/ca.crt,
// client.cert, client.key, as Docker lays them out); plain HTTP only for
// registries named insecure (loopback ones may fall back to it, as in
// Docker). Thread-safe.
#ifndef STAGEFARM_REGISTRY_CLIENT_H_
#define STAGEFARM_REGISTRY_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "http/client.h"
#include "image/image_store.h"
#include "registry/reference.h"

namespace stagefarm::registry {

struct RegistryOptions {
  // Hosts ("127.0.0.1:5000") reached over plain HTTP or unverified TLS.
  std::vector<std::string> insecure;
  // Where docker.io pulls go first: "https://mirror.example" or "host:port".
  std::vector<std::string> mirrors;
  // Directories holding <host>/ca.crt, client.cert and client.key.
  std::vector<std::string> certs_dirs;
  std::string docker_config;  // config.json with credentials
  // Blobs larger than this go up in PATCH chunks of this size; 0: one PUT.
  int64_t chunk_bytes = 0;
  int parallel = 3;  // blobs transferred at once

  // STAGEFARM_INSECURE_REGISTRIES and STAGEFARM_REGISTRY_MIRRORS
  // (comma-separated), DOCKER_CONFIG / ~/.docker/config.json, certs
  // directories $STAGEFARM_HOME/certs.d and /etc/docker/certs.d,
  // STAGEFARM_PUSH_CHUNK_BYTES.
  static RegistryOptions FromEnvironment(const std::string& home);
};

// One line of progress ("pulling 127.0.0.1:5000/app:1", "layer sha256:..
// done").
using ProgressFn = std::function<void(const std::string&)>;

struct PushResult {
  std::string digest;  // "sha256:..." of the manifest pushed
  int blobs_sent = 0;
  int blobs_present = 0;
  int blobs_mounted = 0;
  int64_t bytes_sent = 0;
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions options);

  // Pulls `ref` into `store` (from an index, the image for `want`), tags
  // it under its normalized name, and returns it. NOT_FOUND when the
  // registry has no such image or no image for `want`.
  absl::StatusOr<image::ResolvedImage> Pull(
      image::ImageStore* store, const std::string& ref,
      const ProgressFn& progress,
      const platform::Platform& want = platform::Host());

  // Pushes the image `manifest` of `store` as `ref`; for an image index,
  // every platform's image and then the index.
  absl::StatusOr<PushResult> Push(image::ImageStore* store,
                                  const Digest& manifest,
                                  const std::string& ref,
                                  const ProgressFn& progress);

 private:
  struct Endpoint {
    std::string host;  // as written in references
    std::string base;  // "https://host" or "http://host"
    http::TlsFiles tls;
  };
  absl::StatusOr<Endpoint> Connect(const std::string& host);
  http::TlsFiles TlsFor(const std::string& host) const;
  bool Insecure(const std::string& host) const;
  // Sends `request` with the credentials `scope` needs, answering one 401
  // challenge (basic, or a bearer token fetched from the realm).
  absl::StatusOr<http::HttpResponse> Send(const Endpoint& ep,
                                          http::HttpRequest request,
                                          const std::string& scope);
  absl::StatusOr<std::string> Authorize(const Endpoint& ep,
                                        const std::string& challenge,
                                        const std::string& scope);
  absl::StatusOr<image::ResolvedImage> PullFrom(const Endpoint& ep,
                                                const Reference& ref,
                                                image::ImageStore* store,
                                                const ProgressFn& progress,
                                                const platform::Platform& want);
  absl::Status FetchBlob(const Endpoint& ep, const Reference& ref,
                         const std::string& scope, const Digest& digest,
                         image::ImageStore* store);
  // PUTs a manifest or index as `reference` (a tag or its digest) and
  // checks the digest the registry reports.
  absl::Status PutManifest(const Endpoint& ep, const Reference& ref,
                           const std::string& scope,
                           const std::string& reference,
                           const std::string& media_type,
                           const std::string& bytes);
  absl::Status PushBlob(const Endpoint& ep, const Reference& ref,
                        const std::string& scope, const Digest& digest,
                        const std::string& mount_from, image::ImageStore* store,
                        PushResult* result);
  // Repositories of `host` in the store's index that hold each blob.
  std::map<std::string, std::string> MountSources(image::ImageStore* store,
                                                  const Reference& target);

  RegistryOptions options_;
  absl::Mutex mu_;
  std::map<std::string, Endpoint> endpoints_ ABSL_GUARDED_BY(mu_);  // by host
  // host|scope -> header
  std::map<std::string, std::string> authorization_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stagefarm::registry

#endif  // STAGEFARM_REGISTRY_CLIENT_H_
