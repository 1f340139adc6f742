#include "image/image_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "archives/archive_extract.h"
#include "archives/layer_tar.h"
#include "blobstore/blob_files.h"
#include "common/fs_util.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace stagefarm::image {
namespace {

using nlohmann::json;

absl::Status ArchiveError(struct archive* a, absl::string_view what) {
  const char* e = archive_error_string(a);
  return absl::InternalError(absl::StrCat(what, ": ", e ? e : "unknown error"));
}

class TarWriter {
 public:
  explicit TarWriter(const std::string& path) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_per_block(a_, 0);
    ok_ = archive_write_open_filename(a_, path.c_str()) == ARCHIVE_OK;
  }
  ~TarWriter() { archive_write_free(a_); }
  absl::Status status() const {
    return ok_ ? absl::OkStatus()
               : absl::InternalError("cannot open the output archive");
  }
  absl::Status AddBytes(const std::string& name, absl::string_view data) {
    RETURN_IF_ERROR(Header(name, data.size()));
    if (!data.empty() && archive_write_data(a_, data.data(), data.size()) < 0) {
      return ArchiveError(a_, name);
    }
    return absl::OkStatus();
  }
  absl::Status AddDir(const std::string& name) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_mtime(e, 0, 0);
    int r = archive_write_header(a_, e);
    archive_entry_free(e);
    return r == ARCHIVE_OK ? absl::OkStatus() : ArchiveError(a_, name);
  }
  absl::Status AddBlob(const std::string& name, BlobStore* blobs,
                       const std::string& ns, const Digest& digest) {
    RETURN_IF_ERROR(Header(name, digest.size()));
    ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> r,
                     blobs->OpenRead(ns, digest, 0, 0));
    std::string buf;
    while (true) {
      buf.clear();
      ASSIGN_OR_RETURN(size_t n, r->Read(1 << 20, &buf));
      if (n == 0) break;
      if (archive_write_data(a_, buf.data(), buf.size()) < 0) {
        return ArchiveError(a_, name);
      }
    }
    return absl::OkStatus();
  }
  absl::Status Close() {
    if (archive_write_close(a_) != ARCHIVE_OK) {
      return ArchiveError(a_, "closing the archive");
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Header(const std::string& name, size_t size) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(size));
    archive_entry_set_mtime(e, 0, 0);
    int r = archive_write_header(a_, e);
    archive_entry_free(e);
    return r == ARCHIVE_OK ? absl::OkStatus() : ArchiveError(a_, name);
  }
  struct archive* a_;
  bool ok_;
};

std::string BlobPath(const Digest& d) {
  return absl::StrCat("blobs/sha256/", d.hash());
}

// A path inside an unpacked archive or layout, refusing escapes.
absl::StatusOr<std::string> Inside(const std::string& root,
                                   const std::string& rel) {
  if (rel.empty() || rel[0] == '/' ||
      absl::StrContains(absl::StrCat("/", rel, "/"), "/../")) {
    return absl::InvalidArgumentError(
        absl::StrCat("archive path \"", rel, "\" points outside the archive"));
  }
  return ResolveInRoot(root, rel, true);
}

absl::StatusOr<std::string> ReadJsonFile(const std::string& path) {
  return ReadFileToString(path);
}

// Stores a layer file: returns its descriptor.
absl::StatusOr<Descriptor> StoreLayerFile(ImageStore* store,
                                          const std::string& path) {
  ASSIGN_OR_RETURN(Digest d, HashFile(path));
  RETURN_IF_ERROR(UploadFile(store->blobs(), store->ns(), path, d));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  unsigned char magic[4] = {0, 0, 0, 0};
  if (fd >= 0) {
    (void)!read(fd, magic, sizeof(magic));
    close(fd);
  }
  std::string media = archives::kMediaTypeLayerTar;
  if (magic[0] == 0x1f && magic[1] == 0x8b)
    media = archives::kMediaTypeLayerGzip;
  if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
      magic[3] == 0xfd) {
    media = archives::kMediaTypeLayerZstd;
  }
  return Descriptor{media, d};
}

