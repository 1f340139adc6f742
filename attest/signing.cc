#include "attest/signing.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/sha256.h"
#include "nlohmann/json.hpp"

namespace stagefarm::attest {

namespace {

using json = nlohmann::json;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string Pae(absl::string_view payload_type, absl::string_view payload) {
  return absl::StrCat("DSSEv1 ", payload_type.size(), " ", payload_type, " ",
                      payload.size(), " ", payload);
}

Key::~Key() { EVP_PKEY_free(pkey_); }

absl::StatusOr<std::unique_ptr<Key>> Key::Adopt(EVP_PKEY* pkey, bool is_private,
                                                absl::string_view what) {
  std::unique_ptr<Key> key(new Key());
  key->pkey_ = pkey;
  key->private_ = is_private;
  int type = EVP_PKEY_get_base_id(pkey);
  if (type == EVP_PKEY_ED25519) {
    key->algorithm_ = "ed25519";
  } else if (type == EVP_PKEY_EC) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       sizeof(group), &len) != 1 ||
        std::string(group) != "prime256v1") {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": an EC key must be on P-256 (prime256v1), not ",
                       group[0] ? group : "an unnamed curve"));
    }
    key->algorithm_ = "ecdsa-p256";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the key must be ECDSA P-256 or Ed25519, not ",
                     OBJ_nid2sn(type)));
  }
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(pkey, &der);
  if (n <= 0) {
    return absl::InternalError(
        absl::StrCat(what, ": cannot encode the public key"));
  }
  key->id_ = Sha256::HexOf(absl::string_view(reinterpret_cast<char*>(der), n));
  OPENSSL_free(der);
  return key;
}

absl::StatusOr<std::unique_ptr<Key>> Key::PrivateFromPem(
    absl::string_view pem, absl::string_view what) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr,
                                           const_cast<char*>(""));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        ": not a PEM private key (an unencrypted ECDSA P-256 or "
        "Ed25519 key, e.g. from `openssl genpkey -algorithm ed25519`)"));
  }
  return Adopt(pkey, true, what);
}

absl::StatusOr<std::unique_ptr<Key>> Key::PublicFromPem(
    absl::string_view pem, absl::string_view what) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr) {
    // A private key holds its public half.
    auto priv = PrivateFromPem(pem, what);
    if (!priv.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": not a PEM public key (`openssl pkey -pubout` writes one)"));
    }
    return PublicFromPem((*priv)->PublicPem(), what);
  }
  return Adopt(pkey, false, what);
}

absl::StatusOr<std::unique_ptr<Key>> Key::PrivateFromFile(
    const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return pem.status();
  return PrivateFromPem(*pem, path);
}

absl::StatusOr<std::unique_ptr<Key>> Key::PublicFromFile(
    const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFile(path);
  if (!pem.ok()) return pem.status();
  return PublicFromPem(*pem, path);
}

std::string Key::PublicPem() const {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), pkey_);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n > 0 ? n : 0);
}

absl::StatusOr<std::string> Key::Sign(absl::string_view message) const {
  if (!private_) {
    return absl::FailedPreconditionError("a public key cannot sign");
  }
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  // Ed25519 hashes as part of its algorithm: no digest is named.
  const EVP_MD* md = algorithm_ == "ed25519" ? nullptr : EVP_sha256();
  size_t len = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey_) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    return absl::InternalError("signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()),
                     &len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    return absl::InternalError("signing failed");
  }
  sig.resize(len);
  return sig;
}

bool Key::Verify(absl::string_view message, absl::string_view signature) const {
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  const EVP_MD* md = algorithm_ == "ed25519" ? nullptr : EVP_sha256();
  return EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey_) == 1 &&
         EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

absl::StatusOr<std::string> SignEnvelope(const Key* key,
                                         absl::string_view payload_type,
                                         absl::string_view payload) {
  json sigs = json::array();
  if (key != nullptr) {
    absl::StatusOr<std::string> sig = key->Sign(Pae(payload_type, payload));
    if (!sig.ok()) return sig.status();
    sigs.push_back({{"keyid", key->id()}, {"sig", absl::Base64Escape(*sig)}});
  }
  return stagefarm::json::Dump(json{{"payloadType", std::string(payload_type)},
                                    {"payload", absl::Base64Escape(payload)},
                                    {"signatures", std::move(sigs)}});
}

absl::StatusOr<Envelope> ParseEnvelope(absl::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("DSSE envelope: ", why));
  };
  if (!doc.is_object()) return bad("not a JSON object");
  Envelope e;
  if (!doc.contains("payloadType") || !doc["payloadType"].is_string()) {
    return bad("payloadType: missing or not a string");
  }
  e.payload_type = doc["payloadType"].get<std::string>();
  if (!doc.contains("payload") || !doc["payload"].is_string() ||
      !absl::Base64Unescape(doc["payload"].get<std::string>(), &e.payload)) {
    return bad("payload: missing or not base64");
  }
  if (doc.contains("signatures")) {
    if (!doc["signatures"].is_array()) return bad("signatures: not a list");
    for (const json& s : doc["signatures"]) {
      Signature sig;
      if (!s.is_object() || !s.contains("sig") || !s["sig"].is_string() ||
          !absl::Base64Unescape(s["sig"].get<std::string>(), &sig.sig)) {
        return bad("signatures[].sig: missing or not base64");
      }
      if (s.contains("keyid") && s["keyid"].is_string()) {
        sig.keyid = s["keyid"].get<std::string>();
      }
      e.signatures.push_back(std::move(sig));
    }
  }
  return e;
}

absl::Status VerifyEnvelope(const Envelope& envelope, const Key& key) {
  if (envelope.signatures.empty()) {
    return absl::UnauthenticatedError(
        "not signed (only a farm scheduler with --signing-key signs "
        "provenance)");
  }
  std::string pae = Pae(envelope.payload_type, envelope.payload);
  std::vector<std::string> others;
  bool ours = false;
  for (const Signature& s : envelope.signatures) {
    if (key.Verify(pae, s.sig)) return absl::OkStatus();
    if (s.keyid == key.id()) {
      ours = true;
    } else {
      others.push_back(s.keyid.empty() ? "a key without an id"
                                       : s.keyid.substr(0, 16));
    }
  }
  if (ours) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the signature by key ", key.id().substr(0, 16),
        " does not verify: the statement or its envelope was changed"));
  }
  return absl::UnauthenticatedError(
      absl::StrCat("signed by ", absl::StrJoin(others, ", "),
                   ", not by the given key ", key.id().substr(0, 16)));
}

}  // namespace stagefarm::attest
