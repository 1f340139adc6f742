#include "registry/client.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "image/oci.h"
#include "registry/auth.h"
#include "registry/responses.h"

namespace stagefarm::registry {
namespace {

using image::CheckLayerCount;

constexpr char kAcceptManifests[] =
    "Accept: application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";
constexpr int64_t kMaxManifestBytes = int64_t{4} << 20;
constexpr int64_t kMaxConfigBytes = int64_t{32} << 20;

std::vector<std::string> SplitList(const char* env) {
  std::vector<std::string> out;
  if (env == nullptr) return out;
  for (absl::string_view s : absl::StrSplit(env, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(s));
  }
  return out;
}

bool FileExists(const std::string& path) {
  return access(path.c_str(), R_OK) == 0;
}

// An HTTP error from the registry as a status naming what was asked. The
// status is the HTTP status's; an odd error body only adds its own error.
absl::Status HttpError(const std::string& what, const http::HttpResponse& r) {
  std::string detail = absl::StrCat("HTTP ", r.status);
  absl::StatusOr<std::string> body = ParseErrorBody(r.body);
  if (!body.ok()) {
    absl::StrAppend(&detail, " (", body.status().message(), ")");
  } else if (!body->empty()) {
    absl::StrAppend(&detail, " ", *body);
  }
  std::string msg = absl::StrCat(what, ": ", detail);
  switch (r.status) {
    case 401:
      return absl::UnauthenticatedError(msg);
    case 403:
      return absl::PermissionDeniedError(msg);
    case 404:
      return absl::NotFoundError(msg);
    case 429:
      return absl::ResourceExhaustedError(msg);
    default:
      return r.status >= 500 ? absl::UnavailableError(msg)
                             : absl::FailedPreconditionError(msg);
  }
}

// A Location header made absolute against the endpoint.
std::string Absolute(const std::string& base, const std::string& location) {
  if (absl::StartsWith(location, "http://") ||
      absl::StartsWith(location, "https://")) {
    return location;
  }
  return absl::StrCat(base, absl::StartsWith(location, "/") ? "" : "/",
                      location);
}

std::string WithQuery(const std::string& url, absl::string_view query) {
  return absl::StrCat(url, absl::StrContains(url, '?') ? "&" : "?", query);
}

// "https://host:5000/path" -> "host:5000".
std::string HostOfUrl(absl::string_view url) {
  absl::ConsumePrefix(&url, "https://") || absl::ConsumePrefix(&url, "http://");
  return std::string(url.substr(0, url.find('/')));
}

std::string ShortDigest(const Digest& d) {
  return absl::StrCat("sha256:", d.hash().substr(0, 12));
}

// Runs fn(i) for i in [0, n) on up to `parallel` threads; the first error.
absl::Status ForEachParallel(size_t n, int parallel,
                             const std::function<absl::Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status first;
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      absl::Status s = fn(i);
      absl::MutexLock lock(&mu);
      if (!s.ok() && first.ok()) first = s;
      if (!first.ok()) return;
    }
  };
  std::vector<std::thread> threads;
  size_t count =
      std::min<size_t>(n, static_cast<size_t>(std::max(1, parallel)));
  for (size_t t = 1; t < count; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return first;
}

}  // namespace

RegistryOptions RegistryOptions::FromEnvironment(const std::string& home) {
  RegistryOptions o;
  o.insecure = SplitList(getenv("STAGEFARM_INSECURE_REGISTRIES"));
  o.mirrors = SplitList(getenv("STAGEFARM_REGISTRY_MIRRORS"));
  if (!home.empty()) o.certs_dirs.push_back(home + "/certs.d");
  o.certs_dirs.push_back("/etc/docker/certs.d");
  o.docker_config = DefaultDockerConfig();
  if (const char* c = getenv("STAGEFARM_PUSH_CHUNK_BYTES"); c != nullptr) {
    int64_t v = 0;
    if (absl::SimpleAtoi(c, &v) && v > 0) o.chunk_bytes = v;
  }
  return o;
}

