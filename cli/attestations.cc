#include "cli/attestations.h"

#include <unistd.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "attest/attach.h"
#include "attest/provenance.h"
#include "attest/sbom.h"
#include "cli/exit_status.h"
#include "cli/vcs.h"
#include "common/fs_util.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "contexttree/context_upload.h"
#include "frontend/dockerfile/dockerignore.h"
#include "frontend/dockerfile/plan.h"

namespace stagefarm::cli {

namespace {

using json = nlohmann::json;

// The context's REAPI tree root, as a farm upload names it.
std::string ContextDigest(const engine::BuildRequest& request) {
  std::optional<dockerfile::DockerignoreMatcher> ignore;
  if (!request.dockerignore.empty()) {
    auto m = dockerfile::DockerignoreMatcher::Create(
        dockerfile::ReadDockerignore(request.dockerignore));
    if (!m.ok()) return "";
    ignore = std::move(*m);
  }
  contexttree::StatCache cache;
  auto tree = contexttree::BuildContextTree(
      request.context_dir, ignore ? &*ignore : nullptr, &cache);
  if (!tree.ok()) return "";
  return absl::StrCat("sha256:", tree->root.hash(), "/", tree->root.size());
}

// The SPDX document of the packages in `state`'s files.
absl::StatusOr<json> ScanSbom(Local* local, const engine::ImageState& state,
                              const std::string& name,
                              const std::string& created,
                              const std::string& namespace_id) {
  ASSIGN_OR_RETURN(std::string dir, local->snapshots()->TempDir("sbom-"));
  std::string root = dir + "/rootfs";
  absl::Status st = local->engine()->ExportRootfs(state, root);
  absl::StatusOr<std::vector<attest::Package>> pkgs =
      st.ok() ? attest::ScanRootfs(root)
              : absl::StatusOr<std::vector<attest::Package>>(st);
  (void)RemoveAll(dir);
  RETURN_IF_ERROR(pkgs.status());
  return json::parse(attest::SpdxDocument(*pkgs, name, created, namespace_id));
}

bool Truthy(absl::string_view v) {
  return absl::EqualsIgnoreCase(v, "true") || v == "1";
}

// The stages besides the target whose packages an SBOM lists, as BuildKit
// reads BUILDKIT_SBOM_SCAN_STAGE: every needed stage when the build arg is
// true, else each stage that declares `ARG BUILDKIT_SBOM_SCAN_STAGE=true`
// (a build arg of false turns them off).
std::vector<const dockerfile::Stage*> StagesToScan(
    const dockerfile::Plan& plan, const dockerfile::PlanOptions& po) {
  constexpr char kArg[] = "BUILDKIT_SBOM_SCAN_STAGE";
  auto given = po.build_args.find(kArg);
  std::vector<const dockerfile::Stage*> out;
  for (const dockerfile::Stage& st : plan.stages) {
    // A target is named (an unnamed stage cannot be one).
    if (!st.needed || st.index == plan.target || st.name.empty()) continue;
    bool scan = false;
    if (given != po.build_args.end()) {
      scan = Truthy(given->second);
    } else {
      for (const dockerfile::Instruction& inst : st.instructions) {
        const auto* arg = std::get_if<dockerfile::ArgInst>(&inst.value);
        if (arg == nullptr) continue;
        for (const auto& a : arg->args) {
          scan = scan || (a.name == kArg && a.default_value &&
                          Truthy(*a.default_value));
        }
      }
    }
    if (scan) out.push_back(&st);
  }
  return out;
}

}  // namespace

absl::StatusOr<AttestOptions> ParseAttestFlags(
    const std::string& provenance, bool sbom,
    const std::vector<std::string>& attest) {
  AttestOptions o;
  o.sbom = sbom;
  auto mode = [&o](absl::string_view v,
                   absl::string_view flag) -> absl::Status {
    if (v == "max") {
      o.provenance = o.provenance_max = true;
    } else if (v == "min" || v == "true" || v == "1") {
      o.provenance = true;
    } else if (v == "false" || v == "0") {
      o.provenance = false;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": mode must be min or max (or true/false), not \"", v, "\""));
    }
    return absl::OkStatus();
  };
  if (!provenance.empty()) {
    absl::string_view v = provenance;
    absl::ConsumePrefix(&v, "mode=");
    RETURN_IF_ERROR(mode(v, "--provenance"));
  }
  for (const std::string& a : attest) {
    std::string type, m = "min";
    bool disabled = false;
    for (absl::string_view kv : absl::StrSplit(a, ',')) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, '=');
      if (p.first == "type") type = p.second;
      if (p.first == "mode") m = p.second;
      if (p.first == "disabled") disabled = p.second == "true";
    }
    if (type == "provenance") {
      RETURN_IF_ERROR(mode(disabled ? "false" : m, "--attest"));
    } else if (type == "sbom") {
      o.sbom = !disabled;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--attest \"", a, "\": type must be provenance or sbom"));
    }
  }
  return o;
}

