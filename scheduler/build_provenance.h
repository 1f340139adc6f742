// The provenance a farm build gets from its scheduler: an SLSA v1
// statement (attest/provenance.h) about the image the build made, from
// what the scheduler itself holds (the spec as submitted, its plan, the
// images the workers were given, the workers' result, the times), in a
// DSSE envelope signed with the scheduler's key. Nothing in it comes from
// a client's account of the result. Pure but for the clock it is given.
#ifndef STAGEFARM_SCHEDULER_BUILD_PROVENANCE_H_
#define STAGEFARM_SCHEDULER_BUILD_PROVENANCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "attest/signing.h"
#include "scheduler/build_state.h"

namespace stagefarm::scheduler {

struct ProvenanceSigner {
  const attest::Key* key = nullptr;  // null: an unsigned envelope
  std::string builder_id;            // runDetails.builder.id
  std::string version;
};

// The envelope's JSON for finished build `b` (its result's manifest set).
// `reproduced`: the rebuild's manifest hex when it gave the same image.
absl::StatusOr<std::string> MakeProvenance(const BuildState& b,
                                           const ProvenanceSigner& signer,
                                           const std::string& reproduced,
                                           double finished_at);

}  // namespace stagefarm::scheduler

#endif  // STAGEFARM_SCHEDULER_BUILD_PROVENANCE_H_
