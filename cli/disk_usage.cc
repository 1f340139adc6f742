#include "cli/disk_usage.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fs_util.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace stagefarm::cli {
namespace {

// Bytes of the regular files under `path` (each inode once).
int64_t TreeBytes(const std::string& path,
                  std::set<std::pair<dev_t, ino_t>>* seen) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  if (S_ISREG(st.st_mode)) {
    return seen->insert({st.st_dev, st.st_ino}).second ? st.st_size : 0;
  }
  if (!S_ISDIR(st.st_mode)) return 0;
  int64_t total = 0;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return 0;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    total += TreeBytes(path + "/" + name, seen);
  }
  closedir(d);
  return total;
}

std::vector<std::string> Children(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(dir + "/" + name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<RocksDbBlobStore*> LocalStore(Local* local) {
  if (local->local_store() == nullptr) {
    return absl::FailedPreconditionError(
        "disk usage and prune are about the local store; a shared CAS "
        "bounds itself (stagefarm-cas --max-bytes)");
  }
  return local->local_store();
}

// Every blob a tagged image needs, by hash: the tagged digest, each
// manifest it stands for (attestations included), their configs and
// layers, and the uncompressed layers (the configs' diff_ids: the step
// cache records those, so that the image rebuilds all cached).
absl::StatusOr<absl::flat_hash_set<std::string>> Needed(Local* local,
                                                        int64_t* images) {
  image::ImageStore* store = local->images();
  absl::flat_hash_set<std::string> out;
  ASSIGN_OR_RETURN(std::vector<image::ImageRecord> records, store->List());
  *images = static_cast<int64_t>(records.size());
  auto add = [&out](const nlohmann::json& v) {
    if (!v.is_string()) return;
    std::string hex = v.get<std::string>();
    if (hex.rfind("sha256:", 0) == 0) out.insert(hex.substr(7));
  };
  for (const image::ImageRecord& r : records) {
    absl::StatusOr<Digest> tagged = store->Tagged(r.name);
    if (!tagged.ok()) continue;
    out.insert(tagged->hash());
    absl::StatusOr<std::vector<image::Descriptor>> manifests =
        store->Manifests(*tagged);
    if (!manifests.ok()) continue;  // incomplete already; keep what is there
    for (const image::Descriptor& m : *manifests) {
      out.insert(m.digest.hash());
      absl::StatusOr<std::string> bytes =
          store->blobs()->Get(store->ns(), m.digest);
      if (!bytes.ok()) continue;
      nlohmann::json doc = nlohmann::json::parse(*bytes, nullptr, false);
      if (!doc.is_object()) continue;
      if (doc.contains("layers") && doc["layers"].is_array()) {
        for (const nlohmann::json& l : doc["layers"]) {
          if (l.is_object() && l.contains("digest")) add(l["digest"]);
        }
      }
      if (!doc.contains("config") || !doc["config"].is_object()) continue;
      const nlohmann::json& c = doc["config"];
      if (!c.contains("digest") || !c["digest"].is_string()) continue;
      add(c["digest"]);
      std::string hex = c["digest"].get<std::string>();
      if (hex.rfind("sha256:", 0) == 0) hex = hex.substr(7);
      absl::StatusOr<Digest> cd = Digest::Parse(hex, c.value("size", 0));
      if (!cd.ok()) continue;
      absl::StatusOr<std::string> config =
          store->blobs()->Get(store->ns(), *cd);
      if (!config.ok()) continue;
      nlohmann::json cfg = nlohmann::json::parse(*config, nullptr, false);
      if (!cfg.is_object() || !cfg.contains("rootfs") ||
          !cfg["rootfs"].is_object() || !cfg["rootfs"].contains("diff_ids") ||
          !cfg["rootfs"]["diff_ids"].is_array()) {
        continue;
      }
      for (const nlohmann::json& id : cfg["rootfs"]["diff_ids"]) add(id);
    }
  }
  // The step cache's records of those layers (and of steps without one):
  // what makes the images rebuild from the cache.
  if (RocksDbBlobStore* rocks = local->local_store(); rocks != nullptr) {
    std::vector<std::string> records;
    RETURN_IF_ERROR(
        rocks->ForEachAction(Local::kNamespace, [&](absl::string_view text) {
          reapi::ActionResult ar;
          if (!ar.ParseFromArray(text.data(), static_cast<int>(text.size()))) {
            return;
          }
          bool layer = false, ours = false;
          for (const auto& f : ar.output_files()) {
            if (f.path() != "layer") continue;
            layer = true;
            ours = out.contains(f.digest().hash());
          }
          if (layer && !ours) return;
          // A step's record ("step.json"), and its layer when it is ours;
          // other kinds of entries (compressed layers, stages) keep nothing.
          for (const auto& f : ar.output_files()) {
            if (f.path() == "step.json" || (layer && f.path() == "layer")) {
              records.push_back(f.digest().hash());
            }
          }
        }));
    out.insert(records.begin(), records.end());
  }
  return out;
}

}  // namespace

std::string HumanBytes(int64_t bytes, bool compact) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (compact) {
    return u == 0 ? absl::StrCat(bytes, "B")
                  : absl::StrFormat("%.3g%s", v, units[u]);
  }
  return u == 0 ? absl::StrCat(bytes, " B")
                : absl::StrFormat("%.1f %s", v, units[u]);
}

