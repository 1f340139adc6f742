#include "webui/http_server.h"

#include <civetweb.h>
#include <openssl/ssl.h>

#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stagefarm::webui {
namespace {

constexpr size_t kMaxBody = 64 * 1024;

const char* StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 303:
      return "See Other";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return status < 500 ? "Error" : "Internal Server Error";
  }
}

std::string Decode(absl::string_view s) {
  std::string out(s.size() + 1, '\0');
  int n = mg_url_decode(s.data(), static_cast<int>(s.size()), out.data(),
                        static_cast<int>(out.size()), /*form=*/1);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

// Headers every answer carries: nothing of the page runs but its own
// scripts, nothing frames it, nothing guesses types.
std::string CommonHeaders() {
  return "X-Content-Type-Options: nosniff\r\n"
         "X-Frame-Options: DENY\r\n"
         "Referrer-Policy: no-referrer\r\n"
         "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
         "style-src 'self'; script-src 'self'; frame-ancestors 'none'\r\n";
}

std::string HeaderBlock(
    int status, const std::string& content_type,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", status, " ", StatusText(status),
                   "\r\nContent-Type: ", content_type, "\r\n", CommonHeaders());
  for (const auto& [k, v] : headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
  return out;
}

struct TlsFilesForCallback {
  std::string cert, key;
};

int InitSsl(void* ssl_ctx, void* user_data) {
  auto* server_files = static_cast<TlsFilesForCallback*>(user_data);
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  if (SSL_CTX_use_certificate_chain_file(ctx, server_files->cert.c_str()) !=
          1 ||
      SSL_CTX_use_PrivateKey_file(ctx, server_files->key.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return -1;
  }
  return 1;
}

}  // namespace

std::string HttpRequest::Cookie(const std::string& name) const {
  auto it = headers.find("cookie");
  if (it == headers.end()) return "";
  for (absl::string_view part : absl::StrSplit(it->second, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
  }
  return "";
}

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

std::string HttpRequest::Query(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? "" : it->second;
}

void HttpResponse::Send(
    int status, const std::string& content_type, absl::string_view body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (sent_) return;
  sent_ = true;
  std::string head = HeaderBlock(status, content_type, headers);
  absl::StrAppend(&head, "Content-Length: ", body.size(), "\r\n\r\n");
  mg_write(conn_, head.data(), head.size());
  if (!body.empty()) mg_write(conn_, body.data(), body.size());
}

void HttpResponse::Start(
    int status, const std::string& content_type,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (sent_) return;
  sent_ = true;
  std::string head = HeaderBlock(status, content_type, headers);
  // No length: the stream ends when the connection closes.
  absl::StrAppend(&head,
                  "Cache-Control: no-store\r\nConnection: close\r\n\r\n");
  mg_write(conn_, head.data(), head.size());
}

bool HttpResponse::Write(absl::string_view data) {
  return mg_write(conn_, data.data(), data.size()) > 0;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, int threads, HttpHandler handler,
    const std::string& cert_file, const std::string& key_file) {
  static std::once_flag init;
  std::call_once(init, [] { mg_init_library(MG_FEATURES_SSL); });
  const bool tls = !cert_file.empty();
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->handler_ = std::move(handler);
  server->cert_ = cert_file;
  server->key_ = key_file;
  const std::string ports = tls ? listen + "s" : listen;
  const std::string thread_count = std::to_string(threads);
  std::vector<const char*> options = {
      "listening_ports",    ports.c_str(),
      "num_threads",        thread_count.c_str(),
      "enable_keep_alive",  "yes",
      "request_timeout_ms", "30000"};
  static TlsFilesForCallback files;  // civetweb keeps the pointer
  files = {cert_file, key_file};
  if (tls) {
    // civetweb reads the certificate only through this option; the callback
    // loads the chain and key from their own files instead.
    options.push_back("ssl_certificate");
    options.push_back(cert_file.c_str());
  }
  options.push_back(nullptr);
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  if (tls) callbacks.init_ssl = InitSsl;
  callbacks.log_message = [](const mg_connection*, const char*) {
    return 1;  // quiet: errors reach the caller as statuses
  };
  server->ctx_ = mg_start(&callbacks, tls ? &files : nullptr, options.data());
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "--http-listen ", listen, ": cannot serve the web view there",
        tls ? " (with the TLS certificate and key given)" : ""));
  }
  mg_set_request_handler(server->ctx_, "/", &HttpServer::Dispatch,
                         server.get());
  mg_server_port port;
  if (mg_get_server_ports(server->ctx_, 1, &port) == 1) {
    server->port_ = port.port;
  }
  return server;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

int HttpServer::Dispatch(mg_connection* conn, void* self) {
  auto* server = static_cast<HttpServer*>(self);
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest req;
  req.method = info->request_method != nullptr ? info->request_method : "";
  req.path = info->local_uri != nullptr ? info->local_uri : "/";
  req.tls = info->is_ssl != 0;
  if (info->query_string != nullptr) {
    for (absl::string_view kv :
         absl::StrSplit(info->query_string, '&', absl::SkipEmpty())) {
      size_t eq = kv.find('=');
      req.query[Decode(kv.substr(0, eq))] =
          eq == absl::string_view::npos ? "" : Decode(kv.substr(eq + 1));
    }
  }
  for (int i = 0; i < info->num_headers; ++i) {
    req.headers[absl::AsciiStrToLower(info->http_headers[i].name)] =
        info->http_headers[i].value;
  }
  HttpResponse resp(conn);
  if (info->content_length > static_cast<long long>(kMaxBody)) {
    resp.Send(413, "text/plain; charset=utf-8", "request body over 64 KiB\n");
    return 413;
  }
  char buf[8192];
  while (req.body.size() <= kMaxBody) {
    int n = mg_read(conn, buf, sizeof(buf));
    if (n <= 0) break;
    req.body.append(buf, static_cast<size_t>(n));
  }
  if (req.body.size() > kMaxBody) {
    resp.Send(413, "text/plain; charset=utf-8", "request body over 64 KiB\n");
    return 413;
  }
  // civetweb's own threads have small stacks (Debian builds it with 100
  // KiB): the handler runs on a thread of ours, with the usual stack, while
  // civetweb's waits.
  std::thread run([&] {
    server->handler_(req, &resp);
    if (!resp.sent()) {
      resp.Send(500, "text/plain; charset=utf-8", "no answer\n");
    }
  });
  run.join();
  return 1;  // handled
}

}  // namespace stagefarm::webui
