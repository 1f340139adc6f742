#include "webui/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace stagefarm::webui {
namespace {

constexpr size_t kMaxBody = 64 * 1024;
// What one request may send, head and body: the rest is cut off.
constexpr size_t kMaxRequestBytes = kMaxBody + 64 * 1024;
constexpr size_t kKeepAliveRequests = 100;

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

// poll(2) for `events` on `fd` until `deadline`: > 0 ready, 0 timed out,
// < 0 failed.
int PollUntil(int fd, short events, absl::Time deadline) {
  for (;;) {
    const int64_t ms =
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now() +
                                                       absl::Milliseconds(1)));
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0 && (p.revents & (POLLERR | POLLNVAL)) != 0) return -1;
    return r;
  }
}

// What a failed non-blocking read or write waits for: POLLIN, POLLOUT, or
// 0 for an error that ends the connection.
short WaitFor(SSL* ssl, int n) {
  if (ssl != nullptr) {
    switch (SSL_get_error(ssl, n)) {
      case SSL_ERROR_WANT_READ:
        return POLLIN;
      case SSL_ERROR_WANT_WRITE:
        return POLLOUT;
      default:
        ERR_clear_error();
        return 0;
    }
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return POLLIN;
  return 0;
}

void AddressOf(const sockaddr_storage& addr, std::string* ip, int* port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    *port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    *port = ntohs(a->sin6_port);
  }
  *ip = text;
}

std::string PeerAddress(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  std::string ip;
  int port = 0;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    AddressOf(addr, &ip, &port);
  }
  return ip;
}

// A connection as cpp-httplib reads and writes it: a non-blocking socket
// (with TLS, its SSL), reads bounded by the request's deadline and byte
// budget, writes by the write timeout.
class Connection final : public httplib::Stream {
 public:
  Connection(int fd, SSL* ssl, absl::Duration write_timeout)
      : fd_(fd), ssl_(ssl), write_timeout_(write_timeout) {}

  // Waits for the first byte of a request until `deadline`: false when
  // none came (silence, the client closed, the server stops).
  bool WaitForRequest(absl::Time deadline, const std::atomic<int>& svr_sock) {
    for (;;) {
      if (is_readable()) return true;
      if (svr_sock == INVALID_SOCKET) return false;
      const absl::Time now = absl::Now();
      if (now >= deadline) return false;
      const int r = PollUntil(
          fd_, POLLIN, std::min(deadline, now + absl::Milliseconds(200)));
      if (r < 0) return false;
      if (r > 0) return true;
    }
  }
  // A request starts: all of it must have come by `deadline`.
  void StartRequest(absl::Time deadline) {
    deadline_ = deadline;
    budget_ = kMaxRequestBytes;
  }

