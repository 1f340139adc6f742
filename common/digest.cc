#include "common/digest.h"

#include "absl/strings/str_cat.h"

namespace stagefarm {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const Digest& Digest::Empty() {
  static const Digest* empty = [] {
    Sha256 h;
    return new Digest(FromRaw(h.Final(), 0));
  }();
  return *empty;
}

absl::StatusOr<Digest> Digest::Parse(absl::string_view hash, int64_t size,
                                     absl::string_view field) {
  if (hash.size() != Sha256::kRawSize * 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".hash: expected 64 hex characters (SHA-256), got ", hash.size(),
        hash.size() == 40 || hash.size() == 128 || hash.size() == 96
            ? " (another digest function? only SHA256 is supported)"
            : ""));
  }
  Sha256::Raw raw;
  for (size_t i = 0; i < Sha256::kRawSize; ++i) {
    int hi = HexValue(hash[2 * i]);
    int lo = HexValue(hash[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".hash: not hexadecimal: \"", hash.substr(0, 64), "\""));
    }
    raw[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".size_bytes: negative size ", size));
  }
  return FromRaw(raw, size);
}

absl::StatusOr<Digest> Digest::FromProto(const reapi::Digest& proto,
                                         absl::string_view field) {
  return Parse(proto.hash(), proto.size_bytes(), field);
}

Digest Digest::FromRaw(const Sha256::Raw& raw, int64_t size) {
  return Digest(Sha256::ToHex(raw), raw, size);
}

Digest Digest::Of(absl::string_view data) {
  Sha256 h;
  h.Update(data);
  return FromRaw(h.Final(), static_cast<int64_t>(data.size()));
}

reapi::Digest Digest::ToProto() const {
  reapi::Digest out;
  ToProto(&out);
  return out;
}

void Digest::ToProto(reapi::Digest* out) const {
  out->set_hash(hash_);
  out->set_size_bytes(size_);
}

std::string Digest::ToString() const { return absl::StrCat(hash_, "/", size_); }

}  // namespace stagefarm
