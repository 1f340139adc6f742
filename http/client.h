// The one HTTP client: an exchange over libcurl (loaded on first use):
// request bodies from memory or a reader callback, response bodies into
// memory or a sink callback, headers collected. Thread-safe (a curl handle
// per call).
#ifndef STAGEFARM_HTTP_CLIENT_H_
#define STAGEFARM_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace stagefarm::http {

struct TlsFiles {
  std::string ca_file;    // trust these CAs (else the system's)
  std::string cert_file;  // client certificate (mutual TLS)
  std::string key_file;
  bool skip_verify = false;  // an insecure registry over https
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, PATCH, DELETE
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // The body: `body`, or `body_size` bytes from `read_body` (called with a
  // buffer and its size; returns bytes written, 0 only at the end).
  std::string body;
  int64_t body_size = -1;
  std::function<absl::StatusOr<size_t>(char*, size_t)> read_body;
  // A 2xx response body goes here when set (else into HttpResponse::body).
  std::function<absl::Status(absl::string_view)> sink;
  int64_t max_body = int64_t{4} << 20;  // for bodies kept in memory
  TlsFiles tls;
  long connect_timeout_seconds = 30;
  long low_speed_seconds = 60;  // abort when under 1 B/s for this long
  bool want_filetime = false;   // fill HttpResponse::filetime
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  int64_t filetime = -1;  // Last-Modified (seconds) when asked for, else -1
  std::string body;  // a non-2xx body (its first KiB) or an unsunk 2xx body
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Performs `request`, following redirects (Authorization is not sent on to
// another host). A transport failure is UNAVAILABLE naming the URL; an HTTP
// error status is returned as a response, for the caller to judge.
absl::StatusOr<HttpResponse> Perform(const HttpRequest& request);

// Percent-encodes a query parameter value.
std::string UrlEncode(absl::string_view s);

}  // namespace stagefarm::http

#endif  // STAGEFARM_HTTP_CLIENT_H_
