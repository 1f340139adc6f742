#include "image/image_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/fs_util.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace stagefarm::image {
namespace {

std::string NowRfc3339() { return Rfc3339(time(nullptr)); }

}  // namespace

ImageStore::ImageStore(BlobStore* blobs, std::string ns, std::string index_path)
    : blobs_(blobs), ns_(std::move(ns)), index_path_(std::move(index_path)) {}

ImageStore::ImageStore(BlobStore* blobs, std::string ns,
                       std::unique_ptr<TagIndex> tags)
    : blobs_(blobs), ns_(std::move(ns)), tags_(std::move(tags)) {}

absl::StatusOr<Descriptor> ImageStore::PutImage(
    const nlohmann::json& config, const std::vector<Descriptor>& layers) {
  std::string config_bytes = Serialize(config);
  Descriptor config_desc{kMediaTypeConfig, Digest::Of(config_bytes)};
  RETURN_IF_ERROR(blobs_->Put(ns_, config_bytes));
  std::string manifest_bytes = Serialize(MakeManifest(config_desc, layers));
  Descriptor manifest_desc{kMediaTypeManifest, Digest::Of(manifest_bytes)};
  RETURN_IF_ERROR(blobs_->Put(ns_, manifest_bytes));
  return manifest_desc;
}

absl::StatusOr<Descriptor> ImageStore::PutIndex(
    const std::vector<IndexEntry>& images) {
  std::string bytes = Serialize(MakeIndex(images));
  Descriptor d{kMediaTypeIndex, Digest::Of(bytes)};
  RETURN_IF_ERROR(blobs_->Put(ns_, bytes));
  return d;
}

absl::StatusOr<std::vector<IndexEntry>> ImageStore::Platforms(
    const Digest& digest) {
  ASSIGN_OR_RETURN(std::string bytes, blobs_->Get(ns_, digest));
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, "image manifest"));
  if (IsIndex(doc)) return ParseIndex(doc);
  ASSIGN_OR_RETURN(ResolvedImage image, Load(digest));
  IndexEntry e;
  e.manifest = image.manifest;
  if (!ConfigPlatform(image.image.config, &e.platform)) {
    e.platform = platform::Host();
  }
  return std::vector<IndexEntry>{e};
}

absl::StatusOr<std::vector<Descriptor>> ImageStore::Manifests(
    const Digest& digest) {
  ASSIGN_OR_RETURN(std::string bytes, blobs_->Get(ns_, digest));
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, "image manifest"));
  if (IsIndex(doc)) return IndexManifests(doc);
  return std::vector<Descriptor>{Descriptor{kMediaTypeManifest, digest}};
}

absl::StatusOr<ResolvedImage> ImageStore::LoadFor(
    const Digest& digest, const platform::Platform& want) {
  ASSIGN_OR_RETURN(std::string bytes, blobs_->Get(ns_, digest));
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(bytes, "image manifest"));
  if (IsIndex(doc)) {
    ASSIGN_OR_RETURN(std::vector<IndexEntry> entries, ParseIndex(doc));
    std::vector<std::string> offered;
    for (const IndexEntry& e : entries) {
      if (e.platform == want) return Load(e.manifest.digest);
      offered.push_back(e.platform.String());
    }
    return absl::NotFoundError(absl::StrCat(
        "no image for ", want.String(), " (it has: ",
        offered.empty() ? "none" : absl::StrJoin(offered, ", "), ")"));
  }
  ASSIGN_OR_RETURN(ResolvedImage image, Load(digest));
  platform::Platform has;
  if (ConfigPlatform(image.image.config, &has) && has != want) {
    return absl::FailedPreconditionError(
        absl::StrCat("the image is for ", has.String(), ", not ", want.String(),
                     " (build or import one for ", want.String(),
                     ", or an index with both)"));
  }
  return image;
}

absl::StatusOr<int64_t> ImageStore::TotalSize(const Digest& digest) {
  ASSIGN_OR_RETURN(std::vector<IndexEntry> entries, Platforms(digest));
  int64_t size = 0;
  if (entries.size() != 1 || entries[0].manifest.digest != digest) {
    size += digest.size();  // the index itself
  }
  for (const IndexEntry& e : entries) {
    ASSIGN_OR_RETURN(ResolvedImage image, Load(e.manifest.digest));
    size += e.manifest.digest.size() + image.config.digest.size();
    for (const Descriptor& l : image.image.layers) size += l.digest.size();
  }
  return size;
}

