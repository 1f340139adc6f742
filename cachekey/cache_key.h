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
// One named field of a key, as a short fingerprint of its value: what
// build views compare to tell why a step missed the cache (a changed
// "parent" means an earlier step's result changed). A name used twice
// gets "#2", "#3" ... The fingerprint is the first 16 hex digits of the
// SHA-256 of the field's encoded value; it shows no value.
struct KeyPart {
  std::string name;
  std::string fingerprint;
  bool operator==(const KeyPart& o) const {
    return name == o.name && fingerprint == o.fingerprint;
  }
};

class CacheKeyBuilder {
 public:
  CacheKeyBuilder();
  CacheKeyBuilder& Add(absl::string_view name, absl::string_view value);
  CacheKeyBuilder& Add(absl::string_view name, int64_t value);
  CacheKeyBuilder& AddList(absl::string_view name,
                           const std::vector<std::string>& values);
  // "sha256:<hex>" of the encoding so far.
  std::string Finish() const;
  // The fields added so far, in order.
  const std::vector<KeyPart>& parts() const { return parts_; }
  // The raw encoding (for tests and debugging).
  const std::string& encoding() const { return encoding_; }

 private:
  void Put(absl::string_view bytes);
  // Records the field whose value's encoding starts at `value_at`.
  void AddPart(absl::string_view name, size_t value_at);
  std::string encoding_;
  std::vector<KeyPart> parts_;
};

}  // namespace stagefarm::cachekey

#endif  // STAGEFARM_CACHEKEY_CACHE_KEY_H_
