#include "scheduler/build_provenance.h"

#include "absl/strings/str_cat.h"
#include "attest/provenance.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "frontend/dockerfile/plan.h"
#include "platform/platform.h"

namespace stagefarm::scheduler {

absl::StatusOr<std::string> MakeProvenance(const BuildState& b,
                                           const ProvenanceSigner& signer,
                                           const std::string& reproduced,
                                           double finished_at) {
  const v1::BuildSpec& spec = b.spec;
  ASSIGN_OR_RETURN(Digest manifest,
                   Digest::FromProto(b.result.manifest(), "result.manifest"));
  ASSIGN_OR_RETURN(platform::Platform target,
                   platform::Parse(spec.target_platform()));
  attest::ProvenanceInput in;
  in.max = spec.provenance() == "max";
  in.subjects = {
      {attest::DockerPurl(spec.subject_name().empty() ? std::string("image")
                                                      : spec.subject_name(),
                          target),
       manifest.hash()}};
  in.dockerfile_name =
      spec.dockerfile_name().empty() ? "Dockerfile" : spec.dockerfile_name();
  in.dockerfile_sha256 = Digest::Of(spec.dockerfile()).hash();
  if (auto context = Digest::FromProto(spec.context()); context.ok()) {
    in.context = absl::StrCat("sha256:", context->hash(), "/", context->size());
  }
  in.target = spec.target();
  in.platform = spec.target_platform();
  in.builder_platform = spec.build_platform();
  for (const auto& [k, v] : spec.build_args()) in.build_args[k] = v;
  in.secret_ids.assign(spec.secret_ids().begin(), spec.secret_ids().end());
  in.vcs_source = spec.vcs_source();
  in.vcs_revision = spec.vcs_revision();

  dockerfile::PlanOptions po;
  po.target = spec.target();
  po.target_platform = spec.target_platform();
  po.build_platform = spec.build_platform();
  for (const auto& [k, v] : spec.build_args()) po.build_args[k] = v;
  ASSIGN_OR_RETURN(
      dockerfile::Plan plan,
      dockerfile::PlanDockerfile(spec.dockerfile(), po, in.dockerfile_name));
  // The digests the workers were given for each name.
  RETURN_IF_ERROR(attest::DescribePlan(
      plan, po,
      [&spec](const std::string& name,
              const platform::Platform&) -> absl::StatusOr<std::string> {
        auto it = spec.images().find(name);
        if (it == spec.images().end()) {
          return absl::FailedPreconditionError(
              absl::StrCat("spec.images: no digest for \"", name, "\""));
        }
        ASSIGN_OR_RETURN(Digest d,
                         Digest::FromProto(it->second, "spec.images"));
        return d.hash();
      },
      &in));
  in.builder_id = signer.builder_id;
  in.builder_version = signer.version;
  in.invocation_id = b.id;
  in.started = Rfc3339(static_cast<int64_t>(b.submitted));
  in.finished = Rfc3339(static_cast<int64_t>(finished_at));
  in.reproduced = reproduced;
  return attest::SignEnvelope(
      signer.key, attest::kMediaTypeInToto,
      stagefarm::json::Dump(attest::ProvenanceStatement(in)));
}

}  // namespace stagefarm::scheduler