absl::StatusOr<ResolvedImage> ImageStore::Load(const Digest& manifest) {
  ResolvedImage out;
  ASSIGN_OR_RETURN(out.manifest_bytes, blobs_->Get(ns_, manifest));
  out.manifest = Descriptor{kMediaTypeManifest, manifest};
  ASSIGN_OR_RETURN(nlohmann::json m,
                   ParseJson(out.manifest_bytes, "image manifest"));
  if (IsIndex(m)) {
    return absl::InvalidArgumentError(
        "an image index, not an image manifest: choose a platform");
  }
  if (!m.is_object() || !m.contains("config")) {
    return absl::InvalidArgumentError("image manifest: no config descriptor");
  }
  if (m.contains("mediaType") && m["mediaType"].is_string()) {
    out.manifest.media_type = m["mediaType"].get<std::string>();
  }
  ASSIGN_OR_RETURN(out.config, ParseDescriptor(m["config"], "manifest.config"));
  ASSIGN_OR_RETURN(std::string config_bytes,
                   blobs_->Get(ns_, out.config.digest));
  ASSIGN_OR_RETURN(out.image, ParseImage(out.manifest_bytes, config_bytes));
  return out;
}

absl::StatusOr<nlohmann::json> ImageStore::ReadIndexLocked() {
  std::ifstream in(index_path_);
  if (!in) return nlohmann::json::object();
  std::stringstream ss;
  ss << in.rdbuf();
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(ss.str(), index_path_));
  if (!j.is_object()) {
    return absl::DataLossError(
        absl::StrCat(index_path_, ": the image index is not a JSON object"));
  }
  return j;
}

absl::Status ImageStore::WriteIndexLocked(const nlohmann::json& index) {
  std::string tmp = absl::StrCat(index_path_, ".tmp.", getpid());
  std::string text = json::Dump(index, 2) + "\n";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot write ", tmp, ": ", strerror(errno)));
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(
          absl::StrCat("cannot write ", tmp, ": ", strerror(e)));
    }
    done += static_cast<size_t>(n);
  }
  fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), index_path_.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("cannot replace ", index_path_, ": ", strerror(e)));
  }
  return absl::OkStatus();
}

absl::Status ImageStore::Tag(absl::string_view name, const Digest& manifest) {
  ASSIGN_OR_RETURN(std::string ref, NormalizeReference(name));
  // The index is JSON, which holds only UTF-8: any other name would be
  // stored changed. The callers check names by Docker's grammar first
  // (registry/reference.h); this keeps the store from storing another name.
  if (!json::IsValidUtf8(ref)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid image reference \"", absl::CHexEscape(ref),
                     "\": invalid reference format"));
  }
  ASSIGN_OR_RETURN(int64_t size, TotalSize(manifest));
  if (tags_ != nullptr) {
    return tags_->Set(ImageRecord{ref, manifest, size, NowRfc3339()});
  }
  absl::MutexLock lock(&mu_);
  FileLock file_lock(index_path_ + ".lock", FileLock::Mode::kWait);
  if (!file_lock.held()) {
    return absl::InternalError(
        absl::StrCat("cannot lock ", index_path_, ".lock"));
  }
  ASSIGN_OR_RETURN(nlohmann::json index, ReadIndexLocked());
  index[ref] = nlohmann::json{{"manifest", OciDigest(manifest)},
                              {"manifest_size", manifest.size()},
                              {"size", size},
                              {"created", NowRfc3339()}};
  return WriteIndexLocked(index);
}

