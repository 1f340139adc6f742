#include "image/image_diff.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "archives/layer_tar.h"
#include "common/status_macros.h"

namespace stagefarm::image {

namespace {

using json = nlohmann::json;

absl::StatusOr<std::vector<archives::LayerEntry>> Entries(
    ImageStore* store, const Descriptor& layer) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> reader,
                   store->blobs()->OpenRead(store->ns(), layer.digest, 0, 0));
  return archives::ListLayer(
      [&](std::string* out) { return reader->Read(1 << 20, out); });
}

// What differs between two entries of the same path, or "".
std::string EntryDifference(const archives::LayerEntry& a,
                            const archives::LayerEntry& b) {
  if (a.type != b.type) {
    return absl::StrCat("type '", std::string(1, a.type), "' vs '",
                        std::string(1, b.type), "'");
  }
  if (a.sha256 != b.sha256) {
    return absl::StrCat("content differs (", a.size, " vs ", b.size, " bytes)");
  }
  if (a.link != b.link) {
    return absl::StrCat("link \"", a.link, "\" vs \"", b.link, "\"");
  }
  if (a.mode != b.mode) {
    return absl::StrFormat("mode %o vs %o", a.mode, b.mode);
  }
  if (a.uid != b.uid || a.gid != b.gid) {
    return absl::StrCat("owner ", a.uid, ":", a.gid, " vs ", b.uid, ":", b.gid);
  }
  if (a.mtime != b.mtime) {
    return absl::StrCat("mtime ", a.mtime, " vs ", b.mtime,
                        " (a time SOURCE_DATE_EPOCH does not clamp)");
  }
  return "";
}

// The instruction that made each layer (history entries with layers).
std::vector<std::string> LayerSteps(const json& config) {
  std::vector<std::string> out;
  if (!config.contains("history") || !config["history"].is_array()) {
    return out;
  }
  for (const json& h : config["history"]) {
    if (!h.is_object()) continue;
    if (h.contains("empty_layer") && h["empty_layer"] == true) continue;
    out.push_back(h.contains("created_by") && h["created_by"].is_string()
                      ? h["created_by"].get<std::string>()
                      : std::string());
  }
  return out;
}

// The first path (a.b[2].c) where two JSON documents differ.
std::string JsonDifference(const json& a, const json& b,
                           const std::string& at) {
  if (a.type() != b.type()) return at.empty() ? "." : at;
  if (a.is_object()) {
    std::map<std::string, int> keys;
    for (auto it = a.begin(); it != a.end(); ++it) keys[it.key()] |= 1;
    for (auto it = b.begin(); it != b.end(); ++it) keys[it.key()] |= 2;
    for (const auto& [k, in] : keys) {
      std::string path = at.empty() ? k : at + "." + k;
      if (in != 3) return path;
      std::string d = JsonDifference(a[k], b[k], path);
      if (!d.empty()) return d;
    }
    return "";
  }
  if (a.is_array()) {
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      std::string d = JsonDifference(a[i], b[i], absl::StrCat(at, "[", i, "]"));
      if (!d.empty()) return d;
    }
    return a.size() == b.size() ? "" : at;
  }
  return a == b ? "" : at;
}

}  // namespace

absl::StatusOr<std::string> FirstDifference(ImageStore* store,
                                            const Digest& first,
                                            const Digest& second) {
  if (first == second) return std::string("the images are the same");
  ASSIGN_OR_RETURN(ResolvedImage a, store->Load(first));
  ASSIGN_OR_RETURN(ResolvedImage b, store->Load(second));
  const std::vector<Descriptor>& la = a.image.layers;
  const std::vector<Descriptor>& lb = b.image.layers;
  std::vector<std::string> steps = LayerSteps(a.image.config);
  for (size_t i = 0; i < la.size() && i < lb.size(); ++i) {
    if (i < a.image.diff_ids.size() && i < b.image.diff_ids.size() &&
        a.image.diff_ids[i] == b.image.diff_ids[i]) {
      continue;
    }
    std::string where = absl::StrCat("layer ", i + 1, " of ", la.size());
    if (i < steps.size() && !steps[i].empty()) {
      absl::StrAppend(&where, " (", steps[i], ")");
    }
    ASSIGN_OR_RETURN(std::vector<archives::LayerEntry> ea,
                     Entries(store, la[i]));
    ASSIGN_OR_RETURN(std::vector<archives::LayerEntry> eb,
                     Entries(store, lb[i]));
    std::map<std::string, const archives::LayerEntry*> in_b;
    for (const auto& e : eb) in_b[e.path] = &e;
    std::map<std::string, bool> in_a;
    for (const auto& e : ea) {
      in_a[e.path] = true;
      auto other = in_b.find(e.path);
      if (other == in_b.end()) {
        return absl::StrCat(where, ": /", e.path,
                            " is only in the first build");
      }
      std::string d = EntryDifference(e, *other->second);
      if (!d.empty()) return absl::StrCat(where, ": /", e.path, ": ", d);
    }
    for (const auto& e : eb) {
      if (!in_a.count(e.path)) {
        return absl::StrCat(where, ": /", e.path, " is only in the rebuild");
      }
    }
    return absl::StrCat(where,
                        ": the same files in another order or tar encoding");
  }
  if (la.size() != lb.size()) {
    return absl::StrCat("the first build has ", la.size(),
                        " layers, the rebuild ", lb.size());
  }
  std::string field = JsonDifference(a.image.config, b.image.config, "");
  if (!field.empty())
    return absl::StrCat("the image configs differ at ", field);
  for (size_t i = 0; i < la.size(); ++i) {
    if (la[i].digest != lb[i].digest) {
      return absl::StrCat("layer ", i + 1,
                          ": the same files, compressed differently");
    }
  }
  return std::string("the manifests differ (annotations or media types)");
}

}  // namespace stagefarm::image