RegistryClient::RegistryClient(RegistryOptions options)
    : options_(std::move(options)) {}

bool RegistryClient::Insecure(const std::string& host) const {
  for (const std::string& h : options_.insecure) {
    if (h == host) return true;
  }
  return IsLoopbackHost(host);
}

http::TlsFiles RegistryClient::TlsFor(const std::string& host) const {
  http::TlsFiles t;
  for (const std::string& dir : options_.certs_dirs) {
    std::string d = absl::StrCat(dir, "/", host);
    if (t.ca_file.empty() && FileExists(d + "/ca.crt"))
      t.ca_file = d + "/ca.crt";
    if (t.cert_file.empty() && FileExists(d + "/client.cert") &&
        FileExists(d + "/client.key")) {
      t.cert_file = d + "/client.cert";
      t.key_file = d + "/client.key";
    }
  }
  return t;
}

absl::StatusOr<RegistryClient::Endpoint> RegistryClient::Connect(
    const std::string& host) {
  {
    absl::MutexLock lock(&mu_);
    auto it = endpoints_.find(host);
    if (it != endpoints_.end()) return it->second;
  }
  Endpoint ep;
  ep.host = host;
  std::vector<std::string> bases;
  std::string name = host;
  if (absl::StartsWith(host, "http://") || absl::StartsWith(host, "https://")) {
    bases.push_back(std::string(absl::StripSuffix(host, "/")));
    name = HostOfUrl(bases[0]);
  } else {
    std::string h = host == kDockerHub ? "registry-1.docker.io" : host;
    bases.push_back("https://" + h);
    if (Insecure(host)) bases.push_back("http://" + h);
  }
  ep.tls = TlsFor(name);
  ep.tls.skip_verify = Insecure(name) && ep.tls.ca_file.empty();
  absl::Status last;
  for (const std::string& base : bases) {
    http::HttpRequest ping;
    ping.url = base + "/v2/";
    ping.tls = ep.tls;
    ping.connect_timeout_seconds = 10;
    absl::StatusOr<http::HttpResponse> r = http::Perform(ping);
    if (!r.ok()) {
      last = r.status();
      continue;
    }
    if (r->status != 200 && r->status != 401) {
      last = absl::FailedPreconditionError(absl::StrCat(
          base, "/v2/ answered HTTP ", r->status, ": not a registry"));
      continue;
    }
    ep.base = base;
    absl::MutexLock lock(&mu_);
    endpoints_[host] = ep;
    return ep;
  }
  return absl::UnavailableError(
      absl::StrCat("cannot reach the registry ", host, ": ", last.message(),
                   Insecure(host) ? ""
                                  : " (for a plain-HTTP registry, name it "
                                    "with --insecure-registry)"));
}

