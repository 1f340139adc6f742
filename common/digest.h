// A validated content digest: SHA-256 (lowercase hex) plus size in bytes.
// Every digest that enters the system from a request, a file or the network
// goes through Digest::Parse, so code holding a Digest can trust it.
// Value type; thread-compatible.
#ifndef STAGEFARM_COMMON_DIGEST_H_
#define STAGEFARM_COMMON_DIGEST_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "common/sha256.h"

namespace stagefarm {

namespace reapi = ::build::bazel::remote::execution::v2;

class Digest {
 public:
  // The digest of the empty blob, which every CAS always holds.
  static const Digest& Empty();

  // Validates `hash` (64 lowercase or uppercase hex characters; stored
  // lowercase) and `size` (>= 0). `field` names the request field in the
  // error, e.g. "requests[3].digest".
  static absl::StatusOr<Digest> Parse(absl::string_view hash, int64_t size,
                                      absl::string_view field = "digest");
  static absl::StatusOr<Digest> FromProto(const reapi::Digest& proto,
                                          absl::string_view field = "digest");
  static Digest FromRaw(const Sha256::Raw& raw, int64_t size);
  // Hashes `data`.
  static Digest Of(absl::string_view data);

  Digest() : Digest(Empty()) {}

  const std::string& hash() const { return hash_; }
  int64_t size() const { return size_; }
  const Sha256::Raw& raw() const { return raw_; }
  absl::string_view raw_view() const {
    return absl::string_view(reinterpret_cast<const char*>(raw_.data()),
                             raw_.size());
  }
  bool is_empty_blob() const { return size_ == 0 && *this == Empty(); }

  reapi::Digest ToProto() const;
  void ToProto(reapi::Digest* out) const;
  // "hash/size", as in resource names and logs.
  std::string ToString() const;

  friend bool operator==(const Digest& a, const Digest& b) {
    return a.size_ == b.size_ && a.raw_ == b.raw_;
  }
  friend bool operator!=(const Digest& a, const Digest& b) { return !(a == b); }
  friend bool operator<(const Digest& a, const Digest& b) {
    return a.raw_ != b.raw_ ? a.raw_ < b.raw_ : a.size_ < b.size_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.hash_, d.size_);
  }

 private:
  Digest(std::string hash, const Sha256::Raw& raw, int64_t size)
      : hash_(std::move(hash)), raw_(raw), size_(size) {}

  std::string hash_;
  Sha256::Raw raw_;
  int64_t size_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_DIGEST_H_