  bool is_readable() const override {
    return pos_ < buf_.size() || (ssl_ != nullptr && SSL_pending(ssl_) > 0);
  }
  bool is_writable() const override {
    return PollUntil(fd_, POLLOUT, absl::Now() + write_timeout_) > 0;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (pos_ == buf_.size() && !Fill()) return -1;
    const size_t n = std::min(size, buf_.size() - pos_);
    std::copy_n(buf_.data() + pos_, n, ptr);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    const int len = static_cast<int>(std::min<size_t>(size, 1 << 30));
    for (;;) {
      const int n =
          ssl_ != nullptr
              ? SSL_write(ssl_, ptr, len)
              : static_cast<int>(
                    send(fd_, ptr, static_cast<size_t>(len), MSG_NOSIGNAL));
      if (n > 0) return n;
      if (n < 0 && ssl_ == nullptr && errno == EINTR) continue;
      const short wait = WaitFor(ssl_, n);
      if (wait == 0 ||
          PollUntil(fd_, wait, absl::Now() + write_timeout_) <= 0) {
        return -1;
      }
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, &ip, &port);
    }
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, &ip, &port);
    }
  }
  int socket() const override { return fd_; }

 private:
  // Reads what has come, waiting for it until the deadline.
  bool Fill() {
    buf_.clear();
    pos_ = 0;
    if (budget_ == 0) return false;
    char tmp[4096];
    const int want = static_cast<int>(std::min(sizeof(tmp), budget_));
    for (;;) {
      const int n =
          ssl_ != nullptr
              ? SSL_read(ssl_, tmp, want)
              : static_cast<int>(recv(fd_, tmp, static_cast<size_t>(want), 0));
      if (n > 0) {
        buf_.assign(tmp, static_cast<size_t>(n));
        budget_ -= static_cast<size_t>(n);
        return true;
      }
      if (n < 0 && ssl_ == nullptr && errno == EINTR) continue;
      const short wait = WaitFor(ssl_, n);
      if (wait == 0 || PollUntil(fd_, wait, deadline_) <= 0) return false;
    }
  }

  const int fd_;
  SSL* const ssl_;
  const absl::Duration write_timeout_;
  absl::Time deadline_ = absl::InfinitePast();
  size_t budget_ = 0;
  std::string buf_;
  size_t pos_ = 0;
};

// What a request's handler leaves for its connection: a body to hold.
struct ConnectionState {
  std::string remote_addr;
  bool tls = false;
  HttpResponse::OnHeld on_held;
  bool head_sent = false;  // the held response's head is on the wire
};
thread_local ConnectionState* current_connection = nullptr;

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  SSL_CTX* ssl_ctx = nullptr;
  std::unique_ptr<HeldStreams> held;
  std::unique_ptr<httplib::Server> server;
  std::thread loop;

  absl::Mutex mu;
  std::map<std::string, int> connections ABSL_GUARDED_BY(mu);  // by address

  // Counts a connection from `addr`: false (not counted) over the cap.
  bool Enter(const std::string& addr) {
    absl::MutexLock lock(&mu);
    int& n = connections[addr];
    if (n >= options.max_connections_per_address) {
      if (n == 0) connections.erase(addr);
      return false;
    }
    ++n;
    return true;
  }
  void Leave(const std::string& addr) {
    absl::MutexLock lock(&mu);
    auto it = connections.find(addr);
    if (it != connections.end() && --it->second <= 0) connections.erase(it);
  }
  // One connection from start to end, on a pool thread.
  bool Serve(httplib::Server* server, const std::atomic<int>& svr_sock, int fd);
  // cpp-httplib's Server::process_request (protected there).
  std::function<bool(httplib::Stream&, bool, bool&)> process_request;
};

namespace {

// cpp-httplib's server with our connections: it parses requests and writes
// answers; how a connection is read, how long it may take, how many one
// address has and which are held is ours.
class Server final : public httplib::Server {
 public:
  // cpp-httplib listens with a backlog of 5: a burst of connections
  // would wait for the clients' SYN retries (a second and more).
  void WidenBacklog() { ::listen(svr_sock_, SOMAXCONN); }

  explicit Server(HttpServer::Impl* impl) : impl_(impl) {
    impl_->process_request = [this](httplib::Stream& strm, bool close,
                                    bool& closed) {
      return process_request(strm, close, closed, nullptr);
    };
  }

