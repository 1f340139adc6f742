// The web view's real server on 127.0.0.1 port 0 over a FarmSource of
// fixed builds: event streams that hold no request thread, their caps,
// slow connections that cannot starve the sign-in, and answers that never
// carry an exception's text.
#include "webui/web_view.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace stagefarm::webui {
namespace {

namespace reapi = build::bazel::remote::execution::v2;

// Two tenants with a build each; a blob whose bytes a test sets; a change
// counter a test bumps; Workers() throws when told to.
class FixedSource : public FarmSource {
 public:
  FixedSource() {
    a_.name = "team-a";
    a_.instances = {"team-a"};
    b_.name = "team-b";
    b_.instances = {"team-b"};
  }

  bool TenantsOn() const override { return true; }
  absl::StatusOr<const Tenant*> ByToken(
      absl::string_view token) const override {
    if (token == "token-a") return &a_;
    if (token == "token-b") return &b_;
    return absl::UnauthenticatedError("unknown token");
  }
  std::vector<v1::BuildSummary> Summaries(const Tenant* caller,
                                          const buildview::BuildFilter&, size_t,
                                          size_t, size_t* total) override {
    std::vector<v1::BuildSummary> out;
    v1::BuildSummary s;
    s.set_build_id(BuildOf(caller));
    s.set_state("succeeded");
    s.set_tenant(caller->name);
    s.set_instance_name(caller->name);
    s.set_dockerfile_name("Dockerfile");
    out.push_back(s);
    *total = out.size();
    return out;
  }
  absl::StatusOr<v1::BuildRecord> Record(const Tenant* caller,
                                         const std::string& id) override {
    if (id != BuildOf(caller)) return absl::NotFoundError("no such build");
    v1::BuildRecord r;
    r.mutable_build()->set_build_id(id);
    r.mutable_build()->mutable_spec()->set_dockerfile("FROM busybox\n");
    r.mutable_build()->mutable_spec()->set_instance_name(caller->name);
    r.mutable_build()->set_finished(true);
    return r;
  }
  absl::Status Cancel(const Tenant*, const std::string&) override {
    return absl::FailedPreconditionError("finished");
  }
  uint64_t ChangeCount() override {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  void WaitForChange(uint64_t seen, absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return changes_ != seen;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  }
  void Change() {
    absl::MutexLock lock(&mu_);
    ++changes_;
  }
  nlohmann::json Workers(const Tenant*) override {
    if (throw_) {
      throw std::runtime_error("secret-detail type_error.302 in the source");
    }
    return nlohmann::json::array();
  }
  nlohmann::json Store(const Tenant*) override { return nlohmann::json{}; }
  absl::StatusOr<std::string> ReadBlob(const Tenant* caller,
                                       const std::string& instance,
                                       const Digest&, int64_t) override {
    if (instance != caller->name) return absl::PermissionDeniedError("no");
    absl::MutexLock lock(&mu_);
    return blob_;
  }
  absl::StatusOr<reapi::ActionResult> ReadActionResult(const Tenant*,
                                                       const std::string&,
                                                       const Digest&) override {
    return absl::NotFoundError("none");
  }

  static std::string BuildOf(const Tenant* t) {
    return t->name == "team-a" ? "aaaa1111" : "bbbb2222";
  }
  void SetBlob(std::string b) {
    absl::MutexLock lock(&mu_);
    blob_ = std::move(b);
  }
  std::atomic<bool> throw_{false};

 private:
  Tenant a_, b_;
  absl::Mutex mu_;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 1;
  std::string blob_ ABSL_GUARDED_BY(mu_);
};

// A TCP connection to 127.0.0.1:port from `from` (another loopback address
// counts as another client).
int Connect(int port, const char* from = "127.0.0.1") {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, from, &local.sin_addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)), 0)
      << "bind " << from;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void SendAll(int fd, const std::string& data) {
  ASSERT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(data.size()));
}

// Reads until `until` (or `or_until`) is in what came, the connection
// ends or `timeout`.
std::string ReadUntil(int fd, absl::string_view until, absl::Duration timeout,
                      bool* eof = nullptr, absl::string_view or_until = "") {
  std::string got;
  const absl::Time deadline = absl::Now() + timeout;
  if (eof != nullptr) *eof = false;
  while (!absl::StrContains(got, until) &&
         (or_until.empty() || !absl::StrContains(got, or_until))) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) break;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      if (eof != nullptr) *eof = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Opens /api/v1/events as `token`; *head is what came by the first event
