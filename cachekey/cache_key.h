// Step cache keys: SHA-256 over a canonical, versioned, length-prefixed
// encoding of what determines a step's result (docs/ARCHITECTURE.md, "Step
// cache keys"). Never serialized protobuf, never mtimes or host paths.
// Pure; thread-compatible.
#ifndef STAGEFARM_CACHEKEY_CACHE_KEY_H_
#define STAGEFARM_CACHEKEY_CACHE_KEY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/sha256.h"

namespace stagefarm::cachekey {

// The encoding version; bump it when anything about what a key covers
// changes, so old entries are never misread.
inline constexpr char kCacheKeyVersion[] = "stagefarm.step.v1";

// Accumulates named fields: each is encoded as
//   u64be(len(name)) name u64be(len(value)) value
// after the version string, itself length-prefixed. A list is its name, its
// element count, then each element length-prefixed.
class CacheKeyBuilder {
 public:
  CacheKeyBuilder();
  CacheKeyBuilder& Add(absl::string_view name, absl::string_view value);
  CacheKeyBuilder& Add(absl::string_view name, int64_t value);
  CacheKeyBuilder& AddList(absl::string_view name,
                           const std::vector<std::string>& values);
  // "sha256:<hex>" of the encoding so far.
  std::string Finish() const;
  // The raw encoding (for tests and debugging).
  const std::string& encoding() const { return encoding_; }

 private:
  void Put(absl::string_view bytes);
  std::string encoding_;
};

}  // namespace stagefarm::cachekey

#endif  // STAGEFARM_CACHEKEY_CACHE_KEY_H_