 private:
  bool process_and_close_socket(int sock) override {
    return impl_->Serve(this, svr_sock_, sock);
  }
  HttpServer::Impl* impl_;
};

// Answers 429 and closes. The request is read for a moment and dropped
// (closing on unread bytes would reset the connection before the client
// reads the answer).
void Refuse(int fd, const std::string& addr, int cap) {
  char drain[4096];
  if (PollUntil(fd, POLLIN, absl::Now() + absl::Milliseconds(100)) > 0) {
    while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0) {
    }
  }
  const std::string body =
      absl::StrCat("too many connections from ", addr, " (at most ", cap,
                   " at once): retry later\n");
  const std::string answer = absl::StrCat(
      "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; "
      "charset=utf-8\r\nContent-Length: ",
      body.size(), "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n", body);
  (void)!send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

bool HttpServer::Impl::Serve(httplib::Server* /*server*/,
                             const std::atomic<int>& svr_sock, int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  const std::string addr = PeerAddress(fd);
  if (!Enter(addr)) {
    Refuse(fd, addr, options.max_connections_per_address);
    close(fd);
    return false;
  }
  bool entered = true;
  auto leave = [&] {
    if (entered) Leave(addr);
    entered = false;
  };
  const absl::Time first_deadline = absl::Now() + options.request_timeout;
  SSL* ssl = nullptr;
  if (ssl_ctx != nullptr) {
    ssl = SSL_new(ssl_ctx);
    bool ok = ssl != nullptr && SSL_set_fd(ssl, fd) == 1;
    while (ok) {
      const int r = SSL_accept(ssl);
      if (r == 1) break;
      const short wait = WaitFor(ssl, r);
      ok = wait != 0 && PollUntil(fd, wait, first_deadline) > 0;
    }
    if (!ok) {
      if (ssl != nullptr) SSL_free(ssl);
      ERR_clear_error();
      close(fd);
      leave();
      return false;
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
  }
  ConnectionState state;
  state.remote_addr = addr;
  state.tls = ssl != nullptr;
  current_connection = &state;
  Connection conn(fd, ssl, options.write_timeout);
  bool ret = false;
  absl::Time wait_until = first_deadline;
  for (size_t left = kKeepAliveRequests; left > 0; --left) {
    if (!conn.WaitForRequest(wait_until, svr_sock)) break;
    conn.StartRequest(absl::Now() + options.request_timeout);
    bool closed = false;
    ret = process_request(conn, left == 1, closed);
    if (state.on_held || !ret || closed) break;
    wait_until = absl::Now() + options.idle_timeout;
  }
  current_connection = nullptr;
  leave();  // a held stream is not the pool's any more
  if (state.on_held) {
    std::shared_ptr<HttpStream> stream;
    if (state.head_sent && held != nullptr) {
      stream = held->Adopt(fd, ssl);  // owns them now, closed when full
      fd = -1;
      ssl = nullptr;
    }
    try {
      state.on_held(std::move(stream));
    } catch (const std::exception& e) {
      LogError("web view: a held stream's handler failed",
               {{"error", e.what()}});
    } catch (...) {
      LogError("web view: a held stream's handler failed");
    }
  }
  if (fd >= 0) {
    if (ssl != nullptr) {
      if (ret) SSL_shutdown(ssl);
      SSL_free(ssl);
      ERR_clear_error();
    }
    shutdown(fd, SHUT_RDWR);
    close(fd);
  }
  return ret;
}

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

void HttpResponse::Hold(int status_code, const std::string& type, OnHeld on) {
  if (sent_) return;
  sent_ = true;
  status = status_code;
  content_type = type;
  headers = {{"Cache-Control", "no-store"}};
  on_held = std::move(on);
}

namespace {

void SendInternalError(httplib::Response& out) {
  out.status = 500;
  for (const auto& [k, v] : kCommonHeaders) out.set_header(k, v);
  out.set_content("internal error\n", "text/plain; charset=utf-8");
}

// The server's TLS context from PEM files, as cpp-httplib's SSLServer
// makes it (TLS 1.2 and later).
absl::StatusOr<SSL_CTX*> TlsContext(const std::string& listen,
                                    const std::string& cert_file,
                                    const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
                               SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) !=
          1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen ", listen, ": cannot serve HTTPS with ",
                     cert_file, " and ", key_file));
  }
  return ctx;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, HttpHandler handler) {
  const std::string& listen = options.listen;
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
  impl->options = options;
  const bool tls = !options.cert_file.empty();
  if (tls) {
    absl::StatusOr<SSL_CTX*> ctx =
        TlsContext(listen, options.cert_file, options.key_file);
    if (!ctx.ok()) return ctx.status();
    impl->ssl_ctx = *ctx;
  }
  absl::StatusOr<std::unique_ptr<HeldStreams>> held =
      HeldStreams::Start(options.max_held_streams);
  if (!held.ok()) {
    if (impl->ssl_ctx != nullptr) SSL_CTX_free(impl->ssl_ctx);
    return held.status();
  }
  impl->held = *std::move(held);
  impl->server = std::make_unique<Server>(impl.get());
  httplib::Server& svr = *impl->server;
  const int threads = std::max(1, options.threads);
  svr.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  svr.set_payload_max_length(kMaxBody);
  // What throws in cpp-httplib itself (ours is caught below) is logged and
  // answered without its text.
  svr.set_exception_handler([](const httplib::Request& in,
                               httplib::Response& out, std::exception_ptr ep) {
    std::string what = "an unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogError("web view: a request failed",
             {{"path", in.path}, {"error", what}});
    out.headers.clear();
    out.body.clear();
    SendInternalError(out);
  });
  auto dispatch = [handler](const httplib::Request& in,
                            httplib::Response& out) {
    ConnectionState* state = current_connection;
    HttpRequest req;
    req.method = in.method;
    req.path = in.path;
    req.tls = state != nullptr && state->tls;
    req.remote_addr = state != nullptr ? state->remote_addr : in.remote_addr;
    req.body = in.body;
    for (const auto& [k, v] : in.params) req.query.emplace(k, v);
    for (const auto& [k, v] : in.headers) {
      req.headers.emplace(absl::AsciiStrToLower(k), v);
    }
    HttpResponse resp;
    std::string failure;
    try {
      handler(req, &resp);
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "an unknown exception";
    }
    if (!failure.empty()) {
      LogError("web view: a request failed",
               {{"path", req.path}, {"error", failure}});
      return SendInternalError(out);
    }
    if (!resp.sent()) {
      resp.Send(500, "text/plain; charset=utf-8", "no answer\n");
    }
    out.status = resp.status;
    for (const auto& [k, v] : kCommonHeaders) out.set_header(k, v);
    for (const auto& [k, v] : resp.headers) out.set_header(k, v);
    if (resp.on_held && state != nullptr) {
      // The provider runs once the head is written: it marks the
      // connection to be held and ends cpp-httplib's part (false: no
      // more body from it). The content type must be one cpp-httplib
      // does not compress (text/event-stream is not).
      state->on_held = std::move(resp.on_held);
      out.set_chunked_content_provider(
          resp.content_type,
          [state](size_t /*offset*/, httplib::DataSink& /*sink*/) {
            state->head_sent = true;
            return false;
          });
    } else if (resp.on_held) {
      resp.on_held(nullptr);
      SendInternalError(out);
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
    if (impl->ssl_ctx != nullptr) SSL_CTX_free(impl->ssl_ctx);
    return absl::UnavailableError(absl::StrCat(
        "--http-listen ", listen, ": cannot listen there (in use?)"));
  }
  static_cast<Server*>(impl->server.get())->WidenBacklog();
  httplib::Server* raw = impl->server.get();
  impl->loop = std::thread([raw] { raw->listen_after_bind(); });
  // Until it runs, stop() would not stop it.
  for (int i = 0; i < 5000 && !raw->is_running(); ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->impl_ = std::move(impl);
  server->port_ = bound;
  return server;
}

HttpServer::~HttpServer() {
  if (impl_ == nullptr) return;
  impl_->server->stop();  // and waits for the pool's connections
  if (impl_->loop.joinable()) impl_->loop.join();
  impl_->held.reset();
  if (impl_->ssl_ctx != nullptr) SSL_CTX_free(impl_->ssl_ctx);
}

}  // namespace stagefarm::webui
