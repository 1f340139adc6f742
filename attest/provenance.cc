#include "attest/provenance.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace stagefarm::attest {

using json = nlohmann::json;

std::string DockerPurl(const std::string& name, const platform::Platform& p) {
  std::string repo = name, tag = "latest";
  size_t at = name.find('@');
  size_t colon = name.rfind(':');
  if (at != std::string::npos) {
    repo = name.substr(0, at);
    tag = name.substr(at + 1);
  } else if (colon != std::string::npos &&
             name.find('/', colon) == std::string::npos) {
    repo = name.substr(0, colon);
    tag = name.substr(colon + 1);
  }
  std::string escaped;
  for (char c : p.String()) {
    escaped += c == '/' ? std::string("%2F") : std::string(1, c);
  }
  return absl::StrCat("pkg:docker/", repo, "@", tag, "?platform=", escaped);
}

absl::Status DescribePlan(const dockerfile::Plan& plan,
                          const dockerfile::PlanOptions& options,
                          const ImageResolver& resolve, ProvenanceInput* in) {
  in->layout = json::array();
  std::set<std::string> networks;
  std::set<std::string> seen;  // dependencies already listed
  auto add = [&](Dependency d) {
    if (seen.insert(d.uri + "@" + d.sha256).second) {
      in->dependencies.push_back(std::move(d));
    }
  };
  for (const dockerfile::Stage& st : plan.stages) {
    if (!st.needed) continue;
    ASSIGN_OR_RETURN(
        platform::Platform sp,
        platform::Parse(dockerfile::StagePlatform(plan, st.index, options)));
    std::vector<std::string> names = st.images;
    if (st.base_stage < 0 && absl::AsciiStrToLower(st.base) != "scratch") {
      names.push_back(st.base);
    }
    for (const std::string& n : names) {
      ASSIGN_OR_RETURN(std::string sha, resolve(n, sp));
      add({DockerPurl(n, sp), sha});
    }
    json steps = json::array();
    for (const dockerfile::Instruction& inst : st.instructions) {
      steps.push_back(inst.original);
      if (const auto* run = std::get_if<dockerfile::RunInst>(&inst.value)) {
        networks.insert(run->network.empty() ? "default" : run->network);
        in->insecure = in->insecure || run->security == "insecure";
      }
      if (const auto* copy = std::get_if<dockerfile::CopyInst>(&inst.value)) {
        for (const std::string& src : copy->sources) {
          if (!copy->is_add || !(absl::StartsWith(src, "http://") ||
                                 absl::StartsWith(src, "https://"))) {
            continue;
          }
          absl::string_view sha = copy->checksum;
          absl::ConsumePrefix(&sha, "sha256:");
          add({src, std::string(sha)});
        }
      }
    }
    in->layout.push_back({{"stage", st.DisplayName()},
                          {"platform", sp.String()},
                          {"base", st.base},
                          {"steps", std::move(steps)}});
  }
  in->networks.assign(networks.begin(), networks.end());
  return absl::OkStatus();
}

json Statement(const std::vector<Subject>& subjects,
               const std::string& predicate_type, json predicate) {
  json subs = json::array();
  for (const Subject& s : subjects) {
    subs.push_back({{"name", s.name}, {"digest", {{"sha256", s.sha256}}}});
  }
  return json{{"_type", kStatementType},
              {"subject", std::move(subs)},
              {"predicateType", predicate_type},
              {"predicate", std::move(predicate)}};
}

json ProvenanceStatement(const ProvenanceInput& in) {
  json args = json::object();
  if (!in.target.empty()) args["target"] = in.target;
  for (const auto& [k, v] : in.build_args) {
    // BuildKit's request args: "build-arg:NAME"; values with mode=max.
    args["build-arg:" + k] = in.max ? v : "";
  }
  if (!in.vcs_source.empty()) args["vcs:source"] = in.vcs_source;
  if (!in.vcs_revision.empty()) args["vcs:revision"] = in.vcs_revision;
  json secrets = json::array();
  for (const std::string& id : in.secret_ids) {
    secrets.push_back({{"id", id}, {"optional", false}});
  }
  json config_source{{"path", in.dockerfile_name},
                     {"digest", {{"sha256", in.dockerfile_sha256}}}};
  if (!in.context.empty()) config_source["uri"] = "context:" + in.context;
  json external{{"configSource", std::move(config_source)},
                {"request",
                 {{"frontend", "dockerfile.v0"},
                  {"args", std::move(args)},
                  {"secrets", std::move(secrets)},
                  {"platform", in.platform}}}};
  json internal{{"builderPlatform", in.builder_platform},
                {"network", in.networks},
                {"insecure", in.insecure}};
  if (in.max && !in.layout.is_null()) internal["buildConfig"] = in.layout;
  json deps = json::array();
  for (const Dependency& d : in.dependencies) {
    json dep{{"uri", d.uri}};
    if (!d.sha256.empty()) dep["digest"] = {{"sha256", d.sha256}};
    deps.push_back(std::move(dep));
  }
  json metadata{
      {"invocationID", in.invocation_id},
      {"startedOn", in.started},
      {"finishedOn", in.finished},
      {"mode", in.max ? "max" : "min"},
      // As BuildKit: no RUN step had a network.
      {"hermetic", in.networks.empty() ||
                       (in.networks.size() == 1 && in.networks[0] == "none")}};
  if (!in.reproduced.empty()) {
    metadata["reproducible"] = {{"verified", true},
                                {"rebuild", {{"sha256", in.reproduced}}}};
  }
  json predicate{{"buildDefinition",
                  {{"buildType", kBuildType},
                   {"externalParameters", std::move(external)},
                   {"internalParameters", std::move(internal)},
                   {"resolvedDependencies", std::move(deps)}}},
                 {"runDetails",
                  {{"builder",
                    {{"id", in.builder_id},
                     {"version", {{"stagefarm", in.builder_version}}}}},
                   {"metadata", std::move(metadata)}}}};
  return Statement(in.subjects, kSlsaProvenanceV1, std::move(predicate));
}

}  // namespace stagefarm::attest
