// Signed statements: DSSE envelopes (the in-toto attestation framework's
// envelope, github.com/secure-systems-lab/dsse) signed with an ECDSA P-256
// (SHA-256) or Ed25519 key through OpenSSL. The signature covers the
// pre-authentication encoding (PAE) of the payload type and payload, so
// neither can be changed or swapped. A key's id is the SHA-256 of its
// public key (DER SubjectPublicKeyInfo), hex. Thread-safe after creation.
#ifndef STAGEFARM_ATTEST_SIGNING_H_
#define STAGEFARM_ATTEST_SIGNING_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace stagefarm::attest {

inline constexpr char kMediaTypeDsse[] =
    "application/vnd.dsse.envelope.v1+json";

// "DSSEv1 <len(type)> <type> <len(body)> <body>".
std::string Pae(absl::string_view payload_type, absl::string_view payload);

class Key {
 public:
  ~Key();
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  // A private key (PEM: PKCS#8 or the traditional EC form), for signing.
  static absl::StatusOr<std::unique_ptr<Key>> PrivateFromPem(
      absl::string_view pem, absl::string_view what);
  // A public key (PEM SubjectPublicKeyInfo), or a private key's public
  // half, for verifying.
  static absl::StatusOr<std::unique_ptr<Key>> PublicFromPem(
      absl::string_view pem, absl::string_view what);
  // Reads `path` and calls the above; errors name the file.
  static absl::StatusOr<std::unique_ptr<Key>> PrivateFromFile(
      const std::string& path);
  static absl::StatusOr<std::unique_ptr<Key>> PublicFromFile(
      const std::string& path);

  const std::string& id() const { return id_; }
  // "ecdsa-p256" or "ed25519".
  const std::string& algorithm() const { return algorithm_; }
  // The public key as PEM.
  std::string PublicPem() const;
  bool is_private() const { return private_; }

  absl::StatusOr<std::string> Sign(absl::string_view message) const;
  bool Verify(absl::string_view message, absl::string_view signature) const;

 private:
  Key() = default;
  static absl::StatusOr<std::unique_ptr<Key>> Adopt(EVP_PKEY* pkey,
                                                    bool is_private,
                                                    absl::string_view what);
  EVP_PKEY* pkey_ = nullptr;
  bool private_ = false;
  std::string id_, algorithm_;
};

struct Signature {
  std::string keyid;
  std::string sig;  // raw bytes
};

struct Envelope {
  std::string payload_type;
  std::string payload;  // raw bytes
  std::vector<Signature> signatures;
};

// The envelope's JSON: payload and signatures base64 (standard, padded).
// `key` null: no signatures (an unsigned envelope).
absl::StatusOr<std::string> SignEnvelope(const Key* key,
                                         absl::string_view payload_type,
                                         absl::string_view payload);

// Parses an envelope's JSON; an error names the field at fault.
absl::StatusOr<Envelope> ParseEnvelope(absl::string_view json);

// OK when a signature of `envelope` verifies with `key`. Otherwise
// UNAUTHENTICATED saying why: no signatures, none by this key, or one by
// this key that does not verify (the envelope was changed).
absl::Status VerifyEnvelope(const Envelope& envelope, const Key& key);

}  // namespace stagefarm::attest

#endif  // STAGEFARM_ATTEST_SIGNING_H_
