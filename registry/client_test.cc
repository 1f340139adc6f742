// The registry client against a real HTTP registry on 127.0.0.1 that
// answers oddly: every odd answer is a status naming the field, never an
// exception, and nothing is tagged.
#include "registry/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "blobstore/memory_blob_store.h"
#include "common/json.h"
#include "image/oci.h"
#include "tests/status_code.h"

namespace stagefarm::registry {
namespace {

using testing::CodeOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kNs[] = "images";

// One answer of the fake registry.
struct Answer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// A registry API v2 on 127.0.0.1 with a port of its own: answers what the
// test put under each path; blobs by digest; "/token" answers token_body;
// repositories under "auth/" demand a bearer token from it.
class FakeRegistry {
 public:
  FakeRegistry() {
    server_.Get(".*", [this](const httplib::Request& req,
                             httplib::Response& res) { Serve(req, res); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    loop_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeRegistry() {
    server_.stop();
    loop_.join();
  }

  std::string host() const { return absl::StrCat("127.0.0.1:", port_); }
  int port() const { return port_; }

  void Set(const std::string& path, Answer a) {
    absl::MutexLock lock(&mu_);
    answers_[path] = std::move(a);
  }
  // Stores `bytes` as a blob; returns its descriptor JSON.
  nlohmann::json PutBlob(const std::string& bytes,
                         const std::string& media_type) {
    Digest d = Digest::Of(bytes);
    absl::MutexLock lock(&mu_);
    blobs_[image::OciDigest(d)] = bytes;
    return image::DescriptorJson(image::Descriptor{media_type, d});
  }
  void SetToken(std::string body) {
    absl::MutexLock lock(&mu_);
    token_body_ = std::move(body);
  }
  int blob_requests() const { return blob_requests_; }

 private:
  void Serve(const httplib::Request& req, httplib::Response& res) {
    absl::MutexLock lock(&mu_);
    if (req.path == "/token") {
      res.set_content(token_body_, "application/json");
      return;
    }
    if (req.path.rfind("/v2/auth/", 0) == 0 &&
        !req.has_header("Authorization")) {
      res.status = 401;
      res.set_header("WWW-Authenticate",
                     absl::StrCat("Bearer realm=\"http://127.0.0.1:", port_,
                                  "/token\",service=\"fake\""));
      return;
    }
    if (size_t at = req.path.find("/blobs/"); at != std::string::npos) {
      ++blob_requests_;
      auto it = blobs_.find(req.path.substr(at + 7));
      if (it != blobs_.end()) {
        res.set_content(it->second, "application/octet-stream");
        return;
      }
    }
    auto it = answers_.find(req.path);
    if (it == answers_.end()) {
      if (req.path == "/v2/") {
        res.set_content("{}", "application/json");
        return;
      }
      res.status = 404;
      res.set_content(R"({"errors":[{"code":"NAME_UNKNOWN","message":"x"}]})",
                      "application/json");
      return;
    }
    res.status = it->second.status;
    res.set_content(it->second.body, it->second.content_type);
  }

  httplib::Server server_;
  int port_ = -1;
  std::thread loop_;
  absl::Mutex mu_;
  std::map<std::string, Answer> answers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
  std::string token_body_ ABSL_GUARDED_BY(mu_) = R"({"token":"t"})";
  std::atomic<int> blob_requests_{0};
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(registry_.port(), 0);
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        absl::StrCat(base != nullptr ? base : "/tmp", "/client_test.XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ =
        std::make_unique<image::ImageStore>(&blobs_, kNs, dir_ + "/index.json");
    RegistryOptions options;
    options.insecure = {registry_.host()};
    client_ = std::make_unique<RegistryClient>(options);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string Ref(const std::string& repo) {
    return absl::StrCat(registry_.host(), "/", repo, ":1");
  }
  absl::StatusOr<image::ResolvedImage> Pull(const std::string& repo) {
    return client_->Pull(store_.get(), Ref(repo), {});
  }
  // Serves `manifest` (JSON text) as repo:1.
  void ServeManifest(const std::string& repo, const std::string& manifest) {
    registry_.Set(absl::StrCat("/v2/", repo, "/manifests/1"),
                  Answer{200, image::kMediaTypeManifest, manifest});
  }
  // A well-formed manifest of `layers` layers whose blobs are served.
  nlohmann::json GoodManifest(int layers) {
    nlohmann::json config = image::EmptyImageConfig();
    nlohmann::json descriptors = nlohmann::json::array();
    for (int i = 0; i < layers; ++i) {
      std::string bytes = absl::StrCat("layer ", i);
      descriptors.push_back(
          registry_.PutBlob(bytes, "application/vnd.oci.image.layer.v1.tar"));
      config["rootfs"]["diff_ids"].push_back(
          image::OciDigest(Digest::Of(bytes)));
    }
    return nlohmann::json{
        {"schemaVersion", 2},
        {"mediaType", image::kMediaTypeManifest},
        {"config",
         registry_.PutBlob(json::Dump(config), image::kMediaTypeConfig)},
        {"layers", std::move(descriptors)}};
  }
  // Nothing was tagged.
  void ExpectNoImages() {
    auto list = store_->List();
    ASSERT_TRUE(list.ok()) << list.status();
    EXPECT_TRUE(list->empty());
  }
  // A pull of `repo` fails with `code` and a message holding `field_text`.
  void ExpectRefused(const std::string& repo, absl::StatusCode code,
                     const std::string& field_text) {
    auto image = Pull(repo);
    EXPECT_EQ(CodeOf(image), code) << repo << ": " << image.status();
    EXPECT_THAT(std::string(image.status().message()), HasSubstr(field_text))
        << repo;
    ExpectNoImages();
  }

  FakeRegistry registry_;
  MemoryBlobStore blobs_;
  std::string dir_;
  std::unique_ptr<image::ImageStore> store_;
  std::unique_ptr<RegistryClient> client_;
};

TEST_F(ClientTest, AWellFormedImageIsPulledAndTagged) {
  ServeManifest("good", json::Dump(GoodManifest(2)));
  auto image = Pull("good");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->image.layers.size(), 2u);
  EXPECT_EQ(image->name, Ref("good"));
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, Ref("good"));
}

TEST_F(ClientTest, AnErrorBodyOfOddTypesKeepsTheHttpStatus) {
  registry_.Set("/v2/errbody/manifests/1",
                Answer{404, "application/json",
                       R"({"errors":[{"code":404,"message":null}]})"});
  ExpectRefused("errbody", absl::StatusCode::kNotFound,
                "field \"code\" is a number, not a string");
  registry_.Set("/v2/errlist/manifests/1",
                Answer{403, "application/json", R"({"errors":[7]})"});
  ExpectRefused("errlist", absl::StatusCode::kPermissionDenied,
                "errors[0] is a number, not an object");
  registry_.Set("/v2/errhtml/manifests/1",
                Answer{503, "text/html", "<html>down</html>"});
  ExpectRefused("errhtml", absl::StatusCode::kUnavailable, "HTTP 503");
}

TEST_F(ClientTest, ATokenThatIsNoStringIsAnError) {
  ServeManifest("auth/app", json::Dump(GoodManifest(1)));
  registry_.SetToken(R"({"token":null})");
  ExpectRefused("auth/app", absl::StatusCode::kUnauthenticated,
                "no \"token\" or \"access_token\"");
  registry_.SetToken(R"({"token":5})");
  ExpectRefused("auth/app", absl::StatusCode::kInvalidArgument,
                "field \"token\" is a number, not a string");
  registry_.SetToken(R"({"access_token":["t"]})");
  ExpectRefused("auth/app", absl::StatusCode::kInvalidArgument,
                "field \"access_token\" is a array, not a string");
  registry_.SetToken("[]");
  ExpectRefused("auth/app", absl::StatusCode::kInvalidArgument,
                "token answer: a array, not an object");
  // The same registry with a good token: the fake really does auth.
  registry_.SetToken(R"({"access_token":"t"})");
  EXPECT_TRUE(Pull("auth/app").ok());
}

TEST_F(ClientTest, ManifestFieldsOfTheWrongTypeAreNamed) {
  nlohmann::json good = GoodManifest(1);
  struct Case {
    std::string repo;
    std::string field;  // a JSON pointer into the manifest
    nlohmann::json value;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"schema-string", "/schemaVersion", "2",
       "manifest: field \"schemaVersion\" is a string, not a integer"},
      {"schema-three", "/schemaVersion", 3, "schemaVersion 3"},
      {"media-number", "/mediaType", 5,
       "manifest: field \"mediaType\" is a number, not a string"},
      {"config-string", "/config", "x",
       "manifest: field \"config\" is a string, not a object"},
      {"layers-object", "/layers", nlohmann::json::object(),
       "field \"layers\" is a object, not a array"},
      {"layer-string", "/layers/0", "sha256:abc",
       "manifest.layers[0] is a string, not an object"},
      {"digest-number", "/layers/0/digest", 5,
       "manifest.layers[0]: field \"digest\" is a number, not a string"},
      {"size-negative", "/layers/0/size", -1,
       "manifest.layers[0]: field \"size\" is negative"},
      {"size-string", "/layers/0/size", "10",
       "manifest.layers[0]: field \"size\" is a string, not a integer"},
      {"size-float", "/config/size", 1.5,
       "manifest.config: field \"size\" is a number, not a integer"},
      {"layer-media-number", "/layers/0/mediaType", true,
       "manifest.layers[0]: field \"mediaType\" is a boolean, not a string"},
  };
  for (const Case& c : cases) {
    nlohmann::json m = good;
    m[nlohmann::json::json_pointer(c.field)] = c.value;
    ServeManifest(c.repo, json::Dump(m));
    auto image = Pull(c.repo);
    EXPECT_EQ(CodeOf(image), absl::StatusCode::kInvalidArgument)
        << c.repo << ": " << image.status();
    std::string msg(image.status().message());
    EXPECT_THAT(msg,
                StartsWith(absl::StrCat("registry ", registry_.host(), ": ")))
        << c.repo;
    EXPECT_THAT(msg, HasSubstr(c.message)) << c.repo;
  }
  ExpectNoImages();
  // Not JSON at all, and JSON that is no object.
  ServeManifest("not-json", "{\"schemaVersion\":");
  ExpectRefused("not-json", absl::StatusCode::kInvalidArgument,
                "manifest: not JSON");
  ServeManifest("number", "42");
  ExpectRefused("number", absl::StatusCode::kInvalidArgument,
                "manifest: a number, not an object");
  ServeManifest("schema-one", R"({"schemaVersion":1,"fsLayers":[]})");
  ExpectRefused("schema-one", absl::StatusCode::kUnimplemented, "schema 1");
}

TEST_F(ClientTest, IndexFieldsOfTheWrongTypeAreNamed) {
  nlohmann::json image = GoodManifest(1);
  std::string image_text = json::Dump(image);
  nlohmann::json entry = image::DescriptorJson(
      image::Descriptor{image::kMediaTypeManifest, Digest::Of(image_text)});
  entry["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", image::kMediaTypeIndex},
                          {"manifests", {entry}}};
  auto serve_index = [&](const std::string& repo, const nlohmann::json& doc) {
    registry_.Set(absl::StrCat("/v2/", repo, "/manifests/1"),
                  Answer{200, image::kMediaTypeIndex, json::Dump(doc)});
  };
  nlohmann::json bad = index;
  bad["manifests"][0]["platform"]["os"] = 7;
  serve_index("os-number", bad);
  ExpectRefused("os-number", absl::StatusCode::kInvalidArgument,
                "index.manifests[0].platform: field \"os\" is a number");
  bad = index;
  bad["manifests"][0] = "sha256:abc";
  serve_index("entry-string", bad);
  ExpectRefused("entry-string", absl::StatusCode::kInvalidArgument,
                "index.manifests[0] is a string, not an object");
  bad = index;
  bad["manifests"][0]["platform"] = "linux/amd64";
  serve_index("platform-string", bad);
  ExpectRefused("platform-string", absl::StatusCode::kInvalidArgument,
                "field \"platform\" is a string, not a object");
  // An index's mediaType with no manifests array.
  bad = index;
  bad.erase("manifests");
  serve_index("no-manifests", bad);
  ExpectRefused("no-manifests", absl::StatusCode::kInvalidArgument,
                "no manifests array");
  bad = index;
  bad["manifests"] = "all";
  serve_index("manifests-string", bad);
  ExpectRefused("manifests-string", absl::StatusCode::kInvalidArgument,
                "field \"manifests\" is a string, not a array");
}

TEST_F(ClientTest, AnOddConfigBlobIsNamed) {
  nlohmann::json m = GoodManifest(1);
  nlohmann::json config = image::EmptyImageConfig();
  config["rootfs"] = "layers";
  m["config"] = registry_.PutBlob(json::Dump(config), image::kMediaTypeConfig);
  ServeManifest("config-rootfs", json::Dump(m));
  ExpectRefused("config-rootfs", absl::StatusCode::kInvalidArgument,
                "image config: field \"rootfs\" is a string, not a object");
}

TEST_F(ClientTest, MoreThan127LayersIsRefusedBeforeAnyBlob) {
  ServeManifest("deep", json::Dump(GoodManifest(130)));
  auto image = Pull("deep");
  EXPECT_EQ(CodeOf(image), absl::StatusCode::kResourceExhausted)
      << image.status();
  EXPECT_THAT(std::string(image.status().message()),
              HasSubstr(absl::StrCat("max depth exceeded: ", Ref("deep"),
                                     " has 130 layers")));
  EXPECT_EQ(registry_.blob_requests(), 0);
  ExpectNoImages();

  // The bound itself is allowed.
  ServeManifest("deepest", json::Dump(GoodManifest(image::kMaxImageLayers)));
  image = Pull("deepest");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->image.layers.size(),
            static_cast<size_t>(image::kMaxImageLayers));
}

}  // namespace
}  // namespace stagefarm::registry
