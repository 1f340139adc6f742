// TLS and mutual TLS for every gRPC connection of the farm. A process
// configures it once at start (ConfigureTls, from its --tls-* flags or the
// STAGEFARM_TLS_* variables); then every channel it opens (FarmChannel)
// and every server it starts (ServerCredentials) uses it:
//   ca    PEM file of the CA(s) trusted: servers' certificates are checked
//         against it, and a server with it requires client certificates
//         signed by it (mutual TLS)
//   cert  PEM certificate chain this process presents (server and client)
//   key   its private key
// With TLS configured a server accepts only TLS (a plaintext client fails its
// handshake) and channels speak only TLS. Without it everything is
// plaintext, as for a single machine or a trusted network.
#ifndef STAGEFARM_COMMON_TLS_H_
#define STAGEFARM_COMMON_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"

namespace stagefarm {

struct TlsFiles {
  std::string ca;
  std::string cert;
  std::string key;
  // The name expected in servers' certificates when it is not the host of
  // the address dialed (a load balancer's or a Service's name).
  std::string server_name;
  // A file holding the bearer token this process presents on every call
  // (a tenant's identity, common/tenants.h).
  std::string token_file;
};

// Empty fields are taken from STAGEFARM_TLS_CA, STAGEFARM_TLS_CERT,
// STAGEFARM_TLS_KEY, STAGEFARM_TLS_SERVER_NAME and STAGEFARM_TOKEN_FILE
// (or the token itself in STAGEFARM_TOKEN). Reads the files now;
// INVALID_ARGUMENT naming the flag for an unreadable file, a cert without a
// key, or (`server`) a CA or key without a certificate to serve with.
absl::Status ConfigureTls(TlsFiles files, bool server);

bool TlsConfigured();
// The bearer token to present ("" = none).
std::string CallToken();
// Credentials for channels: TLS (with this process's certificate for
// mutual TLS) when configured, else plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials();
// The name to check servers' certificates for ("" = the dialed host).
std::string TlsServerName();
// Credentials for servers: TLS (requiring verified client certificates when
// a CA is configured) or plaintext.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials();

}  // namespace stagefarm

#endif  // STAGEFARM_COMMON_TLS_H_