absl::StatusOr<image::Descriptor> AttachAttestations(
    Local* local, const AttestOptions& options,
    const engine::BuildRequest& request, const std::vector<BuiltImage>& images,
    const std::vector<std::string>& names, const std::string& builder_id,
    const std::string& started, const std::string& finished) {
  std::vector<image::IndexEntry> entries;
  std::vector<std::vector<attest::Attestation>> per;
  std::string context = options.provenance ? ContextDigest(request) : "";
  std::string subject_name = names.empty() ? "image" : names[0];
  for (const BuiltImage& b : images) {
    entries.push_back(b.entry);
    std::vector<attest::Attestation> mine;
    std::vector<attest::Subject> subjects = {
        {attest::DockerPurl(subject_name, b.entry.platform),
         b.entry.manifest.digest.hash()}};
    if (options.provenance && !b.provenance.empty()) {
      // The farm's, made and signed by its scheduler: the statement where
      // readers of BuildKit's attestations look, and the signed envelope.
      ASSIGN_OR_RETURN(attest::Envelope envelope,
                       attest::ParseEnvelope(b.provenance));
      mine.push_back({attest::kSlsaProvenanceV1, envelope.payload});
      mine.push_back(
          {attest::kSlsaProvenanceV1, b.provenance, attest::kMediaTypeDsse});
    } else if (options.provenance) {
      attest::ProvenanceInput in;
      in.max = options.provenance_max;
      in.subjects = subjects;
      in.dockerfile_name = request.dockerfile_name;
      in.dockerfile_sha256 = Digest::Of(request.dockerfile).hash();
      in.context = context;
      in.target = request.plan_options.target;
      in.platform = b.entry.platform.String();
      in.builder_platform = platform::Host().String();
      in.build_args = request.plan_options.build_args;
      for (const auto& [id, file] : request.secrets)
        in.secret_ids.push_back(id);
      dockerfile::PlanOptions po = request.plan_options;
      po.target_platform = b.entry.platform.String();
      ASSIGN_OR_RETURN(dockerfile::Plan plan,
                       dockerfile::PlanDockerfile(request.dockerfile, po,
                                                  request.dockerfile_name));
      RETURN_IF_ERROR(attest::DescribePlan(
          plan, po,
          [&](const std::string& name,
              const platform::Platform& p) -> absl::StatusOr<std::string> {
            ASSIGN_OR_RETURN(image::ResolvedImage img,
                             local->images()->Resolve(name, p));
            return img.manifest.digest.hash();
          },
          &in));
      in.builder_id = builder_id;
      in.builder_version = "0.1.0";
      in.invocation_id = b.entry.manifest.digest.hash().substr(0, 24);
      in.started = started;
      in.finished = finished;
      in.reproduced = b.reproduced;
      VcsInfo vcs = ReadVcsInfo(request.context_dir);
      in.vcs_source = vcs.source;
      in.vcs_revision = vcs.revision;
      mine.push_back({attest::kSlsaProvenanceV1,
                      stagefarm::json::Dump(attest::ProvenanceStatement(in))});
    }
    if (options.sbom) {
      ASSIGN_OR_RETURN(json doc,
                       ScanSbom(local, b.state, subject_name, finished,
                                b.entry.manifest.digest.hash()));
      mine.push_back({attest::kSpdxPredicate,
                      stagefarm::json::Dump(attest::Statement(
                          subjects, attest::kSpdxPredicate, std::move(doc)))});
      // BuildKit's BUILDKIT_SBOM_SCAN_STAGE: other stages' packages too,
      // each its own document. Their steps are in the cache by now.
      dockerfile::PlanOptions po = request.plan_options;
      po.target_platform = b.entry.platform.String();
      ASSIGN_OR_RETURN(dockerfile::Plan plan,
                       dockerfile::PlanDockerfile(request.dockerfile, po,
                                                  request.dockerfile_name));
      for (const dockerfile::Stage* st : StagesToScan(plan, po)) {
        engine::BuildRequest one = request;
        one.tags.clear();
        one.plan_options = po;
        one.plan_options.target = st->name;
        ASSIGN_OR_RETURN(engine::BuildResult stage,
                         local->engine()->Build(
                             one, [](const engine::BuildEvent&) {}, nullptr));
        ASSIGN_OR_RETURN(
            json stage_doc,
            ScanSbom(local, stage.image,
                     absl::StrCat(subject_name, " stage ", st->DisplayName()),
                     finished,
                     absl::StrCat(b.entry.manifest.digest.hash(), "/stage-",
                                  st->index)));
        mine.push_back(
            {attest::kSpdxPredicate,
             stagefarm::json::Dump(attest::Statement(
                 subjects, attest::kSpdxPredicate, std::move(stage_doc)))});
      }
    }
    per.push_back(std::move(mine));
  }
  return attest::PutIndexWithAttestations(local->images(), entries, per);
}

