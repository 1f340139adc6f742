// An HTTP/1.1 server for the web view: civetweb (Debian's, the library the
// metrics exposer already brings) accepting connections on its threads and
// handing every request to one handler. Requests are read whole (bodies up
// to 64 KiB); a response is sent whole, or streamed (server-sent events)
// until the handler returns or the client goes away.
#ifndef STAGEFARM_WEBUI_HTTP_SERVER_H_
#define STAGEFARM_WEBUI_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mg_connection;
struct mg_context;

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

// How a handler answers. Either Send once, or Start a stream and Write to
// it until done (Write says false once the client has gone).
class HttpResponse {
 public:
  explicit HttpResponse(mg_connection* conn) : conn_(conn) {}
  void Send(
      int status, const std::string& content_type, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers = {});
  void Start(
      int status, const std::string& content_type,
      const std::vector<std::pair<std::string, std::string>>& headers = {});
  bool Write(absl::string_view data);
  bool sent() const { return sent_; }

 private:
  mg_connection* conn_;
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
  ~HttpServer();  // stops: waits for handlers to return

  int port() const { return port_; }

 private:
  HttpServer() = default;
  static int Dispatch(mg_connection* conn, void* self);

  mg_context* ctx_ = nullptr;
  HttpHandler handler_;
  int port_ = 0;
  std::string cert_, key_;
};

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_HTTP_SERVER_H_
