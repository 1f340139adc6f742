#include "common/sha256.h"

#include <cstdlib>

namespace stagefarm {
namespace {

void CheckEvp(int ok) {
  // EVP failures here mean a broken OpenSSL installation, not bad input.
  if (ok != 1) std::abort();
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { Reset(); }

void Sha256::Reset() {
  CheckEvp(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr));
}

void Sha256::Update(absl::string_view data) {
  if (data.empty()) return;
  CheckEvp(EVP_DigestUpdate(ctx_.get(), data.data(), data.size()));
}

Sha256::Raw Sha256::Final() {
  Raw raw;
  unsigned int len = 0;
  CheckEvp(EVP_DigestFinal_ex(ctx_.get(), raw.data(), &len));
  Reset();
  return raw;
}

std::string Sha256::FinalHex() { return ToHex(Final()); }

std::string Sha256::ToHex(const Raw& raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kRawSize * 2, '0');
  for (size_t i = 0; i < kRawSize; ++i) {
    out[2 * i] = kHex[raw[i] >> 4];
    out[2 * i + 1] = kHex[raw[i] & 0xf];
  }
  return out;
}

std::string Sha256::HexOf(absl::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.FinalHex();
}

}  // namespace stagefarm