absl::StatusOr<DiskUsage> MeasureDiskUsage(Local* local) {
  ASSIGN_OR_RETURN(RocksDbBlobStore * store, LocalStore(local));
  DiskUsage u;
  StoreStats stats = store->Stats();
  u.blobs = stats.blob_count;
  u.blob_bytes = stats.stored_bytes;
  ASSIGN_OR_RETURN(absl::flat_hash_set<std::string> needed,
                   Needed(local, &u.images));
  RocksDbBlobStore::PruneResult kept = store->Measure(
      [&needed](const Digest& d) { return needed.contains(d.hash()); });
  u.kept_blobs = kept.blobs;
  u.kept_bytes = kept.bytes;
  ASSIGN_OR_RETURN(std::vector<snapshot::Snapshotter::Info> snaps,
                   local->snapshots()->List());
  u.snapshots = static_cast<int64_t>(snaps.size());
  for (const auto& s : snaps) u.snapshot_bytes += s.bytes;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const std::string& c : Children(local->home() + "/cache-mounts")) {
    ++u.cache_mounts;
    u.cache_mount_bytes += TreeBytes(c, &seen);
  }
  return u;
}

std::vector<LocalCache> ListLocalCaches(Local* local) {
  std::vector<LocalCache> out;
  const std::string ids = local->home() + "/cache-mount-ids/";
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const std::string& c : Children(local->home() + "/cache-mounts")) {
    LocalCache l;
    l.dir = c;
    const std::string name = c.substr(c.rfind('/') + 1);
    absl::StatusOr<std::string> id = ReadFileToString(ids + name);
    l.id = id.ok() ? *id : name;
    l.bytes = TreeBytes(c, &seen);
    struct stat st;
    if (stat(c.c_str(), &st) == 0) l.used = st.st_mtim.tv_sec;
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(),
            [](const LocalCache& a, const LocalCache& b) {
              return a.used != b.used ? a.used > b.used : a.id < b.id;
            });
  return out;
}

absl::StatusOr<std::vector<LocalCache>> PruneLocalCaches(
    Local* local, const std::vector<std::string>& ids, bool all) {
  std::vector<LocalCache> removed;
  for (LocalCache& c : ListLocalCaches(local)) {
    if (!all && std::find(ids.begin(), ids.end(), c.id) == ids.end()) continue;
    RETURN_IF_ERROR(RemoveAll(c.dir));
    (void)RemoveAll(local->home() + "/cache-mount-ids/" +
                    c.dir.substr(c.dir.rfind('/') + 1));
    removed.push_back(std::move(c));
  }
  return removed;
}

absl::StatusOr<Pruned> Prune(Local* local, const PruneOptions& options) {
  ASSIGN_OR_RETURN(RocksDbBlobStore * store, LocalStore(local));
  ASSIGN_OR_RETURN(DiskUsage u, MeasureDiskUsage(local));
  Pruned p;
  int64_t total = u.Total();
  if (options.all) {
    std::set<std::pair<dev_t, ino_t>> seen;
    for (const std::string& c : Children(local->home() + "/cache-mounts")) {
      int64_t bytes = TreeBytes(c, &seen);
      RETURN_IF_ERROR(RemoveAll(c));
      (void)RemoveAll(local->home() + "/cache-mount-ids/" +
                      c.substr(c.rfind('/') + 1));
      ++p.cache_mounts;
      p.cache_mount_bytes += bytes;
      total -= bytes;
    }
  }
  ASSIGN_OR_RETURN(std::vector<snapshot::Snapshotter::Info> snaps,
                   local->snapshots()->List());
  std::sort(snaps.begin(), snaps.end(),
            [](const auto& a, const auto& b) { return a.used < b.used; });
  for (const auto& s : snaps) {
    if (total <= options.keep_bytes) break;
    RETURN_IF_ERROR(local->snapshots()->Remove(s.name));
    ++p.snapshots;
    p.snapshot_bytes += s.bytes;
    total -= s.bytes;
  }
  if (total > options.keep_bytes) {
    int64_t images = 0;
    ASSIGN_OR_RETURN(absl::flat_hash_set<std::string> needed,
                     Needed(local, &images));
    const int64_t others = total - u.blob_bytes;
    RocksDbBlobStore::PruneResult r = store->Prune(
        std::max<int64_t>(0, options.keep_bytes - others),
        [&needed](const Digest& d) { return needed.contains(d.hash()); });
    p.blobs = r.blobs;
    p.blob_bytes = r.bytes;
  }
  return p;
}

absl::StatusOr<Pruned> KeepBound(Local* local) {
  const char* env = std::getenv("STAGEFARM_MAX_BYTES");
  if (env == nullptr || *env == '\0') return Pruned{};
  std::string text = absl::AsciiStrToUpper(env);
  int64_t scale = 1;
  if (!text.empty() &&
      std::string("KMGT").find(text.back()) != std::string::npos) {
    size_t power = std::string("KMGT").find(text.back()) + 1;
    for (size_t i = 0; i < power; ++i) scale *= 1024;
    text.pop_back();
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(text, &n) || n < 0 || n > (int64_t{1} << 50) / scale) {
    return absl::InvalidArgumentError(
        absl::StrCat("STAGEFARM_MAX_BYTES=\"", env,
                     "\": want a number of bytes, or one with K, M, G or T"));
  }
  if (local->local_store() == nullptr) return Pruned{};
  PruneOptions o;
  o.keep_bytes = n * scale;
  return Prune(local, o);
}

}  // namespace stagefarm::cli