int AttestShowCommand(const LocalOptions& local, const std::string& name,
                      const std::string& type) {
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto tagged = (*l)->images()->Tagged(name);
  if (!tagged.ok()) return Fail(tagged.status());
  std::string only;  // the image of --platform, when given
  if (!local.platform.empty()) {
    auto p = platform::Parse(local.platform);
    if (!p.ok()) return Fail(p.status());
    auto img = (*l)->images()->LoadFor(*tagged, *p);
    if (!img.ok()) return Fail(img.status());
    only = img->manifest.digest.hash();
  }
  auto found = attest::ReadAttestations((*l)->images(), *tagged);
  if (!found.ok()) return Fail(found.status());
  int shown = 0;
  for (const attest::Found& f : *found) {
    if (!only.empty() && f.image.hash() != only) continue;
    bool is_provenance =
        absl::StartsWith(f.predicate_type, "https://slsa.dev/");
    if (type == "provenance" && !is_provenance) continue;
    if (type == "sbom" && f.predicate_type != attest::kSpdxPredicate) continue;
    if (f.media_type == attest::kMediaTypeDsse)
      continue;  // its payload is
                 // shown
    std::cout << f.statement << "\n";
    ++shown;
  }
  if (shown == 0) {
    return Fail(absl::NotFoundError(absl::StrCat(
        "image \"", name, "\" has no ", type.empty() ? "" : type + " ",
        "attestations (build it with --provenance or --sbom)")));
  }
  return 0;
}

}  // namespace stagefarm::cli

namespace stagefarm::cli {

namespace {

// What `attest verify --policy FILE` asks of a provenance (JSON; every key
// optional, an unknown one an error).
struct Policy {
  std::vector<std::string> builders;  // "builder": one id or a list
  std::string context;                // "context": "sha256:<hex>"
  std::string dockerfile;             // "dockerfile": "sha256:<hex>"
  std::string source;                 // "source": vcs:source
  bool allow_host_network = false;    // "allow_host_network"
  bool allow_insecure = false;        // "allow_insecure"
  bool reproducible = false;          // "reproducible": verified rebuild
};

absl::StatusOr<Policy> ReadPolicy(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json doc = json::parse(text, nullptr, false);
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a policy is a JSON object"));
  }
  Policy p;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    auto want = [&](bool ok, const char* what) -> absl::Status {
      if (ok) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": \"", k, "\" must be ", what));
    };
    if (k == "builder") {
      if (v.is_string()) {
        p.builders.push_back(v.get<std::string>());
      } else {
        RETURN_IF_ERROR(want(v.is_array(), "a string or a list of strings"));
        for (const json& b : v) {
          RETURN_IF_ERROR(want(b.is_string(), "a string or a list of strings"));
          p.builders.push_back(b.get<std::string>());
        }
      }
    } else if (k == "context" || k == "dockerfile" || k == "source") {
      RETURN_IF_ERROR(want(v.is_string(), "a string"));
      (k == "context"      ? p.context
       : k == "dockerfile" ? p.dockerfile
                           : p.source) = v.get<std::string>();
    } else if (k == "allow_host_network" || k == "allow_insecure" ||
               k == "reproducible") {
      RETURN_IF_ERROR(want(v.is_boolean(), "true or false"));
      (k == "allow_host_network" ? p.allow_host_network
       : k == "allow_insecure"   ? p.allow_insecure
                                 : p.reproducible) = v.get<bool>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unknown key \"", k,
          "\" (builder, context, dockerfile, source, allow_host_network, "
          "allow_insecure, reproducible)"));
    }
  }
  return p;
}