absl::StatusOr<std::vector<ImageRecord>> ImageStore::List() {
  if (tags_ != nullptr) return tags_->List();
  absl::MutexLock lock(&mu_);
  FileLock file_lock(index_path_ + ".lock", FileLock::Mode::kWait);
  ASSIGN_OR_RETURN(nlohmann::json index, ReadIndexLocked());
  std::vector<ImageRecord> out;
  for (auto it = index.begin(); it != index.end(); ++it) {
    const nlohmann::json& v = it.value();
    if (!v.is_object() || !v.contains("manifest") ||
        !v["manifest"].is_string() || !v.contains("manifest_size") ||
        !v["manifest_size"].is_number_integer()) {
      return absl::DataLossError(
          absl::StrCat(index_path_, ": entry \"", it.key(), "\" is malformed"));
    }
    ImageRecord r;
    r.name = it.key();
    std::string what = absl::StrCat(index_path_, ": ", r.name);
    ASSIGN_OR_RETURN(std::string manifest, json::String(v, "manifest", what));
    ASSIGN_OR_RETURN(int64_t manifest_size,
                     json::Int(v, "manifest_size", what));
    ASSIGN_OR_RETURN(r.manifest, ParseOciDigest(manifest, manifest_size, what));
    ASSIGN_OR_RETURN(std::optional<int64_t> size,
                     json::OptionalInt(v, "size", what));
    ASSIGN_OR_RETURN(std::optional<std::string> created,
                     json::OptionalString(v, "created", what));
    r.size = size.value_or(0);
    r.created = created.value_or("");
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<ResolvedImage> ImageStore::Resolve(
    absl::string_view name, const platform::Platform& want) {
  ASSIGN_OR_RETURN(std::string ref, NormalizeReference(name));
  ASSIGN_OR_RETURN(std::vector<ImageRecord> records, List());
  for (const ImageRecord& r : records) {
    if (r.name != ref) continue;
    auto image = LoadFor(r.manifest, want);
    bool other_platform = absl::IsNotFound(image.status()) ||
                          absl::IsFailedPrecondition(image.status());
    if (other_platform && puller_) {
      // The name's image for another platform is pulled, and the name then
      // holds both: the platforms it had and the pulled one, as an index.
      absl::StatusOr<ResolvedImage> pulled = puller_(ref, want);
      if (pulled.ok()) {
        RETURN_IF_ERROR(AddPlatform(ref, r.manifest, want, pulled->manifest));
        return pulled;
      }
    }
    if (!image.ok()) {
      return absl::Status(
          image.status().code(),
          absl::StrCat("image \"", ref, "\": ", image.status().message()));
    }
    image->name = ref;
    return image;
  }
  std::string import_hint =
      absl::StrCat("import it: stagefarm image import FILE-OR-DIR -t ", ref);
  if (!puller_) {
    return absl::NotFoundError(absl::StrCat(
        "image \"", ref, "\" is not in the local image store; ", import_hint));
  }
  absl::StatusOr<ResolvedImage> pulled = puller_(ref, want);
  if (pulled.ok()) return pulled;
  return absl::Status(
      pulled.status().code(),
      absl::StrCat("image \"", ref,
                   "\" is not in the local image store, and pulling it "
                   "failed: ",
                   pulled.status().message(), "; or ", import_hint));
}

absl::Status ImageStore::AddPlatform(const std::string& name, const Digest& had,
                                     const platform::Platform& p,
                                     const Descriptor& image) {
  ASSIGN_OR_RETURN(std::vector<IndexEntry> entries, Platforms(had));
  std::vector<IndexEntry> merged;
  for (const IndexEntry& e : entries) {
    if (e.platform != p) merged.push_back(e);
  }
  merged.push_back(IndexEntry{p, image});
  ASSIGN_OR_RETURN(Descriptor index, PutIndex(merged));
  return Tag(name, index.digest);
}

absl::StatusOr<Digest> ImageStore::Tagged(absl::string_view name) {
  ASSIGN_OR_RETURN(std::string ref, NormalizeReference(name));
  ASSIGN_OR_RETURN(std::vector<ImageRecord> records, List());
  for (const ImageRecord& r : records) {
    if (r.name == ref) return r.manifest;
  }
  return absl::NotFoundError(absl::StrCat("no image named \"", ref, "\""));
}

absl::Status ImageStore::Remove(absl::string_view name) {
  ASSIGN_OR_RETURN(std::string ref, NormalizeReference(name));
  if (tags_ != nullptr) return tags_->Remove(ref);
  absl::MutexLock lock(&mu_);
  FileLock file_lock(index_path_ + ".lock", FileLock::Mode::kWait);
  ASSIGN_OR_RETURN(nlohmann::json index, ReadIndexLocked());
  if (!index.contains(ref)) {
    return absl::NotFoundError(absl::StrCat("no image named \"", ref, "\""));
  }
  index.erase(ref);
  return WriteIndexLocked(index);
}

}  // namespace stagefarm::image
