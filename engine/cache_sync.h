// Sharing RUN --mount=type=cache directories beyond one machine: a farm's
// workers keep each cache's content in the CAS (cachemount/). The engine
// pulls a cache before a step mounts it and pushes it after the step ran;
// a failure is a note in the build's output, and the step goes on with the
// local copy (a cache only saves work).
#ifndef STAGEFARM_ENGINE_CACHE_SYNC_H_
#define STAGEFARM_ENGINE_CACHE_SYNC_H_

#include <string>

#include "absl/status/status.h"

namespace stagefarm::engine {

class CacheMountSync {
 public:
  virtual ~CacheMountSync() = default;
  // `id`: the cache's id (its target when the Dockerfile names none);
  // `dir`: its local directory, which the call may change.
  virtual absl::Status Pull(const std::string& id, const std::string& dir) = 0;
  virtual absl::Status Push(const std::string& id, const std::string& dir) = 0;
};

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_CACHE_SYNC_H_