absl::StatusOr<Descriptor> ImportDockerArchive(ImageStore* store,
                                               const std::string& root) {
  ASSIGN_OR_RETURN(std::string text, ReadJsonFile(root + "/manifest.json"));
  ASSIGN_OR_RETURN(json m, ParseJson(text, "manifest.json"));
  if (!m.is_array() || m.empty() || !m[0].is_object() ||
      !m[0].contains("Config") || !m[0]["Config"].is_string() ||
      !m[0].contains("Layers") || !m[0]["Layers"].is_array()) {
    return absl::InvalidArgumentError(
        "manifest.json: expected [{\"Config\": ..., \"Layers\": [...]}]");
  }
  // Refused before any layer is stored.
  RETURN_IF_ERROR(CheckLayerCount(m[0]["Layers"].size(), "the image"));
  ASSIGN_OR_RETURN(std::string config_path,
                   Inside(root, m[0]["Config"].get<std::string>()));
  ASSIGN_OR_RETURN(std::string config_bytes, ReadFileToString(config_path));
  ASSIGN_OR_RETURN(json config, ParseJson(config_bytes, "image config"));
  std::vector<Descriptor> layers;
  for (const auto& l : m[0]["Layers"]) {
    if (!l.is_string()) {
      return absl::InvalidArgumentError("manifest.json: a layer is no string");
    }
    ASSIGN_OR_RETURN(std::string p, Inside(root, l.get<std::string>()));
    ASSIGN_OR_RETURN(Descriptor d, StoreLayerFile(store, p));
    layers.push_back(d);
  }
  RETURN_IF_ERROR(store->blobs()->Put(store->ns(), config_bytes));
  Descriptor config_desc{kMediaTypeConfig, Digest::Of(config_bytes)};
  std::string manifest = Serialize(MakeManifest(config_desc, layers));
  // Check the pair before it is stored.
  RETURN_IF_ERROR(ParseImage(manifest, config_bytes).status());
  RETURN_IF_ERROR(store->blobs()->Put(store->ns(), manifest));
  return Descriptor{kMediaTypeManifest, Digest::Of(manifest)};
}