// (or the error's body).
int OpenStream(int port, const std::string& token, std::string* head) {
  const int fd = Connect(port);
  SendAll(fd, absl::StrCat("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n"
                           "Authorization: Bearer ",
                           token, "\r\n\r\n"));
  // A stream's first event ends in a blank line; an error's JSON in "}".
  *head = ReadUntil(fd, "\n\n", absl::Seconds(5), nullptr, "}");
  return fd;
}

class WebViewTest : public ::testing::Test {
 protected:
  void Start(WebViewOptions options) {
    options.listen = "127.0.0.1:0";
    auto view = WebView::Start(options, &source_);
    ASSERT_TRUE(view.ok()) << view.status();
    view_ = *std::move(view);
    const std::string url = view_->url();
    port_ = std::stoi(url.substr(url.rfind(':') + 1));
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    view_.reset();
  }
  // GET as `token`: the response, and how long it took.
  httplib::Result Get(const std::string& path, const std::string& token,
                      absl::Duration* took) {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(5);
    client.set_read_timeout(5);
    const absl::Time start = absl::Now();
    httplib::Result r =
        client.Get(path.c_str(), {{"Authorization", "Bearer " + token}});
    *took = absl::Now() - start;
    return r;
  }

  FixedSource source_;
  std::unique_ptr<WebView> view_;
  int port_ = 0;
  std::vector<int> fds_;
};

TEST_F(WebViewTest, TwoHundredStreamsDoNotStarveAnotherTenant) {
  WebViewOptions options;  // 48 request threads
  options.max_streams_per_tenant = 200;
  options.max_streams_per_address = 1000;
  Start(options);
  for (int i = 0; i < 200; ++i) {
    std::string head;
    fds_.push_back(OpenStream(port_, "token-a", &head));
    ASSERT_TRUE(absl::StartsWith(head, "HTTP/1.1 200")) << i << ": " << head;
    ASSERT_TRUE(absl::StrContains(head, "text/event-stream")) << head;
    ASSERT_TRUE(absl::StrContains(head, "event: change\ndata: 1\n")) << head;
  }
  // The other tenant browses: the builds, a build's page, its log.
  for (int round = 0; round < 5; ++round) {
    for (const std::string path : {"/api/v1/builds", "/api/v1/builds/bbbb2222",
                                   "/api/v1/workers", "/api/v1/session", "/"}) {
      absl::Duration took;
      httplib::Result r = Get(path, "token-b", &took);
      ASSERT_TRUE(r) << path << ": no answer";
      EXPECT_EQ(r->status, 200) << path << ": " << r->body;
      EXPECT_LT(took, absl::Seconds(1)) << path;
    }
  }
  absl::Duration took;
  httplib::Result builds = Get("/api/v1/builds", "token-b", &took);
  ASSERT_TRUE(builds);
  EXPECT_TRUE(absl::StrContains(builds->body, "bbbb2222")) << builds->body;
  EXPECT_FALSE(absl::StrContains(builds->body, "aaaa1111")) << builds->body;

  // One stream over the tenant's cap.
  std::string head;
  fds_.push_back(OpenStream(port_, "token-a", &head));
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 429")) << head;

  // Every held stream hears of a change.
  source_.Change();
  for (size_t i = 0; i < 200; ++i) {
    const std::string got =
        ReadUntil(fds_[i], "event: change\ndata: 2\n", absl::Seconds(5));
    ASSERT_TRUE(absl::StrContains(got, "data: 2\n")) << i << ": " << got;
  }
  // A stream closed by its client frees its place.
  close(fds_[0]);
  fds_.erase(fds_.begin());
  std::string again;
  for (int i = 0; i < 50 && !absl::StartsWith(again, "HTTP/1.1 200"); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    int fd = OpenStream(port_, "token-a", &again);
    fds_.push_back(fd);
  }
  EXPECT_TRUE(absl::StartsWith(again, "HTTP/1.1 200")) << again;
}

