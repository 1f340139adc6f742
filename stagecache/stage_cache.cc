#include "stagecache/stage_cache.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cachekey/cache_key.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace stagefarm::stagecache {
namespace {

constexpr int kStageResultVersion = 1;

absl::StatusOr<Digest> KeyDigest(const std::string& key) {
  if (!absl::StartsWith(key, "sha256:")) {
    return absl::InvalidArgumentError("stage key: not sha256:<hex>");
  }
  return Digest::Parse(key.substr(7), 32);
}

}  // namespace

std::string StageKey(const v1::BuildSpec& spec, int index, bool is_target,
                     const std::vector<std::string>& dependency_keys) {
  cachekey::CacheKeyBuilder k;
  k.Add("kind", "stagefarm.stage.v1")
      .Add("dockerfile", spec.dockerfile())
      .Add("dockerignore", spec.dockerignore())
      .Add("context", absl::StrCat(spec.context().hash(), "/",
                                   spec.context().size_bytes()))
      .Add("stage", index)
      .Add("target", is_target ? 1 : 0)
      .Add("target_platform", spec.target_platform())
      .Add("build_platform", spec.build_platform())
      .Add("compression", spec.compression())
      .Add("level", spec.compression_level())
      .Add("source_date_epoch", spec.has_source_date_epoch()
                                    ? absl::StrCat(spec.source_date_epoch())
                                    : std::string("-"));
  std::vector<std::string> args;
  for (const auto& [name, value] : std::map<std::string, std::string>(
           spec.build_args().begin(), spec.build_args().end())) {
    args.push_back(absl::StrCat(name, "=", value));
  }
  k.AddList("build_args", args);
  std::vector<std::string> images;
  std::map<std::string, std::string> sorted;
  for (const auto& [name, d] : spec.images()) {
    sorted[name] = absl::StrCat(d.hash(), "/", d.size_bytes());
  }
  for (const auto& [name, d] : sorted) images.push_back(name + "=" + d);
  k.AddList("images", images);
  k.AddList("dependencies", dependency_keys);
  return k.Finish();
}

absl::StatusOr<std::optional<StageHit>> LookupStage(CasClient* cas,
                                                    const std::string& key) {
  ASSIGN_OR_RETURN(Digest action, KeyDigest(key));
  auto result = cas->GetActionResult(action);
  if (absl::IsNotFound(result.status())) return std::optional<StageHit>();
  RETURN_IF_ERROR(result.status());
  for (const auto& f : result->output_files()) {
    if (f.path() != "stage.json") continue;
    ASSIGN_OR_RETURN(Digest d, Digest::FromProto(f.digest()));
    auto text = cas->ReadString(d);
    if (absl::IsNotFound(text.status())) return std::optional<StageHit>();
    RETURN_IF_ERROR(text.status());
    nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() ||
        j.value("version", 0) != kStageResultVersion || !j.contains("state") ||
        !j["state"].is_string()) {
      return std::optional<StageHit>();
    }
    StageHit hit;
    hit.state = j["state"].get<std::string>();
    hit.steps = j.value("steps", 0);
    return std::optional<StageHit>(std::move(hit));
  }
  return std::optional<StageHit>();
}

absl::Status StoreStage(CasClient* cas, const std::string& key,
                        const std::string& state_json,
                        const std::vector<Digest>& layers, int steps) {
  ASSIGN_OR_RETURN(Digest action, KeyDigest(key));
  nlohmann::json j{{"version", kStageResultVersion},
                   {"state", state_json},
                   {"steps", steps}};
  std::string text = stagefarm::json::Dump(j);
  RETURN_IF_ERROR(cas->WriteString(text));
  reapi::ActionResult ar;
  auto* f = ar.add_output_files();
  f->set_path("stage.json");
  Digest::Of(text).ToProto(f->mutable_digest());
  for (size_t i = 0; i < layers.size(); ++i) {
    auto* l = ar.add_output_files();
    l->set_path(absl::StrCat("layer/", i));
    layers[i].ToProto(l->mutable_digest());
  }
  return cas->UpdateActionResult(action, ar);
}

}  // namespace stagefarm::stagecache