absl::StatusOr<std::string> RegistryClient::Authorize(
    const Endpoint& ep, const std::string& header, const std::string& scope) {
  std::string registry =
      ep.host == "registry-1.docker.io" ? kDockerHub : ep.host;
  ASSIGN_OR_RETURN(std::optional<Credentials> creds,
                   LookupCredentials(options_.docker_config, registry));
  if (header.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        ep.base, " answered 401 without a WWW-Authenticate challenge"));
  }
  ASSIGN_OR_RETURN(Challenge ch, ParseChallenge(header));
  std::string basic;
  if (creds) {
    basic = absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(
                                       creds->username, ":", creds->password)));
  }
  if (ch.scheme == "basic") {
    if (!creds) {
      return absl::UnauthenticatedError(
          absl::StrCat("the registry ", registry,
                       " asks for a user name and password; "
                       "none is saved for it in ",
                       options_.docker_config.empty() ? "a Docker config file"
                                                      : options_.docker_config,
                       " (docker login ", registry, ")"));
    }
    return basic;
  }
  if (ch.scheme != "bearer") {
    return absl::UnimplementedError(absl::StrCat(
        "the registry ", registry, " asks for \"", ch.scheme,
        "\" authentication; only basic and bearer tokens are supported"));
  }
  const std::string& realm = ch.params["realm"];
  if (!absl::StartsWith(realm, "https://") &&
      !absl::StartsWith(realm, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the registry ", registry, " names a token realm that is not a URL: \"",
        realm, "\""));
  }
  http::HttpRequest t;
  t.tls = TlsFor(HostOfUrl(realm));
  std::string query;
  if (ch.params.count("service")) {
    absl::StrAppend(&query, "service=", http::UrlEncode(ch.params["service"]));
  }
  for (absl::string_view s : absl::StrSplit(scope, ' ', absl::SkipEmpty())) {
    absl::StrAppend(&query, query.empty() ? "" : "&",
                    "scope=", http::UrlEncode(s));
  }
  if (creds && creds->username == "<token>") {
    // An identity token: the OAuth2 refresh-token grant.
    t.method = "POST";
    t.url = realm;
    t.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    t.body =
        absl::StrCat(query, "&grant_type=refresh_token&client_id=stagefarm",
                     "&refresh_token=", http::UrlEncode(creds->password));
  } else {
    t.url = query.empty() ? realm : WithQuery(realm, query);
    if (creds) t.headers.push_back("Authorization: " + basic);
  }
  ASSIGN_OR_RETURN(http::HttpResponse r, http::Perform(t));
  if (r.status != 200) {
    return HttpError(absl::StrCat("token for ", scope, " from ", realm), r);
  }
  absl::StatusOr<std::string> token = ParseTokenAnswer(r.body);
  if (!token.ok()) {
    return absl::Status(token.status().code(),
                        absl::StrCat("the token service ", realm, ": ",
                                     token.status().message()));
  }
  return "Bearer " + *token;
}

absl::StatusOr<http::HttpResponse> RegistryClient::Send(
    const Endpoint& ep, http::HttpRequest request, const std::string& scope) {
  request.tls = ep.tls;
  std::string key = absl::StrCat(ep.host, "|", scope);
  std::string auth;
  {
    absl::MutexLock lock(&mu_);
    auth = authorization_[key];
  }
  std::vector<std::string> base_headers = request.headers;
  if (!auth.empty()) request.headers.push_back("Authorization: " + auth);
  ASSIGN_OR_RETURN(http::HttpResponse r, http::Perform(request));
  if (r.status != 401 || request.read_body) return r;
  ASSIGN_OR_RETURN(auth, Authorize(ep, r.Header("www-authenticate"), scope));
  {
    absl::MutexLock lock(&mu_);
    authorization_[key] = auth;
  }
  request.headers = base_headers;
  request.headers.push_back("Authorization: " + auth);
  ASSIGN_OR_RETURN(r, http::Perform(request));
  if (r.status == 401) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the registry ", ep.host, " rejected the credentials ",
        absl::StartsWith(auth, "Basic") ? "saved in " : "issued from ",
        absl::StartsWith(auth, "Basic") ? options_.docker_config
                                        : "its token service",
        " for ", scope));
  }
  return r;
}

