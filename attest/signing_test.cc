#include "attest/signing.h"

#include "absl/strings/escaping.h"
#include "attest/signing_testing.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace stagefarm::attest {
namespace {

using testing::NewKeyPem;

TEST(Pae, IsTheSpecsEncoding) {
  EXPECT_EQ(Pae("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  EXPECT_EQ(Pae("", ""), "DSSEv1 0  0 ");
}

class SigningTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string NewPem() {
    return GetParam() == "ed25519" ? NewKeyPem("ED25519")
                                   : NewKeyPem("EC", "P-256");
  }
};

TEST_P(SigningTest, SignedEnvelopeVerifiesWithThePublicKey) {
  auto key = Key::PrivateFromPem(NewPem(), "key");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ((*key)->algorithm(), GetParam());
  auto pub = Key::PublicFromPem((*key)->PublicPem(), "pub");
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ((*pub)->id(), (*key)->id());
  EXPECT_EQ((*key)->id().size(), 64u);
  EXPECT_FALSE((*pub)->is_private());

  auto text = SignEnvelope(key->get(), "application/vnd.in-toto+json",
                           "{\"_type\":\"x\"}");
  ASSERT_TRUE(text.ok()) << text.status();
  auto env = ParseEnvelope(*text);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->payload, "{\"_type\":\"x\"}");
  ASSERT_EQ(env->signatures.size(), 1u);
  EXPECT_EQ(env->signatures[0].keyid, (*key)->id());
  EXPECT_TRUE(VerifyEnvelope(*env, **pub).ok());
  // A public key cannot sign.
  EXPECT_EQ((*pub)->Sign("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(SigningTest, ChangedPayloadOrTypeFails) {
  auto key = Key::PrivateFromPem(NewPem(), "key");
  ASSERT_TRUE(key.ok());
  auto env = ParseEnvelope(
      *SignEnvelope(key->get(), "application/vnd.in-toto+json", "payload"));
  ASSERT_TRUE(env.ok());
  Envelope changed = *env;
  changed.payload = "pay1oad";
  absl::Status s = VerifyEnvelope(changed, **key);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("does not verify"), std::string::npos) << s;
  changed = *env;
  changed.payload_type = "text/plain";
  EXPECT_FALSE(VerifyEnvelope(changed, **key).ok());
}

TEST_P(SigningTest, AnotherKeyFails) {
  auto key = Key::PrivateFromPem(NewPem(), "key");
  auto other = Key::PrivateFromPem(NewPem(), "other");
  ASSERT_TRUE(key.ok() && other.ok());
  auto env = ParseEnvelope(*SignEnvelope(other->get(), "t", "payload"));
  ASSERT_TRUE(env.ok());
  absl::Status s = VerifyEnvelope(*env, **key);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("not by the given key"), std::string::npos) << s;
  // Claiming the right key id does not help.
  env->signatures[0].keyid = (*key)->id();
  s = VerifyEnvelope(*env, **key);
  EXPECT_NE(s.message().find("does not verify"), std::string::npos) << s;
}

INSTANTIATE_TEST_SUITE_P(Algorithms, SigningTest,
                         ::testing::Values("ed25519", "ecdsa-p256"));

TEST(Signing, UnsignedEnvelopeFails) {
  auto key = Key::PrivateFromPem(NewKeyPem("ED25519"), "key");
  ASSERT_TRUE(key.ok());
  auto env = ParseEnvelope(*SignEnvelope(nullptr, "t", "payload"));
  ASSERT_TRUE(env.ok());
  absl::Status s = VerifyEnvelope(*env, **key);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("not signed"), std::string::npos) << s;
}

TEST(Signing, OtherKeysAreRefusedWithTheReason) {
  auto p384 = Key::PrivateFromPem(NewKeyPem("EC", "P-384"), "k.pem");
  EXPECT_EQ(p384.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p384.status().message().find("P-256"), std::string::npos);
  auto rsa = Key::PrivateFromPem(NewKeyPem("RSA"), "r.pem");
  EXPECT_EQ(rsa.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(rsa.status().message().find("r.pem"), std::string::npos);
  EXPECT_FALSE(Key::PrivateFromPem("not a key", "x").ok());
  EXPECT_FALSE(Key::PublicFromPem("not a key", "x").ok());
  EXPECT_EQ(Key::PrivateFromFile("/nonexistent/key.pem").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Signing, MalformedEnvelopesNameTheField) {
  EXPECT_FALSE(ParseEnvelope("[]").ok());
  auto s = ParseEnvelope(R"({"payloadType":"t","payload":"%%%"})").status();
  EXPECT_NE(s.message().find("payload"), std::string::npos) << s;
  s = ParseEnvelope(
          R"({"payloadType":"t","payload":"eA==","signatures":[{"sig":1}]})")
          .status();
  EXPECT_NE(s.message().find("signatures[].sig"), std::string::npos) << s;
}

}  // namespace
}  // namespace stagefarm::attest
