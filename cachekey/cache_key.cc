#include "cachekey/cache_key.h"

#include "absl/strings/str_cat.h"

namespace stagefarm::cachekey {

CacheKeyBuilder::CacheKeyBuilder() { Put(kCacheKeyVersion); }

void CacheKeyBuilder::Put(absl::string_view bytes) {
  uint64_t n = bytes.size();
  for (int shift = 56; shift >= 0; shift -= 8) {
    encoding_.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  encoding_.append(bytes.data(), bytes.size());
}

CacheKeyBuilder& CacheKeyBuilder::Add(absl::string_view name,
                                      absl::string_view value) {
  Put(name);
  Put(value);
  return *this;
}

CacheKeyBuilder& CacheKeyBuilder::Add(absl::string_view name, int64_t value) {
  return Add(name, absl::StrCat(value));
}

CacheKeyBuilder& CacheKeyBuilder::AddList(
    absl::string_view name, const std::vector<std::string>& values) {
  Put(name);
  Put(absl::StrCat(values.size()));
  for (const std::string& v : values) Put(v);
  return *this;
}

std::string CacheKeyBuilder::Finish() const {
  return absl::StrCat("sha256:", Sha256::HexOf(encoding_));
}

}  // namespace stagefarm::cachekey
