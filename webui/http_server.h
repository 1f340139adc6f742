// An HTTP/1.1 server for the web view: cpp-httplib (Debian's, built
// against the system's OpenSSL 3) accepting connections on a pool of
// threads and handing every request to one handler. Requests are read whole
// (bodies up to 64 KiB); a response is sent whole, or streamed (server-sent
// events) by a producer that writes until it is done or the client goes
// away.
#ifndef STAGEFARM_WEBUI_HTTP_SERVER_H_
#define STAGEFARM_WEBUI_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::webui {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // URL-decoded, without the query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool tls = false;
  // A cookie's value, "" when absent.
  std::string Cookie(const std::string& name) const;
  std::string Header(const std::string& lower_name) const;
  std::string Query(const std::string& name) const;
};

// How a handler answers: Send once, or Stream (the producer runs after the
// handler returns, on the same connection; its `write` says false once the
// client has gone).
class HttpResponse {
 public:
  using Write = std::function<bool(absl::string_view)>;
  using Producer = std::function<void(const Write& write)>;
  void Send(
      int status, const std::string& content_type, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers = {});
  void Stream(int status, const std::string& content_type, Producer producer);
  bool sent() const { return sent_; }

  // Read by the server.
  int status = 500;
  std::string content_type, body;
  std::vector<std::pair<std::string, std::string>> headers;
  Producer producer;

 private:
  bool sent_ = false;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse*)>;

class HttpServer {
 public:
  // Listens on `listen` (HOST:PORT, port 0 for any) with `threads`
  // connection threads (each open event stream holds one). With
  // `cert_file` and `key_file` (PEM) it speaks only HTTPS.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, int threads, HttpHandler handler,
      const std::string& cert_file = "", const std::string& key_file = "");
  ~HttpServer();  // stops: waits for the connections' threads

  int port() const { return port_; }

 private:
  struct Impl;
  HttpServer() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_HTTP_SERVER_H_
