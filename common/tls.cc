#include "common/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"

namespace stagefarm {
namespace {

struct Loaded {
  bool on = false;
  std::string ca_pem, cert_pem, key_pem, server_name;
};

std::string& Token() {
  static auto* token = new std::string();
  return *token;
}

Loaded& State() {
  static auto* s = new Loaded();
  return *s;
}
absl::Mutex& Mu() {
  static auto* mu = new absl::Mutex();
  return *mu;
}

absl::Status ReadPem(const std::string& path, const char* flag,
                     std::string* out) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in || ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", path, ": cannot read a PEM file there"));
  }
  *out = ss.str();
  return absl::OkStatus();
}

void FromEnv(std::string* field, const char* name) {
  if (!field->empty()) return;
  if (const char* v = getenv(name); v != nullptr) *field = v;
}

}  // namespace

absl::Status ConfigureTls(TlsFiles f, bool server) {
  FromEnv(&f.ca, "STAGEFARM_TLS_CA");
  FromEnv(&f.cert, "STAGEFARM_TLS_CERT");
  FromEnv(&f.key, "STAGEFARM_TLS_KEY");
  FromEnv(&f.server_name, "STAGEFARM_TLS_SERVER_NAME");
  FromEnv(&f.token_file, "STAGEFARM_TOKEN_FILE");
  std::string token;
  if (!f.token_file.empty()) {
    std::ifstream in(f.token_file);
    if (!in || !std::getline(in, token) || token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token-file ", f.token_file, ": cannot read a token there"));
    }
  } else if (const char* t = getenv("STAGEFARM_TOKEN"); t != nullptr) {
    token = t;
  }
  {
    absl::MutexLock lock(&Mu());
    Token() = token;
  }
  Loaded l;
  if (f.ca.empty() && f.cert.empty() && f.key.empty()) {
    absl::MutexLock lock(&Mu());
    State() = l;
    return absl::OkStatus();
  }
  if (f.cert.empty() != f.key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key go together (STAGEFARM_TLS_CERT, "
        "STAGEFARM_TLS_KEY)");
  }
  if (server && f.cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls-ca needs --tls-cert and --tls-key: a server with TLS must "
        "present a certificate");
  }
  if (!f.ca.empty()) RETURN_IF_ERROR(ReadPem(f.ca, "--tls-ca", &l.ca_pem));
  if (!f.cert.empty()) {
    RETURN_IF_ERROR(ReadPem(f.cert, "--tls-cert", &l.cert_pem));
    RETURN_IF_ERROR(ReadPem(f.key, "--tls-key", &l.key_pem));
  }
  l.on = true;
  l.server_name = f.server_name;
  absl::MutexLock lock(&Mu());
  State() = l;
  return absl::OkStatus();
}

std::string CallToken() {
  absl::MutexLock lock(&Mu());
  return Token();
}

bool TlsConfigured() {
  absl::MutexLock lock(&Mu());
  return State().on;
}

std::string TlsServerName() {
  absl::MutexLock lock(&Mu());
  return State().server_name;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() {
  absl::MutexLock lock(&Mu());
  const Loaded& l = State();
  if (!l.on) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = l.ca_pem;  // empty: the system's roots
  o.pem_cert_chain = l.cert_pem;
  o.pem_private_key = l.key_pem;
  return grpc::SslCredentials(o);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
  absl::MutexLock lock(&Mu());
  const Loaded& l = State();
  if (!l.on || l.cert_pem.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(
      l.ca_pem.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = l.ca_pem;
  o.pem_key_cert_pairs.push_back({l.key_pem, l.cert_pem});
  return grpc::SslServerCredentials(o);
}

}  // namespace stagefarm
