#include "webui/http_server.h"

#include <httplib.h>

#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace stagefarm::webui {
namespace {

constexpr size_t kMaxBody = 64 * 1024;

// Headers every answer carries: nothing of the page runs but its own
// scripts, nothing frames it, nothing guesses types.
const std::pair<const char*, const char*> kCommonHeaders[] = {
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
    {"Content-Security-Policy",
     "default-src 'self'; img-src 'self' data:; style-src 'self'; "
     "script-src 'self'; frame-ancestors 'none'"},
};

}  // namespace

struct HttpServer::Impl {
  std::unique_ptr<httplib::Server> server;
  std::thread loop;
};

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
    int status_code, const std::string& type, absl::string_view data,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  if (sent_) return;
  sent_ = true;
  status = status_code;
  content_type = type;
  body.assign(data.data(), data.size());
  headers = extra;
}

void HttpResponse::Stream(int status_code, const std::string& type,
                          Producer p) {
  if (sent_) return;
  sent_ = true;
  status = status_code;
  content_type = type;
  headers = {{"Cache-Control", "no-store"}};
  producer = std::move(p);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, int threads, HttpHandler handler,
    const std::string& cert_file, const std::string& key_file) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen ", listen, ": not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  host = std::string(absl::StripSuffix(absl::StripPrefix(host, "["), "]"));
  auto impl = std::make_unique<Impl>();
  const bool tls = !cert_file.empty();
  if (tls) {
    impl->server = std::make_unique<httplib::SSLServer>(cert_file.c_str(),
                                                        key_file.c_str());
    if (!impl->server->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--http-listen ", listen, ": cannot serve HTTPS with ",
                       cert_file, " and ", key_file));
    }
  } else {
    impl->server = std::make_unique<httplib::Server>();
  }
  httplib::Server& svr = *impl->server;
  svr.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  svr.set_payload_max_length(kMaxBody);
  svr.set_keep_alive_max_count(100);
  auto dispatch = [handler, tls](const httplib::Request& in,
                                 httplib::Response& out) {
    HttpRequest req;
    req.method = in.method;
    req.path = in.path;
    req.tls = tls;
    req.body = in.body;
    for (const auto& [k, v] : in.params) req.query.emplace(k, v);
    for (const auto& [k, v] : in.headers) {
      req.headers.emplace(absl::AsciiStrToLower(k), v);
    }
    HttpResponse resp;
    handler(req, &resp);
    if (!resp.sent()) {
      resp.Send(500, "text/plain; charset=utf-8", "no answer\n");
    }
    out.status = resp.status;
    for (const auto& [k, v] : kCommonHeaders) out.set_header(k, v);
    for (const auto& [k, v] : resp.headers) out.set_header(k, v);
    if (resp.producer) {
      auto producer = std::move(resp.producer);
      out.set_chunked_content_provider(
          resp.content_type,
          [producer](size_t /*offset*/, httplib::DataSink& sink) {
            producer([&sink](absl::string_view data) {
              return sink.is_writable() && sink.write(data.data(), data.size());
            });
            sink.done();
            return true;
          });
    } else {
      out.set_content(resp.body, resp.content_type);
    }
  };
  svr.Get(".*", dispatch);  // and HEAD
  svr.Post(".*", dispatch);
  svr.Delete(".*", dispatch);
  const int bound = port == 0 ? svr.bind_to_any_port(host)
                              : (svr.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "--http-listen ", listen, ": cannot listen there (in use?)"));
  }
  httplib::Server* raw = impl->server.get();
  impl->loop = std::thread([raw] { raw->listen_after_bind(); });
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->impl_ = std::move(impl);
  server->port_ = bound;
  return server;
}

HttpServer::~HttpServer() {
  if (impl_ == nullptr) return;
  impl_->server->stop();
  if (impl_->loop.joinable()) impl_->loop.join();
}

}  // namespace stagefarm::webui