absl::StatusOr<Descriptor> ImportOciLayout(ImageStore* store,
                                           const std::string& root) {
  ASSIGN_OR_RETURN(std::string text, ReadJsonFile(root + "/index.json"));
  ASSIGN_OR_RETURN(json index, ParseJson(text, "index.json"));
  if (!index.is_object() || !index.contains("manifests") ||
      !index["manifests"].is_array() || index["manifests"].empty()) {
    return absl::InvalidArgumentError("index.json: no manifests");
  }
  ASSIGN_OR_RETURN(Descriptor md,
                   ParseDescriptor(index["manifests"][0], "index.json"));
  auto blob = [&](const Descriptor& d) -> absl::StatusOr<std::string> {
    std::string p = absl::StrCat(root, "/", BlobPath(d.digest));
    ASSIGN_OR_RETURN(Digest actual, HashFile(p));
    if (actual != d.digest) {
      return absl::DataLossError(absl::StrCat("blob ", OciDigest(d.digest),
                                              " does not match its digest"));
    }
    return p;
  };
  // One image: its layers, config and manifest, each checked.
  auto import_image = [&](const Descriptor& d,
                          const std::string& manifest) -> absl::Status {
    ASSIGN_OR_RETURN(json mj, ParseJson(manifest, "manifest"));
    if (!mj.is_object() || !mj.contains("config")) {
      return absl::InvalidArgumentError(
          absl::StrCat("manifest ", OciDigest(d.digest), ": no config"));
    }
    RETURN_IF_ERROR(
        stagefarm::json::OptionalString(mj, "mediaType", "manifest").status());
    // Refused before any blob is stored.
    ASSIGN_OR_RETURN(std::vector<Descriptor> layers, ParseManifestLayers(mj));
    RETURN_IF_ERROR(CheckLayerCount(
        layers.size(), absl::StrCat("the image ", OciDigest(d.digest))));
    ASSIGN_OR_RETURN(Descriptor cd, ParseDescriptor(mj["config"], "config"));
    ASSIGN_OR_RETURN(std::string cp, blob(cd));
    ASSIGN_OR_RETURN(std::string config_bytes, ReadFileToString(cp));
    ASSIGN_OR_RETURN(Image image, ParseImage(manifest, config_bytes));
    for (const Descriptor& l : image.layers) {
      ASSIGN_OR_RETURN(std::string lp, blob(l));
      RETURN_IF_ERROR(UploadFile(store->blobs(), store->ns(), lp, l.digest));
    }
    RETURN_IF_ERROR(store->blobs()->Put(store->ns(), config_bytes));
    return store->blobs()->Put(store->ns(), manifest);
  };
  ASSIGN_OR_RETURN(std::string mp, blob(md));
  ASSIGN_OR_RETURN(std::string manifest, ReadFileToString(mp));
  ASSIGN_OR_RETURN(json mj, ParseJson(manifest, "manifest"));
  if (!IsIndex(mj)) {
    RETURN_IF_ERROR(import_image(md, manifest));
    return md;
  }
  // A multi-platform image: every platform's image, then the index as
  // written (its digest is the image's identity).
  ASSIGN_OR_RETURN(std::vector<IndexEntry> entries, ParseIndex(mj));
  if (entries.empty()) {
    return absl::InvalidArgumentError("image index: no platform images");
  }
  // Attestation manifests too: the index names them.
  ASSIGN_OR_RETURN(std::vector<Descriptor> all, IndexManifests(mj));
  std::vector<std::string> docs;
  for (const Descriptor& m : all) {
    ASSIGN_OR_RETURN(std::string ep, blob(m));
    ASSIGN_OR_RETURN(std::string em, ReadFileToString(ep));
    // Every platform's depth before any platform's blobs are stored.
    ASSIGN_OR_RETURN(json ej, ParseJson(em, "manifest"));
    ASSIGN_OR_RETURN(std::vector<Descriptor> layers, ParseManifestLayers(ej));
    RETURN_IF_ERROR(CheckLayerCount(
        layers.size(), absl::StrCat("the image ", OciDigest(m.digest))));
    docs.push_back(std::move(em));
  }
  for (size_t i = 0; i < all.size(); ++i) {
    RETURN_IF_ERROR(import_image(all[i], docs[i]));
  }
  RETURN_IF_ERROR(store->blobs()->Put(store->ns(), manifest));
  return Descriptor{kMediaTypeIndex, md.digest};
}

absl::StatusOr<Descriptor> ImportRootfs(ImageStore* store,
                                        const std::string& dir,
                                        const std::string& scratch,
                                        const platform::Platform& p) {
  archives::LayerOptions lo;
  std::string blob_path = scratch + "/rootfs-layer";
  ASSIGN_OR_RETURN(archives::LayerBlob blob,
                   archives::WriteLayer(dir, lo, blob_path));
  RETURN_IF_ERROR(
      UploadFile(store->blobs(), store->ns(), blob_path, blob.digest));
  unlink(blob_path.c_str());
  json config = EmptyImageConfig(p);
  config["rootfs"]["diff_ids"] = {blob.diff_id};
  config["history"] = {json{{"created_by", "stagefarm image import"},
                            {"comment", "imported from a root file system"}}};
  return store->PutImage(config, {Descriptor{blob.media_type, blob.digest}});
}

}  // namespace