TEST_F(WebViewTest, StreamsAreCappedPerTenantAndPerAddress) {
  WebViewOptions options;
  options.max_streams_per_tenant = 5;
  options.max_streams_per_address = 8;
  Start(options);
  std::string head;
  for (int i = 0; i < 5; ++i) {
    fds_.push_back(OpenStream(port_, "token-a", &head));
    ASSERT_TRUE(absl::StartsWith(head, "HTTP/1.1 200")) << head;
  }
  fds_.push_back(OpenStream(port_, "token-a", &head));
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 429")) << head;
  EXPECT_TRUE(absl::StrContains(head, "tenant team-a (at most 5)")) << head;
  for (int i = 0; i < 3; ++i) {
    fds_.push_back(OpenStream(port_, "token-b", &head));
    ASSERT_TRUE(absl::StartsWith(head, "HTTP/1.1 200")) << head;
  }
  fds_.push_back(OpenStream(port_, "token-b", &head));
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 429")) << head;
  EXPECT_TRUE(absl::StrContains(head, "from 127.0.0.1 (at most 8)")) << head;
  // Other requests from the address are served.
  absl::Duration took;
  httplib::Result r = Get("/api/v1/builds", "token-b", &took);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(WebViewTest, SlowConnectionsDoNotStarveTheSignIn) {
  WebViewOptions options;  // 48 threads, 32 connections an address
  options.request_timeout = absl::Seconds(2);
  Start(options);
  // 60 clients from another address send half a request line and stop.
  std::vector<int> slow;
  for (int i = 0; i < 60; ++i) {
    slow.push_back(Connect(port_, "127.0.0.2"));
    fds_.push_back(slow.back());
    SendAll(slow.back(), "GET /api/v1/ses");
  }
  absl::SleepFor(absl::Milliseconds(300));
  // The sign-in is answered at once.
  for (int i = 0; i < 5; ++i) {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(5);
    const absl::Time start = absl::Now();
    httplib::Result r =
        client.Post("/api/v1/session", {{"X-Stagefarm", "1"}},
                    R"({"token": "token-a"})", "application/json");
    const absl::Duration took = absl::Now() - start;
    ASSERT_TRUE(r) << "no answer to the sign-in";
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_TRUE(r->has_header("Set-Cookie"));
    EXPECT_LT(took, absl::Seconds(1));
  }
  // Those over the address's cap were told so; the rest are cut off once
  // the request timeout passes.
  int refused = 0, cut = 0;
  for (int fd : slow) {
    bool eof = false;
    const std::string got = ReadUntil(fd, "\x01", absl::Seconds(4), &eof);
    if (absl::StartsWith(got, "HTTP/1.1 429")) {
      ++refused;
      EXPECT_TRUE(absl::StrContains(got, "too many connections from 127.0.0.2"))
          << got;
    } else if (eof) {
      ++cut;
    }
  }
  EXPECT_GE(refused, 60 - 32);
  EXPECT_EQ(refused + cut, 60);
}

TEST_F(WebViewTest, BlobWithMistypedFieldsIsShownAsJsonWithANote) {
  Start(WebViewOptions());
  const std::string hash(64, 'a');
  auto get_blob = [&](const std::string& blob) {
    source_.SetBlob(blob);
    absl::Duration took;
    return Get(absl::StrCat("/api/v1/blobs/", hash, "/", blob.size(),
                            "?instance=team-a"),
               "token-a", &took);
  };
  const std::string layer =
      R"({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", )"
      R"("digest": "sha256:)" +
      std::string(64, 'b') + R"(", "size": 10})";
  const std::string config =
      R"({"mediaType": "application/vnd.oci.image.config.v1+json", )"
      R"("digest": "sha256:)" +
      std::string(64, 'c') + R"(", "size": 5})";
  struct Case {
    std::string blob, kind, note;
  };
  const std::vector<Case> cases = {
      {R"({"schemaVersion": 2, "mediaType": 7, "config": )" + config +
           R"(, "layers": [)" + layer + "]}",
       "json", R"(field \"mediaType\" is a number, not a string)"},
      {R"({"schemaVersion": 2, "config": )" + config +
           R"(, "layers": [{"digest": 12, "size": 1}]})",
       "json", R"(layers[0]: field \"digest\" is a number)"},
      {R"({"schemaVersion": 2, "config": "x", "layers": []})", "json",
       "config is a string, not an object"},
      {R"({"schemaVersion": 2, "manifests": [{"digest": "sha256:x", )"
       R"("size": "9"}]})",
       "json", R"(manifests[0]: field \"size\" is a string)"},
      {R"({"schemaVersion": 2, "config": )" + config + R"(, "layers": [)" +
           layer + "]}",
       "manifest", ""},
  };
  for (const Case& c : cases) {
    httplib::Result r = get_blob(c.blob);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << c.blob << ": " << r->body;
    EXPECT_TRUE(
        absl::StrContains(r->body, absl::StrCat(R"("kind":")", c.kind, "\"")))
        << r->body;
    if (!c.note.empty()) {
      EXPECT_TRUE(absl::StrContains(r->body, c.note)) << r->body;
    } else {
      EXPECT_FALSE(absl::StrContains(r->body, "\"note\"")) << r->body;
    }
    EXPECT_FALSE(r->has_header("EXCEPTION_WHAT"));
    EXPECT_FALSE(absl::StrContains(r->body, "type_error")) << r->body;
  }
}

