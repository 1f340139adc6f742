// Whole-stage results in the action cache, so the scheduler can complete a
// stage whose inputs it has seen before without any worker.
//
// A stage's key (format `stagefarm.stage.v1`, over the step key encoding of
// cachekey/cache_key.h) covers everything a stage's result depends
// on: the whole Dockerfile text, the context's root digest and
// .dockerignore, build args, every resolved image, the stage's index,
// whether it is the build's target (target layers are compressed, others
// are not), compression and level, SOURCE_DATE_EPOCH, and the keys of the
// stages it depends on. It is coarser than the step keys (any change to the
// Dockerfile or context misses, and the workers' step cache takes over), so
// a hit implies every step of the stage would have hit too.
//
// The entry, written by the worker that ran the stage (clients never write
// the action cache), is an ActionResult whose output files are
// "stage.json" ({"version": 1, "state": image state JSON, "steps": N}) and
// each layer as "layer/<i>", so the CAS's completeness check drops the
// entry if a layer is gone.
#ifndef STAGEFARM_STAGECACHE_STAGE_CACHE_H_
#define STAGEFARM_STAGECACHE_STAGE_CACHE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/cas_client.h"
#include "common/digest.h"
#include "stagefarm/v1/farm.pb.h"

namespace stagefarm::stagecache {

// "sha256:<hex>".
std::string StageKey(const v1::BuildSpec& spec, int index, bool is_target,
                     const std::vector<std::string>& dependency_keys);

struct StageHit {
  std::string state;  // image state JSON
  int steps = 0;
};

// NOT_FOUND-free: nullopt on a miss (or an entry this version cannot read).
absl::StatusOr<std::optional<StageHit>> LookupStage(CasClient* cas,
                                                    const std::string& key);

absl::Status StoreStage(CasClient* cas, const std::string& key,
                        const std::string& state_json,
                        const std::vector<Digest>& layers, int steps);

}  // namespace stagefarm::stagecache

#endif  // STAGEFARM_STAGECACHE_STAGE_CACHE_H_