absl::Status ExportImage(ImageStore* store, const Digest& manifest,
                         const std::vector<std::string>& names,
                         ArchiveFormat format, const std::string& out_path) {
  ASSIGN_OR_RETURN(std::vector<IndexEntry> platforms,
                   store->Platforms(manifest));
  bool is_index =
      platforms.size() != 1 || platforms[0].manifest.digest != manifest;
  if (is_index && format == ArchiveFormat::kDocker) {
    std::vector<std::string> offered;
    for (const IndexEntry& e : platforms)
      offered.push_back(e.platform.String());
    return absl::FailedPreconditionError(
        absl::StrCat("a docker archive holds one platform and this image has ",
                     platforms.size(), " (", absl::StrJoin(offered, ", "),
                     "): build with one --platform, or export type=oci"));
  }
  std::vector<ResolvedImage> images;
  ASSIGN_OR_RETURN(std::vector<Descriptor> manifests,
                   store->Manifests(manifest));
  for (const Descriptor& m : manifests) {
    ASSIGN_OR_RETURN(ResolvedImage image, store->Load(m.digest));
    images.push_back(std::move(image));
  }
  std::string tmp = absl::StrCat(out_path, ".tmp-", getpid());
  absl::Status status;
  {
    TarWriter w(tmp);
    status = w.status();
    if (status.ok())
      status = w.AddBytes("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    json manifests = json::array();
    json entry = DescriptorJson(is_index ? Descriptor{kMediaTypeIndex, manifest}
                                         : images[0].manifest);
    if (!names.empty()) {
      std::string tag = names[0].substr(names[0].rfind(':') + 1);
      entry["annotations"] = {{"io.containerd.image.name", names[0]},
                              {"org.opencontainers.image.ref.name", tag}};
    }
    manifests.push_back(entry);
    json index{{"schemaVersion", 2},
               {"mediaType", kMediaTypeIndex},
               {"manifests", manifests}};
    if (status.ok()) status = w.AddBytes("index.json", Serialize(index));
    if (format == ArchiveFormat::kDocker && status.ok()) {
      const ResolvedImage& image = images[0];
      json layers = json::array();
      for (const Descriptor& l : image.image.layers) {
        layers.push_back(BlobPath(l.digest));
      }
      json dm = json::array({json{{"Config", BlobPath(image.config.digest)},
                                  {"RepoTags", names},
                                  {"Layers", layers}}});
      status = w.AddBytes("manifest.json", Serialize(dm));
    }
    if (status.ok()) status = w.AddDir("blobs/");
    if (status.ok()) status = w.AddDir("blobs/sha256/");
    std::vector<Digest> blobs;
    if (is_index) blobs.push_back(manifest);
    for (const ResolvedImage& image : images) {
      blobs.push_back(image.manifest.digest);
      blobs.push_back(image.config.digest);
      for (const Descriptor& l : image.image.layers) blobs.push_back(l.digest);
    }
    std::sort(blobs.begin(), blobs.end());
    blobs.erase(std::unique(blobs.begin(), blobs.end()), blobs.end());
    for (const Digest& d : blobs) {
      if (!status.ok()) break;
      status = w.AddBlob(BlobPath(d), store->blobs(), store->ns(), d);
    }
    if (status.ok()) status = w.Close();
  }
  if (status.ok() && rename(tmp.c_str(), out_path.c_str()) != 0) {
    status = absl::InternalError(
        absl::StrCat("cannot write ", out_path, ": ", strerror(errno)));
  }
  if (!status.ok()) unlink(tmp.c_str());
  return status;
}

absl::StatusOr<Descriptor> ImportImage(
    ImageStore* store, const std::string& path, const std::string& scratch,
    const platform::Platform& rootfs_platform) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", strerror(errno)));
  }
  std::string root = path;
  std::string unpacked;
  if (!S_ISDIR(st.st_mode)) {
    ASSIGN_OR_RETURN(unpacked, MakeTempDir(scratch, "import-"));
    archives::ExtractOptions eo;
    eo.what = path;
    absl::Status s = archives::ExtractArchive(path, unpacked, eo);
    if (!s.ok()) {
      (void)RemoveAll(unpacked);
      return s;
    }
    root = unpacked;
  }
  absl::StatusOr<Descriptor> result;
  struct stat probe;
  if (stat((root + "/manifest.json").c_str(), &probe) == 0) {
    result = ImportDockerArchive(store, root);
  } else if (stat((root + "/oci-layout").c_str(), &probe) == 0) {
    result = ImportOciLayout(store, root);
  } else {
    result = ImportRootfs(store, root, scratch, rootfs_platform);
  }
  if (!unpacked.empty()) (void)RemoveAll(unpacked);
  if (!result.ok()) {
    return absl::Status(
        result.status().code(),
        absl::StrCat("import ", path, ": ", result.status().message()));
  }
  return result;
}

}  // namespace stagefarm::image
