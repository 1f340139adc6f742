// An HTTP/1.1 server for the web view: cpp-httplib (Debian's, built
// against the system's OpenSSL 3) parsing requests on a pool of threads and
// handing every request to one handler. Requests are read whole (bodies up
// to 64 KiB); a response is sent whole, or held open (server-sent events):
// then the connection leaves the pool and waits, with every other held one,
// on one thread (HeldStreams) for what its handler writes.
//
// No client can take the pool: a request's head and body must arrive
// within request_timeout of its first byte (a slow sender is cut off), an
// idle connection is closed after idle_timeout, and one client address has
// at most max_connections_per_address connections in the pool (more are
// answered 429 and closed). A handler that throws is answered a plain 500
// "internal error" (the exception is logged, never sent).
#ifndef STAGEFARM_WEBUI_HTTP_SERVER_H_
#define STAGEFARM_WEBUI_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "webui/held_streams.h"

namespace stagefarm::webui {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // URL-decoded, without the query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool tls = false;
  std::string remote_addr;  // the client's IP address
  // A cookie's value, "" when absent.
  std::string Cookie(const std::string& name) const;
  std::string Header(const std::string& lower_name) const;
  std::string Query(const std::string& name) const;
};

// How a handler answers: Send once, or Hold (the head is sent, then
// `on_held` is called, on the pool's thread, with the stream the body goes
// on, or with null when the connection could not be held: a HEAD request,
// the client gone, the server full or stopping).
class HttpResponse {
 public:
  using OnHeld = std::function<void(std::shared_ptr<HttpStream>)>;
  void Send(
      int status, const std::string& content_type, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers = {});
  void Hold(int status, const std::string& content_type, OnHeld on_held);
  bool sent() const { return sent_; }

  // Read by the server.
  int status = 500;
  std::string content_type, body;
  std::vector<std::pair<std::string, std::string>> headers;
  OnHeld on_held;

 private:
  bool sent_ = false;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse*)>;

struct HttpServerOptions {
  std::string listen;  // HOST:PORT, port 0 for any
  int threads = 48;    // requests served at once
  // PEM files: with them the server speaks only HTTPS.
  std::string cert_file, key_file;
  int max_connections_per_address = 32;
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(5);
  // A write that makes no progress for this long ends the connection.
  absl::Duration write_timeout = absl::Seconds(10);
  size_t max_held_streams = 4096;
};

class HttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, HttpHandler handler);
  ~HttpServer();  // stops: waits for the pool, closes the held streams

  int port() const { return port_; }

  struct Impl;  // in http_server.cc

 private:
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_HTTP_SERVER_H_