// The string at a JSON pointer, or "".
std::string At(const json& doc, const char* pointer) {
  json::json_pointer p(pointer);
  return doc.contains(p) && doc[p].is_string() ? doc[p].get<std::string>()
                                               : std::string();
}

absl::Status CheckPolicy(const json& statement, const Policy& policy) {
  const json& pred = statement["predicate"];
  auto deny = [](std::string why) {
    return absl::PermissionDeniedError("policy: " + why);
  };
  std::string builder = At(pred, "/runDetails/builder/id");
  if (!policy.builders.empty() &&
      std::find(policy.builders.begin(), policy.builders.end(), builder) ==
          policy.builders.end()) {
    return deny(absl::StrCat("built by \"", builder, "\", not by ",
                             absl::StrJoin(policy.builders, " or ")));
  }
  const char* kSource = "/buildDefinition/externalParameters/configSource";
  std::string uri = At(pred, (std::string(kSource) + "/uri").c_str());
  if (!policy.context.empty() &&
      !absl::StartsWith(uri, "context:" + policy.context)) {
    return deny(
        absl::StrCat("the context is \"", uri, "\", not ", policy.context));
  }
  std::string df = At(pred, (std::string(kSource) + "/digest/sha256").c_str());
  if (!policy.dockerfile.empty() && "sha256:" + df != policy.dockerfile) {
    return deny(absl::StrCat("the Dockerfile is sha256:", df, ", not ",
                             policy.dockerfile));
  }
  std::string source =
      At(pred, "/buildDefinition/externalParameters/request/args/vcs:source");
  if (!policy.source.empty() && source != policy.source) {
    return deny(
        absl::StrCat("the source is \"", source, "\", not ", policy.source));
  }
  json::json_pointer net("/buildDefinition/internalParameters/network");
  if (!policy.allow_host_network && pred.contains(net) &&
      pred[net].is_array()) {
    for (const json& n : pred[net]) {
      if (n == "host") return deny("a RUN step used --network=host");
    }
  }
  json::json_pointer insecure("/buildDefinition/internalParameters/insecure");
  if (!policy.allow_insecure && pred.contains(insecure) &&
      pred[insecure] == true) {
    return deny("a RUN step used --security=insecure");
  }
  json::json_pointer rep("/runDetails/metadata/reproducible/verified");
  if (policy.reproducible && !(pred.contains(rep) && pred[rep] == true)) {
    return deny(
        "the build was not verified reproducible (build it with "
        "--verify-reproducible)");
  }
  return absl::OkStatus();
}

