#include "cachemount/shared_cache_mounts.h"

#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cachemount/cache_index.h"
#include "common/fs_util.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "contexttree/context_fetch.h"
#include "contexttree/context_upload.h"

namespace stagefarm::cachemount {
namespace {

constexpr char kRoot[] = "root";

}  // namespace

Digest PointerKey(const std::string& id) {
  return Digest::Of(absl::StrCat("stagefarm.cachemount.v1\n", id));
}

absl::Mutex* SharedCacheMounts::LockFor(const std::string& id) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<absl::Mutex>& m = locks_[id];
  if (m == nullptr) m = std::make_unique<absl::Mutex>();
  return m.get();
}

std::string SharedCacheMounts::StatePath(const std::string& id,
                                         absl::string_view what) const {
  return absl::StrCat(state_dir_, "/", Sha256::HexOf(id), ".", what);
}

std::optional<Digest> SharedCacheMounts::Synced(const std::string& id) const {
  absl::StatusOr<std::string> text = ReadFileToString(StatePath(id, "synced"));
  if (!text.ok()) return std::nullopt;
  std::string t(absl::StripAsciiWhitespace(*text));
  size_t slash = t.find('/');
  if (slash == std::string::npos) return std::nullopt;
  int64_t size = 0;
  if (!absl::SimpleAtoi(t.substr(slash + 1), &size)) return std::nullopt;
  absl::StatusOr<Digest> d = Digest::Parse(t.substr(0, slash), size);
  if (!d.ok()) return std::nullopt;
  return *d;
}

void SharedCacheMounts::SetSynced(const std::string& id,
                                  const Digest& root) const {
  // Only saves work next time: a failure to write it is not an error.
  (void)MakeDirs(state_dir_, 0700);
  (void)WriteStringToFile(StatePath(id, "synced"), root.ToString());
}

absl::StatusOr<SharedCacheMounts::Pointer> SharedCacheMounts::Latest(
    const std::string& id) {
  absl::StatusOr<std::string> text = store_->GetAction("", PointerKey(id));
  if (absl::IsNotFound(text.status())) return Pointer{};
  RETURN_IF_ERROR(text.status());
  reapi::ActionResult ar;
  if (!ar.ParseFromString(*text)) {
    return absl::DataLossError("unreadable cache-mount record");
  }
  for (const auto& f : ar.output_files()) {
    if (f.path() != kRoot) continue;
    ASSIGN_OR_RETURN(Digest d, Digest::FromProto(f.digest()));
    return Pointer{d, false};
  }
  // Pruned (cache_index.h): no root.
  return Pointer{std::nullopt, true};
}

absl::Status SharedCacheMounts::Pull(const std::string& id,
                                     const std::string& dir) {
  absl::MutexLock lock(LockFor(id));
  ASSIGN_OR_RETURN(Pointer latest, Latest(id));
  if (latest.pruned) {
    // Pruned since this worker last synced: its copy goes too, so the
    // cache starts afresh here as everywhere.
    if (Synced(id)) {
      RETURN_IF_ERROR(RemoveAll(dir));
      RETURN_IF_ERROR(MakeDirs(dir, 0755));
      (void)RemoveAll(StatePath(id, "synced"));
      (void)RemoveAll(StatePath(id, "stat"));
    }
    return absl::OkStatus();
  }
  if (!latest.root || latest.root == Synced(id)) return absl::OkStatus();
  contexttree::StatCache cache =
      contexttree::StatCache::Load(StatePath(id, "stat"));
  RETURN_IF_ERROR(
      contexttree::MergeTree(store_, "", *latest.root, dir, &cache));
  SetSynced(id, *latest.root);
  return absl::OkStatus();
}

absl::Status SharedCacheMounts::Push(const std::string& id,
                                     const std::string& dir) {
  absl::MutexLock lock(LockFor(id));
  const std::string stat_path = StatePath(id, "stat");
  contexttree::StatCache cache = contexttree::StatCache::Load(stat_path);
  ASSIGN_OR_RETURN(contexttree::ContextTree tree,
                   contexttree::BuildContextTree(dir, nullptr, &cache));
  const std::optional<Digest> synced = Synced(id);
  if (synced && tree.root == *synced) return absl::OkStatus();  // unchanged
  ASSIGN_OR_RETURN(Pointer pointer, Latest(id));
  const std::optional<Digest> latest = pointer.root;
  if (latest && latest != synced && latest != tree.root) {
    // Another worker published since this one pulled: take in the files
    // it added, so that what both added is kept; where both wrote the same
    // path, this step's version (the later) stays.
    RETURN_IF_ERROR(contexttree::MergeTree(store_, "", *latest, dir, &cache,
                                           /*keep_existing=*/true));
    ASSIGN_OR_RETURN(tree, contexttree::BuildContextTree(dir, nullptr, &cache));
  }
  RETURN_IF_ERROR(contexttree::UploadMissing(tree, store_->client()).status());
  reapi::ActionResult ar;
  auto* f = ar.add_output_files();
  f->set_path(kRoot);
  tree.root.ToProto(f->mutable_digest());
  RETURN_IF_ERROR(
      store_->PutAction("", PointerKey(id), ar.SerializeAsString()));
  SetSynced(id, tree.root);
  cache.DropUnused();
  (void)cache.Save(stat_path);
  // What `stagefarm cache ls` shows and the bound keeps to; the cache is
  // published either way.
  CacheInfo info;
  info.id = id;
  info.root = tree.root.ToString();
  info.bytes = tree.total_bytes;
  info.files = tree.file_count;
  info.used = absl::ToUnixSeconds(absl::Now());
  absl::StatusOr<std::vector<std::string>> pruned =
      RecordCache(store_, info, max_bytes_);
  if (!pruned.ok()) {
    LogError(absl::StrCat("cache mount ", id,
                          ": updating the index: ", pruned.status().message()));
  } else {
    for (const std::string& p : *pruned) {
      LogInfo(absl::StrCat("cache mount ", p,
                           " pruned: the shared caches exceed their bound"));
    }
  }
  return absl::OkStatus();
}

}  // namespace stagefarm::cachemount