TEST_F(WebViewTest, AHandlerThatThrowsAnswersAPlain500) {
  Start(WebViewOptions());
  source_.throw_ = true;
  absl::Duration took;
  httplib::Result r = Get("/api/v1/workers", "token-a", &took);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body, "internal error\n");
  for (const auto& [name, value] : r->headers) {
    EXPECT_FALSE(absl::StrContains(value, "secret-detail")) << name;
    EXPECT_NE(name, "EXCEPTION_WHAT");
  }
  // The server goes on.
  source_.throw_ = false;
  r = Get("/api/v1/workers", "token-a", &took);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

// cpp-httplib's client speaks TLS with the define its library was built
// with (the Bazel target gives it; a syntax-only check may not).
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
// A self-signed certificate for 127.0.0.1 and its key, as PEM files in
// the test's temporary directory.
void WriteCertificate(const std::string& cert_file,
                      const std::string& key_file) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  ASSERT_NE(cert, nullptr);
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  FILE* f = fopen(cert_file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, cert);
  fclose(f);
  f = fopen(key_file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  fclose(f);
  X509_free(cert);
  EVP_PKEY_free(key);
}

TEST_F(WebViewTest, HttpsServesRequestsAndHeldStreams) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  WebViewOptions options;
  options.cert_file = dir + "/web_view_test.crt";
  options.key_file = dir + "/web_view_test.key";
  WriteCertificate(options.cert_file, options.key_file);
  Start(options);
  ASSERT_TRUE(absl::StartsWith(view_->url(), "https://")) << view_->url();
  httplib::SSLClient client("127.0.0.1", port_);
  client.enable_server_certificate_verification(false);
  client.set_read_timeout(5);
  const httplib::Headers auth = {{"Authorization", "Bearer token-b"}};
  httplib::Result r = client.Get("/api/v1/builds", auth);
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(absl::StrContains(r->body, "bbbb2222")) << r->body;
  // An event stream over TLS: the first event, then one for a change.
  std::string events;
  httplib::SSLClient streams("127.0.0.1", port_);
  streams.enable_server_certificate_verification(false);
  streams.set_read_timeout(5);
  std::thread changer([this] {
    absl::SleepFor(absl::Milliseconds(300));
    source_.Change();
  });
  r = streams.Get("/api/v1/events", auth, [&](const char* data, size_t n) {
    events.append(data, n);
    return !absl::StrContains(events, "data: 2\n");
  });
  changer.join();
  EXPECT_TRUE(absl::StrContains(events, "event: change\ndata: 1\n")) << events;
  EXPECT_TRUE(absl::StrContains(events, "event: change\ndata: 2\n")) << events;
  // Plain HTTP on the HTTPS port is no request.
  httplib::Client plain("127.0.0.1", port_);
  plain.set_read_timeout(2);
  EXPECT_FALSE(plain.Get("/api/v1/session"));
}

#endif  // CPPHTTPLIB_OPENSSL_SUPPORT

}  // namespace
}  // namespace stagefarm::webui
