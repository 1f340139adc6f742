#include "attest/provenance.h"

namespace stagefarm::attest {

using json = nlohmann::json;

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
  json internal{{"builderPlatform", in.builder_platform}};
  if (in.max && !in.layout.is_null()) internal["buildConfig"] = in.layout;
  json deps = json::array();
  for (const Dependency& d : in.dependencies) {
    deps.push_back({{"uri", d.uri}, {"digest", {{"sha256", d.sha256}}}});
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
                   {"metadata",
                    {{"invocationID", in.invocation_id},
                     {"startedOn", in.started},
                     {"finishedOn", in.finished},
                     {"mode", in.max ? "max" : "min"}}}}}};
  return Statement(in.subjects, kSlsaProvenanceV1, std::move(predicate));
}

}  // namespace stagefarm::attest
