// The --tls-* flags every farm program takes (see common/tls.h).
#ifndef STAGEFARM_COMMON_TLS_FLAGS_H_
#define STAGEFARM_COMMON_TLS_FLAGS_H_

#include "CLI/CLI.hpp"
#include "common/tls.h"

namespace stagefarm {

inline void AddTlsFlags(CLI::App* app, TlsFiles* files) {
  app->add_option("--tls-ca", files->ca,
                  "PEM CA bundle: verify peers with it; a server with it "
                  "requires client certificates (or STAGEFARM_TLS_CA)");
  app->add_option("--tls-cert", files->cert,
                  "PEM certificate chain to present (or STAGEFARM_TLS_CERT)");
  app->add_option("--tls-key", files->key,
                  "PEM private key of --tls-cert (or STAGEFARM_TLS_KEY)");
  app->add_option("--token-file", files->token_file,
                  "file with the bearer token to present on every call (or "
                  "STAGEFARM_TOKEN_FILE, or the token in STAGEFARM_TOKEN)");
  app->add_option("--tls-server-name", files->server_name,
                  "name expected in servers' certificates when it is not the "
                  "dialed host (or STAGEFARM_TLS_SERVER_NAME)");
}

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_TLS_FLAGS_H_
