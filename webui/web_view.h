// The web view: the pages (assets built into the binary) and the JSON API
// under /api/v1/ they use (docs/web-api.md), over a FarmSource. With
// tenants, every API call needs the tenant's token: a bearer header, or a
// session cookie the login form gets for it (HttpOnly, SameSite=Strict;
// POSTs also need the X-Stagefarm header, which other sites' forms cannot
// send). An open page's event stream holds no thread: the server keeps it
// (HttpServer::Hold) and one thread here writes every stream's events;
// a tenant and a client address may each have only so many open (429 past
// the caps). Thread-safe.
#ifndef STAGEFARM_WEBUI_WEB_VIEW_H_
#define STAGEFARM_WEBUI_WEB_VIEW_H_

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "webui/farm_source.h"
#include "webui/http_server.h"

namespace stagefarm::webui {

struct WebViewOptions {
  std::string listen;  // HOST:PORT
  // PEM files: with them the view is served over HTTPS only.
  std::string cert_file, key_file;
  int threads = 48;  // requests served at once (event streams hold none)
  absl::Duration session_lifetime = absl::Hours(12);
  // Open event streams (/api/v1/events) of one tenant (with tenants on)
  // and from one client address; one more is answered 429.
  int max_streams_per_tenant = 32;
  int max_streams_per_address = 64;
  // The server's bounds on connections (HttpServerOptions): per address
  // in the request pool at once, and how long a request may take to come.
  int max_connections_per_address = 32;
  absl::Duration request_timeout = absl::Seconds(10);
};

class WebView {
 public:
  static absl::StatusOr<std::unique_ptr<WebView>> Start(WebViewOptions options,
                                                        FarmSource* source);
  ~WebView();

  // "http://127.0.0.1:PORT/" (https with TLS).
  std::string url() const { return url_; }
  // Ends the event streams so that the server can stop.
  void Stop();

  // The request as the server hands it (public for tests).
  void Handle(const HttpRequest& req, HttpResponse* resp);

 private:
  WebView(WebViewOptions options, FarmSource* source)
      : options_(std::move(options)), source_(source) {}

  // The caller: *caller set (null with tenants off) or an error answered.
  bool Authenticate(const HttpRequest& req, HttpResponse* resp,
                    const Tenant** caller);
  void Session(const HttpRequest& req, HttpResponse* resp);
  void Builds(const HttpRequest& req, const Tenant* caller, HttpResponse* resp);
  void Build(const HttpRequest& req, const Tenant* caller,
             const std::string& id, const std::string& what,
             HttpResponse* resp);
  void Events(const HttpRequest& req, const Tenant* caller, HttpResponse* resp);
  // The thread that writes every open event stream's events.
  void Broadcast();
  void PruneStreamsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(streams_mu_);
  void Cache(const Tenant* caller, HttpResponse* resp);
  void Blob(const HttpRequest& req, const Tenant* caller,
            const std::string& hash, const std::string& size,
            HttpResponse* resp);
  // The action cache's entry for an action digest (a step's cache key).
  void Action(const HttpRequest& req, const Tenant* caller,
              const std::string& hash, const std::string& size,
              HttpResponse* resp);
  // The earlier build (buildview::IsEarlierBuildOf) that `view`'s steps
  // that ran are compared with: preferably one of the same `dockerfile`
  // text; none when no step ran or the build asked for no cache.
  std::optional<buildview::BuildView> EarlierBuild(
      const Tenant* caller, const buildview::BuildView& view,
      const std::string& dockerfile);

  WebViewOptions options_;
  FarmSource* source_;
  std::unique_ptr<HttpServer> server_;
  std::string url_;
  std::atomic<bool> stopping_{false};

  struct SessionState {
    const Tenant* tenant;
    absl::Time expires;
  };
  absl::Mutex mu_;
  std::map<std::string, SessionState> sessions_ ABSL_GUARDED_BY(mu_);

  // An open event stream, counted from the request (stream null until
  // the server holds it).
  struct EventStream {
    std::string tenant;  // "" with tenants off
    std::string address;
    std::shared_ptr<HttpStream> stream;
  };
  absl::Mutex streams_mu_;
  std::list<std::shared_ptr<EventStream>> streams_ ABSL_GUARDED_BY(streams_mu_);
  std::thread broadcaster_;
};

}  // namespace stagefarm::webui

#endif  // STAGEFARM_WEBUI_WEB_VIEW_H_
