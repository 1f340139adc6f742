// The HTTP client and downloads against a one-connection server on
// 127.0.0.1 that answers with a fixed response.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "http/client.h"
#include "http/fetch.h"

namespace stagefarm::http {
namespace {

// Serves `response` to the first connection, then closes.
class OneShotServer {
 public:
  explicit OneShotServer(std::string response) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, response] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      request_ = request;
      size_t off = 0;
      while (off < response.size()) {
        ssize_t n = write(c, response.data() + off, response.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      close(c);
    });
  }
  ~OneShotServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string request_;
};

std::string Response(int status, const std::string& body,
                     const std::string& extra = "") {
  std::ostringstream s;
  s << "HTTP/1.1 " << status << " X\r\nContent-Length: " << body.size()
    << "\r\nConnection: close\r\n"
    << extra << "\r\n"
    << body;
  return s.str();
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

TEST(HttpTest, UrlEncode) {
  EXPECT_EQ(UrlEncode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush");
  EXPECT_EQ(UrlEncode("A-z_0.~"), "A-z_0.~");
}

TEST(HttpTest, PerformReturnsStatusHeadersAndBody) {
  OneShotServer server(Response(201, "made", "Docker-Content-Digest: d\r\n"));
  HttpRequest r;
  r.method = "PUT";
  r.url = server.Url("/v2/x");
  r.body = "payload";
  absl::StatusOr<HttpResponse> got = Perform(r);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status, 201);
  EXPECT_EQ(got->Header("docker-content-digest"), "d");
  EXPECT_EQ(got->body, "made");
  EXPECT_NE(server.request().find("PUT /v2/x"), std::string::npos);
}

TEST(HttpTest, PerformRefusesBodyOverMax) {
  OneShotServer server(Response(200, std::string(100, 'x')));
  HttpRequest r;
  r.url = server.Url("/big");
  r.max_body = 10;
  absl::StatusOr<HttpResponse> got = Perform(r);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(HttpTest, PerformNamesUrlWhenNothingListens) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string url =
      "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/";
  close(fd);  // bound, never listened: connection refused
  HttpRequest r;
  r.url = url;
  absl::StatusOr<HttpResponse> got = Perform(r);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(got.status().message().find(url), absl::string_view::npos);
}

TEST(FetchTest, WritesBodyWithDigestAndMtime) {
  OneShotServer server(Response(
      200, "hello\n", "Last-Modified: Tue, 01 Jan 2019 00:00:00 GMT\r\n"));
  std::string path = TempPath("fetched");
  absl::StatusOr<Fetched> f = Fetch(server.Url("/dir/file.txt?x=1"), path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->digest,
            "sha256:"
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  EXPECT_EQ(f->size, 6);
  EXPECT_EQ(f->mtime, 1546300800);
  EXPECT_EQ(f->filename, "file.txt");
  std::ifstream in(path);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "hello\n");
}

TEST(FetchTest, OverCapIsResourceExhaustedAndLeavesNoFile) {
  OneShotServer server(Response(200, std::string(1000, 'x')));
  std::string path = TempPath("capped");
  FetchOptions options;
  options.max_bytes = 100;
  absl::StatusOr<Fetched> f = Fetch(server.Url("/f"), path, options);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(f.status().message().find("exceeds 100 bytes"),
            absl::string_view::npos);
  EXPECT_FALSE(Exists(path));
}

TEST(FetchTest, HttpErrorIsNotFoundAndLeavesNoFile) {
  OneShotServer server(Response(404, "no"));
  std::string path = TempPath("missing");
  absl::StatusOr<Fetched> f = Fetch(server.Url("/f"), path);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("HTTP status 404"),
            absl::string_view::npos);
  EXPECT_FALSE(Exists(path));
}

TEST(FetchTest, FilenameOfUrl) {
  EXPECT_EQ(FilenameOfUrl("https://h/a/b.tar.gz?q#f"), "b.tar.gz");
  EXPECT_EQ(FilenameOfUrl("https://h"), "__unnamed__");
  EXPECT_EQ(FilenameOfUrl("https://h/a/"), "__unnamed__");
}

}  // namespace
}  // namespace stagefarm::http
