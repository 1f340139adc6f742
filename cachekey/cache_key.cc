#include "cachekey/cache_key.h"

#include <algorithm>

#include "absl/strings/match.h"
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

void CacheKeyBuilder::AddPart(absl::string_view name, size_t value_at) {
  const int seen = static_cast<int>(
      std::count_if(parts_.begin(), parts_.end(), [&](const KeyPart& p) {
        return p.name == name ||
               absl::StartsWith(p.name, absl::StrCat(name, "#"));
      }));
  KeyPart part;
  part.name = seen == 0 ? std::string(name) : absl::StrCat(name, "#", seen + 1);
  part.fingerprint =
      Sha256::HexOf(absl::string_view(encoding_).substr(value_at))
          .substr(0, 16);
  parts_.push_back(std::move(part));
}

CacheKeyBuilder& CacheKeyBuilder::Add(absl::string_view name,
                                      absl::string_view value) {
  Put(name);
  const size_t at = encoding_.size();
  Put(value);
  AddPart(name, at);
  return *this;
}

CacheKeyBuilder& CacheKeyBuilder::Add(absl::string_view name, int64_t value) {
  return Add(name, absl::StrCat(value));
}

CacheKeyBuilder& CacheKeyBuilder::AddList(
    absl::string_view name, const std::vector<std::string>& values) {
  Put(name);
  const size_t at = encoding_.size();
  Put(absl::StrCat(values.size()));
  for (const std::string& v : values) Put(v);
  AddPart(name, at);
  return *this;
}

std::string CacheKeyBuilder::Finish() const {
  return absl::StrCat("sha256:", Sha256::HexOf(encoding_));
}

}  // namespace stagefarm::cachekey