// Checks one image's signed provenance; returns its statement.
absl::StatusOr<json> VerifyImage(const Digest& image,
                                 const std::vector<attest::Found>& found,
                                 const attest::Key& key) {
  absl::Status last = absl::NotFoundError(
      "no provenance (build it with --provenance on a farm whose scheduler "
      "has --signing-key)");
  bool any_envelope = false;
  std::optional<json> verified;
  for (const attest::Found& f : found) {
    if (f.image.hash() != image.hash() ||
        f.predicate_type != attest::kSlsaProvenanceV1) {
      continue;
    }
    if (f.media_type != attest::kMediaTypeDsse) {
      if (!any_envelope) {
        last = absl::UnauthenticatedError(
            "its provenance is not signed (made by a client, not by a farm "
            "whose scheduler has --signing-key)");
      }
      continue;
    }
    any_envelope = true;
    absl::StatusOr<attest::Envelope> env = attest::ParseEnvelope(f.statement);
    if (!env.ok()) {
      last = env.status();
      continue;
    }
    if (absl::Status s = attest::VerifyEnvelope(*env, key); !s.ok()) {
      last = s;
      continue;
    }
    if (env->payload_type != attest::kMediaTypeInToto) {
      last = absl::InvalidArgumentError(absl::StrCat("the signed payload is ",
                                                     env->payload_type,
                                                     ", not an in-toto "
                                                     "statement"));
      continue;
    }
    json st = json::parse(env->payload, nullptr, false);
    if (!st.is_object() || st.value("_type", "") != attest::kStatementType ||
        st.value("predicateType", "") != attest::kSlsaProvenanceV1 ||
        !st.contains("subject") || !st["subject"].is_array() ||
        !st.contains("predicate") || !st["predicate"].is_object()) {
      last = absl::InvalidArgumentError(
          "the signed payload is not an in-toto statement of SLSA v1 "
          "provenance");
      continue;
    }
    std::vector<std::string> about;
    bool ours = false;
    for (const json& s : st["subject"]) {
      std::string d = At(s, "/digest/sha256");
      about.push_back("sha256:" + d);
      ours = ours || d == image.hash();
    }
    if (!ours) {
      last = absl::PermissionDeniedError(
          absl::StrCat("the signed provenance is about ",
                       absl::StrJoin(about, ", "), ", not this image"));
      continue;
    }
    verified = std::move(st);
    break;
  }
  if (!verified) return last;
  // The statement stored beside the envelope (what other tools read) must
  // say the same.
  for (const attest::Found& f : found) {
    if (f.image.hash() == image.hash() &&
        f.predicate_type == attest::kSlsaProvenanceV1 &&
        f.media_type != attest::kMediaTypeDsse &&
        json::parse(f.statement, nullptr, false) != *verified) {
      return absl::PermissionDeniedError(
          "the unsigned provenance stored beside the signed one differs "
          "from it (changed after the build)");
    }
  }
  return *std::move(verified);
}

}  // namespace

int AttestVerifyCommand(const LocalOptions& local, const std::string& name,
                        const std::string& key_file,
                        const std::string& policy_file) {
  auto key = attest::Key::PublicFromFile(key_file);
  if (!key.ok()) return Fail(key.status());
  Policy policy;
  if (!policy_file.empty()) {
    auto p = ReadPolicy(policy_file);
    if (!p.ok()) return Fail(p.status());
    policy = *std::move(p);
  }
  auto l = Local::Open(local);
  if (!l.ok()) return Fail(l.status());
  auto tagged = (*l)->images()->Tagged(name);
  if (!tagged.ok()) return Fail(tagged.status());
  auto entries = (*l)->images()->Platforms(*tagged);
  if (!entries.ok()) return Fail(entries.status());
  auto found = attest::ReadAttestations((*l)->images(), *tagged);
  if (!found.ok()) return Fail(found.status());
  int checked = 0;
  for (const image::IndexEntry& e : *entries) {
    std::string plat = e.platform.String();
    if (!local.platform.empty() && plat != local.platform) continue;
    ++checked;
    absl::StatusOr<json> st = VerifyImage(e.manifest.digest, *found, **key);
    absl::Status s = st.ok() ? CheckPolicy(*st, policy) : st.status();
    if (!s.ok()) {
      std::cerr << "error: " << name << " (" << plat << ", "
                << image::OciDigest(e.manifest.digest) << "): " << s.message()
                << "\n";
      return 1;
    }
    json::json_pointer rep("/predicate/runDetails/metadata/reproducible");
    std::cout << plat << " " << image::OciDigest(e.manifest.digest)
              << ": provenance verified (signed by key "
              << (*key)->id().substr(0, 16) << ", " << (*key)->algorithm()
              << "; builder " << At(*st, "/predicate/runDetails/builder/id")
              << (st->contains(rep) ? "; reproducible" : "")
              << (policy_file.empty() ? "" : "; policy met") << ")\n";
  }
  if (checked == 0) {
    return Fail(absl::NotFoundError(absl::StrCat(
        "image \"", name, "\" has no image for ", local.platform)));
  }
  return 0;
}

}  // namespace stagefarm::cli
