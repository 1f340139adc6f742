#include "cli/attestations.h"

#include <unistd.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "attest/attach.h"
#include "attest/provenance.h"
#include "attest/sbom.h"
#include "cli/exit_status.h"
#include "common/fs_util.h"
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
    if (options.provenance) {
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
      mine.push_back(
          {attest::kSlsaProvenanceV1, attest::ProvenanceStatement(in).dump()});
    }
    if (options.sbom) {
      ASSIGN_OR_RETURN(std::string dir, local->snapshots()->TempDir("sbom-"));
      std::string root = dir + "/rootfs";
      absl::Status st = local->engine()->ExportRootfs(b.state, root);
      absl::StatusOr<std::vector<attest::Package>> pkgs =
          st.ok() ? attest::ScanRootfs(root)
                  : absl::StatusOr<std::vector<attest::Package>>(st);
      (void)RemoveAll(dir);
      RETURN_IF_ERROR(pkgs.status());
      json doc = json::parse(attest::SpdxDocument(
          *pkgs, subject_name, finished, b.entry.manifest.digest.hash()));
      mine.push_back(
          {attest::kSpdxPredicate,
           attest::Statement(subjects, attest::kSpdxPredicate, std::move(doc))
               .dump()});
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
