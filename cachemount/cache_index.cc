#include "cachemount/cache_index.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "cachemount/shared_cache_mounts.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace stagefarm::cachemount {
namespace {

using nlohmann::json;

bool MostRecentFirst(const CacheInfo& a, const CacheInfo& b) {
  return a.used != b.used ? a.used > b.used : a.id < b.id;
}

Digest IndexKey() { return Digest::Of("stagefarm.cachemount.index.v1"); }

constexpr char kIndexFile[] = "index.json";

std::vector<CacheInfo> Parse(const std::string& text) {
  std::vector<CacheInfo> out;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc["caches"].is_array()) return out;
  for (const json& c : doc["caches"]) {
    if (!c.is_object() || !c["id"].is_string()) continue;
    CacheInfo i;
    i.id = c["id"].get<std::string>();
    i.root = c.value("root", "");
    i.bytes = c.value("bytes", int64_t{0});
    i.files = c.value("files", int64_t{0});
    i.used = c.value("used", int64_t{0});
    out.push_back(std::move(i));
  }
  return out;
}

absl::StatusOr<std::vector<CacheInfo>> Load(RemoteBlobStore* store) {
  absl::StatusOr<std::string> text = store->GetAction("", IndexKey());
  if (absl::IsNotFound(text.status())) return std::vector<CacheInfo>();
  RETURN_IF_ERROR(text.status());
  reapi::ActionResult ar;
  if (!ar.ParseFromString(*text)) return std::vector<CacheInfo>();
  for (const auto& f : ar.output_files()) {
    if (f.path() != kIndexFile) continue;
    ASSIGN_OR_RETURN(Digest d, Digest::FromProto(f.digest()));
    absl::StatusOr<std::string> doc = store->client()->ReadString(d);
    // An index whose blob the CAS evicted starts over.
    if (absl::IsNotFound(doc.status())) return std::vector<CacheInfo>();
    RETURN_IF_ERROR(doc.status());
    return Parse(*doc);
  }
  return std::vector<CacheInfo>();
}

absl::Status Save(RemoteBlobStore* store, std::vector<CacheInfo> caches) {
  std::sort(caches.begin(), caches.end(), MostRecentFirst);
  json list = json::array();
  for (const CacheInfo& c : caches) {
    list.push_back({{"id", c.id},
                    {"root", c.root},
                    {"bytes", c.bytes},
                    {"files", c.files},
                    {"used", c.used}});
  }
  // The document is a blob the record names (an action result's inline
  // fields are not returned unless asked for).
  const std::string doc = stagefarm::json::Dump(json{{"caches", list}});
  RETURN_IF_ERROR(store->client()->WriteString(doc));
  reapi::ActionResult ar;
  auto* f = ar.add_output_files();
  f->set_path(kIndexFile);
  Digest::Of(doc).ToProto(f->mutable_digest());
  return store->PutAction("", IndexKey(), ar.SerializeAsString());
}

}  // namespace

std::string PrunedRecord() {
  reapi::ActionResult ar;
  ar.set_stdout_raw("pruned");
  return ar.SerializeAsString();
}

absl::StatusOr<std::vector<CacheInfo>> ListCaches(RemoteBlobStore* store) {
  ASSIGN_OR_RETURN(std::vector<CacheInfo> caches, Load(store));
  std::sort(caches.begin(), caches.end(), MostRecentFirst);
  return caches;
}

absl::StatusOr<std::vector<std::string>> RecordCache(RemoteBlobStore* store,
                                                     const CacheInfo& info,
                                                     int64_t max_bytes) {
  ASSIGN_OR_RETURN(std::vector<CacheInfo> caches, Load(store));
  caches.erase(
      std::remove_if(caches.begin(), caches.end(),
                     [&](const CacheInfo& c) { return c.id == info.id; }),
      caches.end());
  caches.push_back(info);
  std::vector<std::string> pruned;
  if (max_bytes > 0) {
    int64_t total = 0;
    for (const CacheInfo& c : caches) total += c.bytes;
    // Least recently used first; never the one just published.
    std::sort(
        caches.begin(), caches.end(),
        [](const CacheInfo& a, const CacheInfo& b) { return a.used < b.used; });
    for (auto it = caches.begin(); it != caches.end() && total > max_bytes;) {
      if (it->id == info.id) {
        ++it;
        continue;
      }
      RETURN_IF_ERROR(store->PutAction("", PointerKey(it->id), PrunedRecord()));
      total -= it->bytes;
      pruned.push_back(it->id);
      it = caches.erase(it);
    }
  }
  RETURN_IF_ERROR(Save(store, std::move(caches)));
  return pruned;
}

absl::StatusOr<std::vector<CacheInfo>> PruneCaches(
    RemoteBlobStore* store, const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(std::vector<CacheInfo> caches, Load(store));
  std::vector<CacheInfo> removed;
  for (const std::string& id : ids) {
    RETURN_IF_ERROR(store->PutAction("", PointerKey(id), PrunedRecord()));
    auto it = std::find_if(caches.begin(), caches.end(),
                           [&](const CacheInfo& c) { return c.id == id; });
    if (it != caches.end()) {
      removed.push_back(*it);
      caches.erase(it);
    } else {
      removed.push_back(CacheInfo{id});
    }
  }
  RETURN_IF_ERROR(Save(store, std::move(caches)));
  return removed;
}

}  // namespace stagefarm::cachemount
