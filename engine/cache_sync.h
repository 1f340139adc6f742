// Sharing RUN --mount=type=cache directories beyond one machine: a farm's
// workers keep each cache's content in the CAS (cachemount/). The engine
// pulls a cache before a step mounts it and pushes it after the step ran;
// a failure is a note in the build's output, and the step goes on with the
// local copy (a cache only saves work).
#ifndef STAGEFARM_ENGINE_CACHE_SYNC_H_
#define STAGEFARM_ENGINE_CACHE_SYNC_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace stagefarm::engine {

class CacheMountSync {
 public:
  virtual ~CacheMountSync() = default;
  // `id`: the cache's id (its target when the Dockerfile names none);
  // `dir`: its local directory, which the call may change.
  virtual absl::Status Pull(const std::string& id, const std::string& dir) = 0;
  virtual absl::Status Push(const std::string& id, const std::string& dir) = 0;

  // Held while a step uses a sharing=locked cache, released when
  // destroyed.
  class Hold {
   public:
    virtual ~Hold() = default;
  };
  // sharing=locked: waits until no step elsewhere holds cache `id`
  // (before Pull; the hold is dropped after Push). nullptr: there is
  // nothing to hold beyond this machine's own lock.
  virtual absl::StatusOr<std::unique_ptr<Hold>> Lock(const std::string& id) {
    (void)id;
    return nullptr;
  }
};

}  // namespace stagefarm::engine

#endif  // STAGEFARM_ENGINE_CACHE_SYNC_H_
