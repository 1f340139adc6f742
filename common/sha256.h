// Incremental SHA-256 over OpenSSL 3's EVP interface (SHA-NI where the CPU
// has it). Not thread-safe: one instance per stream.
#ifndef STAGEFARM_COMMON_SHA256_H_
#define STAGEFARM_COMMON_SHA256_H_

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace stagefarm {

class Sha256 {
 public:
  static constexpr size_t kRawSize = 32;
  using Raw = std::array<uint8_t, kRawSize>;

  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) = default;
  Sha256& operator=(Sha256&&) = default;

  void Update(absl::string_view data);
  // Finishes the hash; the object starts over afterwards.
  Raw Final();
  std::string FinalHex();
  // Starts over without finishing.
  void Reset();

  static std::string HexOf(absl::string_view data);
  static std::string ToHex(const Raw& raw);

 private:
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx_;
};

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_SHA256_H_