absl::Status RegistryClient::FetchBlob(const Endpoint& ep, const Reference& ref,
                                       const std::string& scope,
                                       const Digest& digest,
                                       image::ImageStore* store) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer,
                   store->blobs()->OpenWrite(store->ns(), digest, ""));
  if (writer->already_complete()) return absl::OkStatus();
  std::string what = absl::StrCat("blob ", image::OciDigest(digest), " of ",
                                  ref.registry, "/", ref.repository);
  int64_t offset = 0;
  http::HttpRequest req;
  req.url = absl::StrCat(ep.base, "/v2/", ref.repository, "/blobs/",
                         image::OciDigest(digest));
  req.sink = [&](absl::string_view chunk) -> absl::Status {
    if (offset + static_cast<int64_t>(chunk.size()) > digest.size()) {
      return absl::DataLossError(
          absl::StrCat(what, " is longer than its ", digest.size(), " bytes"));
    }
    RETURN_IF_ERROR(writer->Write(offset, chunk));
    offset += static_cast<int64_t>(chunk.size());
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(http::HttpResponse r, Send(ep, req, scope));
  if (r.status != 200) return HttpError(what, r);
  if (offset != digest.size()) {
    return absl::DataLossError(absl::StrCat(what, " ended after ", offset,
                                            " of ", digest.size(), " bytes"));
  }
  absl::Status s = writer->Finish();
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat(what, " does not match its digest: ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<image::ResolvedImage> RegistryClient::PullFrom(
    const Endpoint& ep, const Reference& ref, image::ImageStore* store,
    const ProgressFn& progress, const platform::Platform& want) {
  std::string scope = absl::StrCat("repository:", ref.repository, ":pull");
  std::string name = ref.String();
  auto get_manifest = [&](const std::string& which,
                          const std::string& want_digest)
      -> absl::StatusOr<std::pair<std::string, std::string>> {
    http::HttpRequest req;
    req.url =
        absl::StrCat(ep.base, "/v2/", ref.repository, "/manifests/", which);
    req.headers.push_back(kAcceptManifests);
    req.max_body = kMaxManifestBytes;
    ASSIGN_OR_RETURN(http::HttpResponse r, Send(ep, req, scope));
    if (r.status != 200) {
      return HttpError(absl::StrCat("manifest of ", name, " from ", ep.base),
                       r);
    }
    std::string got = image::OciDigest(Digest::Of(r.body));
    if (!want_digest.empty() && got != want_digest) {
      return absl::DataLossError(
          absl::StrCat("the manifest ", ep.base, " sent for ", name, " is ",
                       got, ", not the ", want_digest, " asked for"));
    }
    return std::make_pair(std::move(r.body), r.Header("content-type"));
  };
  // An error in what the registry sent, naming the registry and the image.
  auto sent = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("registry ", ep.host, ": ",
                                               s.message(), " (", name, ")"));
  };
  auto parse = [&](const std::pair<std::string, std::string>& got)
      -> absl::StatusOr<ManifestAnswer> {
    absl::StatusOr<ManifestAnswer> m =
        ParseManifestAnswer(got.first, got.second);
    if (!m.ok()) return sent(m.status());
    return m;
  };
  if (progress) progress(absl::StrCat("pulling ", name, " from ", ep.base));
  ASSIGN_OR_RETURN(auto manifest, get_manifest(ref.ManifestRef(), ref.digest));
  ASSIGN_OR_RETURN(ManifestAnswer answer, parse(manifest));
  if (answer.is_index) {
    std::string chosen;
    std::vector<std::string> offered;
    for (const image::IndexEntry& e : answer.platforms) {
      offered.push_back(e.platform.String());
      if (chosen.empty() && e.platform == want) {
        chosen = image::OciDigest(e.manifest.digest);
      }
    }
    if (chosen.empty()) {
      return absl::NotFoundError(absl::StrCat(
          name, " has no image for ", want.String(), " (it has: ",
          offered.empty() ? "none" : absl::StrJoin(offered, ", "), ")"));
    }
    ASSIGN_OR_RETURN(manifest, get_manifest(chosen, chosen));
    ASSIGN_OR_RETURN(answer, parse(manifest));
    if (answer.is_index) {
      return sent(absl::InvalidArgumentError(
          absl::StrCat("the image for ", want.String(), " is another index")));
    }
  }
  // Docker's bound, before any blob is fetched.
  RETURN_IF_ERROR(CheckLayerCount(answer.layers.size(), name));
  const image::Descriptor& config = answer.config;
  if (config.digest.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the config of ", name, " is ", config.digest.size(),
                     " bytes, over the ", kMaxConfigBytes, " allowed"));
  }
  RETURN_IF_ERROR(FetchBlob(ep, ref, scope, config.digest, store));
  ASSIGN_OR_RETURN(std::string config_bytes,
                   store->blobs()->Get(store->ns(), config.digest));
  absl::StatusOr<image::Image> image =
      image::ParseImage(manifest.first, config_bytes);
  if (!image.ok()) return sent(image.status());
  std::vector<Digest> layers;
  for (const image::Descriptor& l : image->layers) layers.push_back(l.digest);
  ASSIGN_OR_RETURN(std::vector<Digest> missing,
                   store->blobs()->FindMissing(store->ns(), layers));
  int64_t bytes = 0;
  for (const Digest& d : missing) bytes += d.size();
  if (progress) {
    progress(absl::StrCat(name, ": ", missing.size(), " of ", layers.size(),
                          " layers to fetch (", bytes, " bytes)"));
  }
  RETURN_IF_ERROR(
      ForEachParallel(missing.size(), options_.parallel, [&](size_t i) {
        RETURN_IF_ERROR(FetchBlob(ep, ref, scope, missing[i], store));
        if (progress) {
          progress(absl::StrCat("layer ", ShortDigest(missing[i]), " (",
                                missing[i].size(), " bytes) done"));
        }
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(store->blobs()->Put(store->ns(), manifest.first));
  return store->Load(Digest::Of(manifest.first));
}

absl::StatusOr<image::ResolvedImage> RegistryClient::Pull(
    image::ImageStore* store, const std::string& text,
    const ProgressFn& progress, const platform::Platform& want) {
  ASSIGN_OR_RETURN(Reference ref, ParseReference(text));
  ASSIGN_OR_RETURN(std::string local, image::NormalizeReference(text));
  std::vector<std::string> hosts;
  if (ref.registry == kDockerHub) hosts = options_.mirrors;
  hosts.push_back(ref.registry);
  absl::Status last;
  for (const std::string& host : hosts) {
    absl::StatusOr<Endpoint> ep = Connect(host);
    if (!ep.ok()) {
      last = ep.status();
      continue;
    }
    absl::StatusOr<image::ResolvedImage> image =
        PullFrom(*ep, ref, store, progress, want);
    if (image.ok()) {
      RETURN_IF_ERROR(store->Tag(local, image->manifest.digest));
      image->name = local;
      return image;
    }
    last = image.status();
    // Another mirror may have what this one lacks; other errors are final.
    if (!absl::IsNotFound(last) && !absl::IsUnavailable(last)) break;
  }
  return last;
}

std::map<std::string, std::string> RegistryClient::MountSources(
    image::ImageStore* store, const Reference& target) {
  std::map<std::string, std::string> out;  // blob hash -> repository
  if (target.registry == kDockerHub) return out;
  absl::StatusOr<std::vector<image::ImageRecord>> records = store->List();
  if (!records.ok()) return out;
  for (const image::ImageRecord& rec : *records) {
    if (!absl::StartsWith(rec.name, target.registry + "/")) continue;
    absl::StatusOr<Reference> r = ParseReference(rec.name);
    if (!r.ok() || r->repository == target.repository) continue;
    auto platforms = store->Platforms(rec.manifest);
    if (!platforms.ok()) continue;
    for (const image::IndexEntry& e : *platforms) {
      absl::StatusOr<image::ResolvedImage> image =
          store->Load(e.manifest.digest);
      if (!image.ok()) continue;
      for (const image::Descriptor& l : image->image.layers) {
        out.emplace(l.digest.hash(), r->repository);
      }
    }
  }
  return out;
}

absl::Status RegistryClient::PushBlob(const Endpoint& ep, const Reference& ref,
                                      const std::string& scope,
                                      const Digest& digest,
                                      const std::string& mount_from,
                                      image::ImageStore* store,
                                      PushResult* result) {
  std::string what = absl::StrCat("upload of ", image::OciDigest(digest),
                                  " to ", ref.registry, "/", ref.repository);
  std::string blobs = absl::StrCat(ep.base, "/v2/", ref.repository, "/blobs/");
  http::HttpRequest head;
  head.method = "HEAD";
  head.url = blobs + image::OciDigest(digest);
  ASSIGN_OR_RETURN(http::HttpResponse h, Send(ep, head, scope));
  if (h.status == 200) {
    ++result->blobs_present;
    return absl::OkStatus();
  }
  if (h.status != 404) return HttpError(what, h);
  http::HttpRequest start;
  start.method = "POST";
  start.url = blobs + "uploads/";
  if (!mount_from.empty()) {
    start.url +=
        absl::StrCat("?mount=", http::UrlEncode(image::OciDigest(digest)),
                     "&from=", http::UrlEncode(mount_from));
  }
  ASSIGN_OR_RETURN(http::HttpResponse s, Send(ep, start, scope));
  if (s.status == 201) {
    ++result->blobs_mounted;
    return absl::OkStatus();
  }
  if (s.status != 202 || s.Header("location").empty()) {
    return HttpError(what, s);
  }
  std::string location = Absolute(ep.base, s.Header("location"));
  int64_t size = digest.size();
  auto body_from = [&](int64_t offset, int64_t length,
                       http::HttpRequest* req) -> absl::Status {
    ASSIGN_OR_RETURN(
        std::unique_ptr<BlobReader> reader,
        store->blobs()->OpenRead(store->ns(), digest, offset, length));
    std::shared_ptr<BlobReader> shared = std::move(reader);
    req->body_size = length;
    req->read_body = [shared](char* out,
                              size_t room) -> absl::StatusOr<size_t> {
      std::string chunk;
      ASSIGN_OR_RETURN(size_t n, shared->Read(room, &chunk));
      memcpy(out, chunk.data(), n);
      return n;
    };
    req->headers.push_back("Content-Type: application/octet-stream");
    return absl::OkStatus();
  };
  http::HttpRequest finish;
  finish.method = "PUT";
  if (options_.chunk_bytes > 0 && size > options_.chunk_bytes) {
    for (int64_t off = 0; off < size; off += options_.chunk_bytes) {
      int64_t len = std::min(options_.chunk_bytes, size - off);
      http::HttpRequest patch;
      patch.method = "PATCH";
      patch.url = location;
      RETURN_IF_ERROR(body_from(off, len, &patch));
      patch.headers.push_back(
          absl::StrCat("Content-Range: ", off, "-", off + len - 1));
      ASSIGN_OR_RETURN(http::HttpResponse p, Send(ep, patch, scope));
      if (p.status != 202) return HttpError(what, p);
      if (!p.Header("location").empty()) {
        location = Absolute(ep.base, p.Header("location"));
      }
    }
    finish.headers.push_back("Content-Type: application/octet-stream");
  } else {
    RETURN_IF_ERROR(body_from(0, size, &finish));
  }
  finish.url = WithQuery(location,
                         "digest=" + http::UrlEncode(image::OciDigest(digest)));
  ASSIGN_OR_RETURN(http::HttpResponse f, Send(ep, finish, scope));
  if (f.status != 201) return HttpError(what, f);
  ++result->blobs_sent;
  result->bytes_sent += size;
  return absl::OkStatus();
}

absl::Status RegistryClient::PutManifest(const Endpoint& ep,
                                         const Reference& ref,
                                         const std::string& scope,
                                         const std::string& reference,
                                         const std::string& media_type,
                                         const std::string& bytes) {
  http::HttpRequest put;
  put.method = "PUT";
  put.url =
      absl::StrCat(ep.base, "/v2/", ref.repository, "/manifests/", reference);
  put.headers.push_back("Content-Type: " + media_type);
  put.body = bytes;
  ASSIGN_OR_RETURN(http::HttpResponse r, Send(ep, put, scope));
  if (r.status != 201) {
    return HttpError(absl::StrCat("manifest of ", ref.String()), r);
  }
  std::string want = image::OciDigest(Digest::Of(bytes));
  std::string echoed = r.Header("docker-content-digest");
  if (!echoed.empty() && echoed != want) {
    return absl::DataLossError(
        absl::StrCat(ref.registry, " stored the manifest of ", ref.String(),
                     " as ", echoed, ", not ", want));
  }
  return absl::OkStatus();
}

absl::StatusOr<PushResult> RegistryClient::Push(image::ImageStore* store,
                                                const Digest& manifest,
                                                const std::string& text,
                                                const ProgressFn& progress) {
  ASSIGN_OR_RETURN(Reference ref, ParseReference(text));
  // One image, or every platform's image of an index.
  ASSIGN_OR_RETURN(std::vector<image::IndexEntry> platforms,
                   store->Platforms(manifest));
  bool is_index =
      platforms.size() != 1 || platforms[0].manifest.digest != manifest;
  // Every manifest: each platform's image and any attestation manifest.
  std::vector<image::ResolvedImage> images;
  ASSIGN_OR_RETURN(std::vector<image::Descriptor> manifests,
                   store->Manifests(manifest));
  for (const image::Descriptor& m : manifests) {
    ASSIGN_OR_RETURN(image::ResolvedImage image, store->Load(m.digest));
    images.push_back(std::move(image));
  }
  if (!ref.digest.empty() && ref.digest != image::OciDigest(manifest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot push ", image::OciDigest(manifest), " as ", text,
                     ": the reference names another digest"));
  }
  ASSIGN_OR_RETURN(Endpoint ep, Connect(ref.registry));
  std::map<std::string, std::string> sources = MountSources(store, ref);
  std::set<std::string> scopes = {
      absl::StrCat("repository:", ref.repository, ":pull,push")};
  std::vector<std::pair<Digest, std::string>> blobs;  // digest, mount source
  std::set<Digest> seen;
  for (const image::ResolvedImage& image : images) {
    for (const image::Descriptor& l : image.image.layers) {
      if (!seen.insert(l.digest).second) continue;
      auto it = sources.find(l.digest.hash());
      std::string from = it == sources.end() ? "" : it->second;
      if (!from.empty())
        scopes.insert(absl::StrCat("repository:", from, ":pull"));
      blobs.emplace_back(l.digest, from);
    }
    if (seen.insert(image.config.digest).second) {
      blobs.emplace_back(image.config.digest, "");
    }
  }
  std::string scope = absl::StrJoin(scopes, " ");
  if (progress) {
    progress(absl::StrCat("pushing ", ref.String(), " to ", ep.base));
  }
  PushResult result;
  std::vector<PushResult> each(blobs.size());
  RETURN_IF_ERROR(
      ForEachParallel(blobs.size(), options_.parallel, [&](size_t i) {
        return PushBlob(ep, ref, scope, blobs[i].first, blobs[i].second, store,
                        &each[i]);
      }));
  for (const PushResult& r : each) {
    result.blobs_sent += r.blobs_sent;
    result.blobs_present += r.blobs_present;
    result.blobs_mounted += r.blobs_mounted;
    result.bytes_sent += r.bytes_sent;
  }
  if (is_index) {
    // Each platform's manifest by digest, then the index under the name.
    for (const image::ResolvedImage& image : images) {
      RETURN_IF_ERROR(
          PutManifest(ep, ref, scope, image::OciDigest(image.manifest.digest),
                      image.manifest.media_type, image.manifest_bytes));
    }
    ASSIGN_OR_RETURN(std::string index_bytes,
                     store->blobs()->Get(store->ns(), manifest));
    RETURN_IF_ERROR(PutManifest(ep, ref, scope, ref.ManifestRef(),
                                image::kMediaTypeIndex, index_bytes));
  } else {
    RETURN_IF_ERROR(PutManifest(ep, ref, scope, ref.ManifestRef(),
                                images[0].manifest.media_type,
                                images[0].manifest_bytes));
  }
  result.digest = image::OciDigest(manifest);
  if (progress) {
    progress(absl::StrCat(
        ref.String(), ": ", result.digest, " (",
        is_index ? absl::StrCat(images.size(), " platforms, ") : "",
        result.blobs_sent, " blobs sent, ", result.blobs_present,
        " already there, ", result.blobs_mounted, " mounted)"));
  }
  return result;
}

}  // namespace stagefarm::registry
