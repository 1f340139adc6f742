// Test keys for code that signs or verifies (attest/signing.h).
#ifndef STAGEFARM_ATTEST_SIGNING_TESTING_H_
#define STAGEFARM_ATTEST_SIGNING_TESTING_H_

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>

namespace stagefarm::attest::testing {

// A new private key as PEM: type "ED25519", "EC" with a curve ("P-256"),
// or "RSA" (2048 bits).
inline std::string NewKeyPem(const char* type, const char* curve = nullptr) {
  EVP_PKEY* pkey =
      curve != nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve)
      : std::string(type) == "RSA"
          ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
          : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, n);
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  return pem;
}

}  // namespace stagefarm::attest::testing

#endif  // STAGEFARM_ATTEST_SIGNING_TESTING_H_
