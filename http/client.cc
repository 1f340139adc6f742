#include "http/client.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "http/curl_api.h"

namespace stagefarm::http {
namespace {

struct Exchange {
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  const CurlApi* api = nullptr;
  CURL* curl = nullptr;
  absl::Status error;  // from the sink or the body reader
  bool too_big = false;
  int64_t sent = 0;
};

size_t OnHeader(char* data, size_t size, size_t n, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    x->response->headers.clear();  // a new response (after a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    x->response->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  size_t bytes = size * n;
  long status = 0;
  x->api->easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
  absl::string_view chunk(data, bytes);
  if (status >= 200 && status < 300 && x->request->sink) {
    absl::Status s = x->request->sink(chunk);
    if (!s.ok()) {
      x->error = s;
      return 0;
    }
    return bytes;
  }
  bool ok = status >= 200 && status < 300;
  int64_t cap = ok ? x->request->max_body : 1024;
  std::string& body = x->response->body;
  if (static_cast<int64_t>(body.size() + bytes) > cap) {
    if (ok) {
      x->too_big = true;
      return 0;
    }
    body.append(data,
                static_cast<size_t>(cap) - std::min<size_t>(body.size(), cap));
    return bytes;
  }
  body.append(data, bytes);
  return bytes;
}

size_t OnRead(char* buffer, size_t size, size_t n, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  const HttpRequest& r = *x->request;
  size_t room = size * n;
  if (!r.read_body) {
    size_t left = r.body.size() - static_cast<size_t>(x->sent);
    size_t take = std::min(room, left);
    memcpy(buffer, r.body.data() + x->sent, take);
    x->sent += static_cast<int64_t>(take);
    return take;
  }
  int64_t left = r.body_size - x->sent;
  if (left <= 0) return 0;
  room = std::min<size_t>(room, static_cast<size_t>(left));
  absl::StatusOr<size_t> got = r.read_body(buffer, room);
  if (!got.ok() || (*got == 0 && left > 0)) {
    x->error =
        got.ok() ? absl::DataLossError("the blob ended early") : got.status();
    return CURL_READFUNC_ABORT;
  }
  x->sent += static_cast<int64_t>(*got);
  return *got;
}

}  // namespace

std::string UrlEncode(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(
          &out, "%",
          absl::AsciiStrToUpper(absl::StrCat(absl::Hex(c, absl::kZeroPad2))));
    }
  }
  return out;
}

absl::StatusOr<HttpResponse> Perform(const HttpRequest& request) {
  auto api = Curl();
  if (!api.ok()) return api.status();
  const CurlApi& c = **api;
  HttpResponse response;
  Exchange x;
  x.request = &request;
  x.response = &response;
  x.api = &c;
  x.curl = c.easy_init();
  if (x.curl == nullptr) return absl::InternalError("curl_easy_init failed");
  CURL* curl = x.curl;
  char error[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) {
    headers = c.slist_append(headers, h.c_str());
  }
  bool has_body = !request.body.empty() || request.read_body;
  int64_t body_size = request.read_body
                          ? request.body_size
                          : static_cast<int64_t>(request.body.size());
  if (request.method == "HEAD") {
    c.easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST" ||
             request.method == "PATCH") {
    c.easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    c.easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                  static_cast<curl_off_t>(has_body ? body_size : 0));
    c.easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
    c.easy_setopt(curl, CURLOPT_READDATA, &x);
    // curl would send "Expect: 100-continue" and wait for it.
    headers = c.slist_append(headers, "Expect:");
    if (request.method != "PUT") {
      c.easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  } else if (request.method != "GET") {
    c.easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  c.easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  c.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  c.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  c.easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  c.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  c.easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  c.easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  c.easy_setopt(curl, CURLOPT_HEADERDATA, &x);
  c.easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  c.easy_setopt(curl, CURLOPT_WRITEDATA, &x);
  c.easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  c.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  c.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, request.connect_timeout_seconds);
  c.easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  c.easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, request.low_speed_seconds);
  c.easy_setopt(curl, CURLOPT_USERAGENT, "stagefarm");
  if (request.want_filetime) c.easy_setopt(curl, CURLOPT_FILETIME, 1L);
  if (!request.tls.ca_file.empty()) {
    c.easy_setopt(curl, CURLOPT_CAINFO, request.tls.ca_file.c_str());
  }
  if (!request.tls.cert_file.empty()) {
    c.easy_setopt(curl, CURLOPT_SSLCERT, request.tls.cert_file.c_str());
    c.easy_setopt(curl, CURLOPT_SSLKEY, request.tls.key_file.c_str());
  }
  if (request.tls.skip_verify) {
    c.easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    c.easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  CURLcode rc = c.easy_perform(curl);
  c.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  if (request.want_filetime) {
    curl_off_t filetime = -1;
    c.easy_getinfo(curl, CURLINFO_FILETIME_T, &filetime);
    response.filetime = filetime;
  }
  c.easy_cleanup(curl);
  c.slist_free_all(headers);
  if (!x.error.ok()) return x.error;
  if (x.too_big) {
    return absl::ResourceExhaustedError(
        absl::StrCat(request.method, " ", request.url,
                     ": the response is over ", request.max_body, " bytes"));
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(request.method, " ", request.url, ": ",
                     error[0] ? error : c.easy_strerror(rc)));
  }
  return response;
}

}  // namespace stagefarm::http
