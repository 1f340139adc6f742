// The local image index: names ("app:1") pointing at manifests whose blobs
// (manifest, config, layers) live in a BlobStore namespace.
//
// Tags are one JSON file, replaced atomically (write to a temporary file,
// fsync, rename) under an exclusive lock on a lock file, so concurrent
// `stagefarm` processes never lose or tear a tag. Thread-safe.
#ifndef STAGEFARM_IMAGE_IMAGE_STORE_H_
#define STAGEFARM_IMAGE_IMAGE_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/blob_store.h"
#include "image/oci.h"

namespace stagefarm::image {

struct ImageRecord {
  std::string name;  // normalized reference
  Digest manifest;   // digest of the manifest blob
  int64_t size = 0;  // manifest + config + compressed layers
  std::string created;
};

struct ResolvedImage {
  std::string name;
  Descriptor manifest;
  Descriptor config;
  std::string manifest_bytes;
  Image image;
};

// Where names point when they are not kept in the local file: the farm's
// scheduler keeps one index per CAS instance for every client.
class TagIndex {
 public:
  virtual ~TagIndex() = default;
  virtual absl::Status Set(const ImageRecord& record) = 0;
  virtual absl::StatusOr<std::vector<ImageRecord>> List() = 0;
  // NOT_FOUND when no image has that name.
  virtual absl::Status Remove(const std::string& name) = 0;
};

class ImageStore {
 public:
  // `ns` is the BlobStore namespace; `index_path` the tags file.
  ImageStore(BlobStore* blobs, std::string ns, std::string index_path);
  // Names kept in `tags` (the farm's index) instead of a file.
  ImageStore(BlobStore* blobs, std::string ns, std::unique_ptr<TagIndex> tags);

  BlobStore* blobs() const { return blobs_; }
  const std::string& ns() const { return ns_; }

  // Stores `config` and a manifest over `layers` (which must already be in
  // the store); returns the manifest's descriptor.
  absl::StatusOr<Descriptor> PutImage(const nlohmann::json& config,
                                      const std::vector<Descriptor>& layers);
  // Stores an image index over images already in the store; returns its
  // descriptor.
  absl::StatusOr<Descriptor> PutIndex(const std::vector<IndexEntry>& images);
  // Reads and checks an image by manifest digest.
  absl::StatusOr<ResolvedImage> Load(const Digest& manifest);
  // The image for `want` from a manifest or an index digest: an index's
  // entry for the platform (NOT_FOUND listing those it has), or a
  // manifest whose config names that platform or none
  // (FAILED_PRECONDITION naming both platforms otherwise).
  absl::StatusOr<ResolvedImage> LoadFor(const Digest& digest,
                                        const platform::Platform& want);
  // Every image manifest `digest` stands for: itself, or all an index
  // names (attestation manifests included): what an export or a push
  // carries.
  absl::StatusOr<std::vector<Descriptor>> Manifests(const Digest& digest);
  // The platforms of a manifest or an index digest, each with its
  // manifest (one entry for a single image).
  absl::StatusOr<std::vector<IndexEntry>> Platforms(const Digest& digest);

  // Points `name` at `manifest`, an image manifest or an image index
  // (replacing an earlier tag).
  absl::Status Tag(absl::string_view name, const Digest& manifest);
  // The image `name` for `want` (LoadFor). NOT_FOUND (saying how to
  // import one) when no image has that name and no puller is set, or the
  // puller fails with NOT_FOUND; a name whose image lacks the platform is
  // pulled for it when a puller is set.
  absl::StatusOr<ResolvedImage> Resolve(absl::string_view name,
                                        const platform::Platform& want);
  // The digest `name` is tagged with (an image manifest or an index);
  // NOT_FOUND when no image has that name. Never pulls.
  absl::StatusOr<Digest> Tagged(absl::string_view name);
  // For this machine's platform.
  absl::StatusOr<ResolvedImage> Resolve(absl::string_view name) {
    return Resolve(name, platform::Host());
  }

  // Fetches an image that is not in the index (from a registry), stores
  // and tags it; called by Resolve with the normalized name.
  using Puller = std::function<absl::StatusOr<ResolvedImage>(
      const std::string& name, const platform::Platform& want)>;
  void SetPuller(Puller puller) { puller_ = std::move(puller); }
  absl::StatusOr<std::vector<ImageRecord>> List();
  absl::Status Remove(absl::string_view name);

 private:
  // Tags `name` with an index of the platforms of `had` (an image or an
  // index) and `image` for `p` (replacing `had`'s image for `p`).
  absl::Status AddPlatform(const std::string& name, const Digest& had,
                           const platform::Platform& p,
                           const Descriptor& image);
  // The size of a manifest or index and every blob it names.
  absl::StatusOr<int64_t> TotalSize(const Digest& digest);
  absl::StatusOr<nlohmann::json> ReadIndexLocked();
  absl::Status WriteIndexLocked(const nlohmann::json& index);

  BlobStore* blobs_;
  std::string ns_;
  std::string index_path_;
  std::unique_ptr<TagIndex> tags_;  // when set, instead of the file
  Puller puller_;
  absl::Mutex mu_;
};

}  // namespace stagefarm::image

#endif  // STAGEFARM_IMAGE_IMAGE_STORE_H_
