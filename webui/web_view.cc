#include "webui/web_view.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"
#include "buildview/build_view.h"
#include "common/json.h"
#include "registry/reference.h"
#include "webui/assets.h"

namespace stagefarm::webui {
namespace {

using nlohmann::json;
namespace reapi = build::bazel::remote::execution::v2;

constexpr char kCookie[] = "stagefarm_session";
// The cache page: hit rates over the last kCacheBuilds builds, the steps
// that ran from the last kCacheRecords.
constexpr size_t kCacheBuilds = 2000;
constexpr int kCacheRecords = 200;
constexpr int64_t kBlobViewBytes = 4 << 20;        // shown in the browser
constexpr int64_t kBlobDownloadBytes = 256 << 20;  // downloaded whole
// Why steps ran: the earlier builds looked through, and read.
constexpr size_t kEarlierBuildsSearched = 1000;
constexpr int kEarlierRecordsRead = 20;

std::string Dump(const json& j) { return stagefarm::json::Dump(j); }

void SendJson(HttpResponse* resp, int status, const json& j) {
  resp->Send(status, "application/json; charset=utf-8", Dump(j),
             {{"Cache-Control", "no-store"}});
}

void SendError(HttpResponse* resp, int status, absl::string_view message) {
  SendJson(resp, status, {{"error", std::string(message)}});
}

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

void SendStatus(HttpResponse* resp, const absl::Status& s) {
  SendError(resp, HttpStatusOf(s), s.message());
}

std::string RandomToken() {
  unsigned char bytes[24];
  RAND_bytes(bytes, sizeof(bytes));
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

json SummaryJson(const v1::BuildSummary& b) {
  return {{"id", b.build_id()},
          {"state", b.state()},
          {"dockerfile", b.dockerfile_name()},
          {"instance", b.instance_name()},
          {"tenant", b.tenant()},
          {"target", b.target()},
          {"platform", b.platform()},
          {"submitted", b.submitted()},
          {"finished", b.finished()},
          {"stages", b.stages()},
          {"stages_done", b.stages_done()},
          {"steps_run", b.steps_run()},
          {"steps_cached", b.steps_cached()},
          {"error", b.error()},
          {"waiting_for", b.waiting_for()},
          {"tags",
           json(std::vector<std::string>(b.tags().begin(), b.tags().end()))},
          {"manifest", b.has_manifest() && !b.manifest().hash().empty()
                           ? absl::StrCat("sha256:", b.manifest().hash())
                           : ""}};
}

// A digest named in a path (/HASH/SIZE); INVALID_ARGUMENT names the part.
absl::StatusOr<Digest> PathDigest(const std::string& hash,
                                  const std::string& size) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(size, &n) || n < 0) {
    return absl::InvalidArgumentError("size: not a number >= 0");
  }
  return Digest::Parse(hash, n, "the hash");
}

std::vector<v1::Event> EventsOf(const v1::BuildRecord& record) {
  return {record.events().begin(), record.events().end()};
}

json DigestJson(const reapi::Digest& d) {
  return json{{"hash", d.hash()}, {"size", d.size_bytes()}};
}

json ActionResultJson(const reapi::ActionResult& result) {
  json files = json::array();
  for (const auto& f : result.output_files()) {
    files.push_back({{"path", f.path()},
                     {"digest", DigestJson(f.digest())},
                     {"executable", f.is_executable()}});
  }
  json dirs = json::array();
  for (const auto& d : result.output_directories()) {
    dirs.push_back({{"path", d.path()}, {"tree", DigestJson(d.tree_digest())}});
  }
  return {{"exit_code", result.exit_code()},
          {"output_files", files},
          {"output_directories", dirs},
          {"stdout", DigestJson(result.stdout_digest())},
          {"stderr", DigestJson(result.stderr_digest())},
          {"worker", result.execution_metadata().worker()}};
}

// A descriptor (of a config, a layer, a manifest) as the pages read it:
// an object with a string digest, a number size, a string mediaType if
// any.
absl::Status CheckDescriptor(const json& d, const std::string& what) {
  if (!d.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is a ", stagefarm::json::TypeName(d), ", not an object"));
  }
  absl::StatusOr<std::string> digest =
      stagefarm::json::String(d, "digest", what);
  if (!digest.ok()) return digest.status();
  absl::StatusOr<int64_t> size = stagefarm::json::Int(d, "size", what);
  if (!size.ok()) return size.status();
  return stagefarm::json::OptionalString(d, "mediaType", what).status();
}

// Whether `doc` is an image manifest or index whose fields have the
// types the OCI spec gives them: "manifest", "index", or "json" with
// *note saying which field is not (the pages then show it as JSON).
std::string DocumentKind(const json& doc, std::string* note) {
  if (!doc.is_object()) return "json";
  const bool manifest = doc.contains("layers") && doc.contains("config");
  const bool index = !manifest && doc.contains("manifests");
  if (!manifest && !index) return "json";
  const std::string what = manifest ? "manifest" : "index";
  absl::Status s =
      stagefarm::json::OptionalString(doc, "mediaType", what).status();
  if (s.ok() && manifest) {
    s = CheckDescriptor(doc["config"], "manifest: config");
    absl::StatusOr<const json*> layers =
        stagefarm::json::OptionalArray(doc, "layers", what);
    if (s.ok() && !layers.ok()) s = layers.status();
    for (size_t i = 0; s.ok() && *layers != nullptr && i < (*layers)->size();
         ++i) {
      s = CheckDescriptor((**layers)[i],
                          absl::StrCat("manifest: layers[", i, "]"));
    }
  } else if (s.ok()) {
    absl::StatusOr<const json*> list =
        stagefarm::json::OptionalArray(doc, "manifests", what);
    if (!list.ok()) s = list.status();
    for (size_t i = 0; s.ok() && *list != nullptr && i < (*list)->size(); ++i) {
      const json& m = (**list)[i];
      const std::string name = absl::StrCat("index: manifests[", i, "]");
      s = CheckDescriptor(m, name);
      if (s.ok()) {
        s = stagefarm::json::OptionalObject(m, "platform", name).status();
      }
    }
  }
  if (s.ok()) return what;
  *note =
      absl::StrCat("shown as JSON, not as an image ", what, ": ", s.message());
  return "json";
}

// What a blob is, judged by its bytes: an image document, JSON, a REAPI
// Directory, Tree or ActionResult (messages that parse and serialize back
// to the same bytes), text, or binary.
json DescribeBlob(const std::string& data, bool truncated) {
  json out = {{"truncated", truncated}};
  auto valid_digest = [](const reapi::Digest& d) {
    return d.hash().size() == 64 && d.size_bytes() >= 0 &&
           std::all_of(d.hash().begin(), d.hash().end(), [](char c) {
             return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
  };
  if (!truncated && !data.empty() && (data[0] == '{' || data[0] == '[')) {
    absl::StatusOr<json> doc = stagefarm::json::Parse(data, "blob");
    if (doc.ok()) {
      std::string note;
      out["kind"] = DocumentKind(*doc, &note);
      if (!note.empty()) out["note"] = note;
      out["json"] = *std::move(doc);
      return out;
    }
  }
  if (!truncated && !data.empty()) {
    reapi::Directory dir;
    std::string again;
    if (dir.ParseFromString(data) &&
        (dir.files_size() + dir.directories_size() + dir.symlinks_size()) > 0 &&
        dir.SerializeToString(&again) && again == data) {
      bool ok = true;
      json entries = json::array();
      for (const auto& f : dir.files()) {
        ok &= valid_digest(f.digest()) && !f.name().empty();
        entries.push_back({{"type", "file"},
                           {"name", f.name()},
                           {"digest", DigestJson(f.digest())},
                           {"executable", f.is_executable()}});
      }
      for (const auto& d : dir.directories()) {
        ok &= valid_digest(d.digest()) && !d.name().empty();
        entries.push_back({{"type", "directory"},
                           {"name", d.name()},
                           {"digest", DigestJson(d.digest())}});
      }
      for (const auto& l : dir.symlinks()) {
        ok &= !l.name().empty();
        entries.push_back(
            {{"type", "symlink"}, {"name", l.name()}, {"target", l.target()}});
      }
      if (ok) {
        out["kind"] = "directory";
        out["entries"] = std::move(entries);
        return out;
      }
    }
    reapi::ActionResult result;
    if (result.ParseFromString(data) && result.SerializeToString(&again) &&
        again == data &&
        (result.has_execution_metadata() || result.output_files_size() > 0 ||
         result.has_stdout_digest())) {
      out["kind"] = "action_result";
      out["action_result"] = ActionResultJson(result);
      return out;
    }
  }
  const bool text = data.find('\0') == std::string::npos &&
                    stagefarm::json::IsValidUtf8(data);
  if (text) {
    out["kind"] = "text";
    out["text"] = data;
  } else {
    out["kind"] = "binary";
    out["hex"] = absl::BytesToHexString(data.substr(0, 64 * 1024));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WebView>> WebView::Start(WebViewOptions options,
                                                        FarmSource* source) {
  auto view = std::unique_ptr<WebView>(new WebView(options, source));
  WebView* raw = view.get();
  HttpServerOptions server_options;
  server_options.listen = options.listen;
  server_options.threads = options.threads;
  server_options.cert_file = options.cert_file;
  server_options.key_file = options.key_file;
  server_options.max_connections_per_address =
      options.max_connections_per_address;
  server_options.request_timeout = options.request_timeout;
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      server_options, [raw](const HttpRequest& req, HttpResponse* resp) {
        raw->Handle(req, resp);
      });
  if (!server.ok()) return server.status();
  view->server_ = *std::move(server);
  view->broadcaster_ = std::thread([raw] { raw->Broadcast(); });
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  view->url_ = absl::StrCat(options.cert_file.empty() ? "http" : "https", "://",
                            host, ":", view->server_->port(), "/");
  return view;
}

WebView::~WebView() {
  Stop();
  if (broadcaster_.joinable()) broadcaster_.join();
  server_.reset();
}

void WebView::Stop() {
  stopping_ = true;
  absl::MutexLock lock(&streams_mu_);
  for (const auto& s : streams_) {
    if (s->stream != nullptr) s->stream->Close();
  }
}

bool WebView::Authenticate(const HttpRequest& req, HttpResponse* resp,
                           const Tenant** caller) {
  *caller = nullptr;
  if (!source_->TenantsOn()) return true;
  std::string auth = req.Header("authorization");
  if (absl::StartsWith(auth, "Bearer ")) {
    absl::StatusOr<const Tenant*> t = source_->ByToken(auth.substr(7));
    if (!t.ok()) {
      SendStatus(resp, t.status());
      return false;
    }
    *caller = *t;
    return true;
  }
  const std::string session = req.Cookie(kCookie);
  if (!session.empty()) {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session);
    if (it != sessions_.end() && it->second.expires > absl::Now()) {
      *caller = it->second.tenant;
      return true;
    }
  }
  SendError(resp, 401,
            "this farm needs to know who you are: sign in with your token");
  return false;
}

void WebView::Session(const HttpRequest& req, HttpResponse* resp) {
  if (req.method == "GET") {
    json out = {{"tenants", source_->TenantsOn()}, {"tenant", nullptr}};
    if (source_->TenantsOn()) {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(req.Cookie(kCookie));
      if (it != sessions_.end() && it->second.expires > absl::Now()) {
        out["tenant"] = it->second.tenant->name;
      }
    }
    return SendJson(resp, 200, out);
  }
  const std::string secure = req.tls ? "; Secure" : "";
  if (req.method == "DELETE") {
    {
      absl::MutexLock lock(&mu_);
      sessions_.erase(req.Cookie(kCookie));
    }
    return resp->Send(204, "text/plain", "",
                      {{"Set-Cookie", absl::StrCat(kCookie,
                                                   "=; Path=/; Max-Age=0; "
                                                   "HttpOnly; SameSite=Strict",
                                                   secure)}});
  }
  SendError(resp, 405, "GET, POST or DELETE");
}

void WebView::Builds(const HttpRequest& req, const Tenant* caller,
                     HttpResponse* resp) {
  int64_t offset = 0, limit = 50;
  if (!req.Query("offset").empty() &&
      (!absl::SimpleAtoi(req.Query("offset"), &offset) || offset < 0)) {
    return SendError(resp, 400, "offset: not a number >= 0");
  }
  if (!req.Query("limit").empty() &&
      (!absl::SimpleAtoi(req.Query("limit"), &limit) || limit < 1 ||
       limit > 1000)) {
    return SendError(resp, 400, "limit: not a number from 1 to 1000");
  }
  buildview::BuildFilter filter{req.Query("q"), req.Query("state")};
  size_t total = 0;
  json list = json::array();
  for (const v1::BuildSummary& b :
       source_->Summaries(caller, filter, static_cast<size_t>(offset),
                          static_cast<size_t>(limit), &total)) {
    list.push_back(SummaryJson(b));
  }
  SendJson(resp, 200,
           {{"total", total}, {"offset", offset}, {"builds", std::move(list)}});
}

std::optional<buildview::BuildView> WebView::EarlierBuild(
    const Tenant* caller, const buildview::BuildView& view,
    const std::string& dockerfile) {
  bool ran = false;
  for (const buildview::StageView& st : view.stages) {
    for (const buildview::StepView& s : st.steps) {
      if (s.state != "cached" && !s.key_parts.empty()) ran = true;
    }
  }
  if (!ran || view.no_cache) return std::nullopt;
  // Many projects name their Dockerfile "Dockerfile": of the builds by
  // that name before this one (newest first), the first with the same
  // Dockerfile text, else the first with a tag of the same repository,
  // else the latest.
  const buildview::BuildFilter filter{view.dockerfile_name, "", view.submitted};
  // "app:1" and "docker.io/library/app:2" name the same repository.
  auto repository = [](const std::string& tag) {
    absl::StatusOr<registry::Reference> ref = registry::ParseReference(tag);
    return ref.ok() ? absl::StrCat(ref->registry, "/", ref->repository) : tag;
  };
  std::set<std::string> repos;
  for (const std::string& t : view.tags) repos.insert(repository(t));
  std::optional<v1::BuildRecord> same_repo, latest;
  constexpr size_t kPage = 100;
  int records = 0;
  for (size_t offset = 0; offset < kEarlierBuildsSearched; offset += kPage) {
    size_t total = 0;
    std::vector<v1::BuildSummary> page =
        source_->Summaries(caller, filter, offset, kPage, &total);
    for (const v1::BuildSummary& b : page) {
      if (!buildview::IsEarlierBuildOf(b, view)) continue;
      if (++records > kEarlierRecordsRead) break;
      absl::StatusOr<v1::BuildRecord> r = source_->Record(caller, b.build_id());
      if (!r.ok()) continue;
      if (r->build().spec().dockerfile() == dockerfile) {
        return buildview::MakeView(r->build(), EventsOf(*r));
      }
      bool shares_repo = false;
      for (const std::string& t : r->build().spec().tags()) {
        shares_repo |= repos.count(repository(t)) > 0;
      }
      if (shares_repo && !same_repo)
        same_repo = *std::move(r);
      else if (!latest)
        latest = *std::move(r);
    }
    if (page.size() < kPage || records > kEarlierRecordsRead) break;
  }
  const std::optional<v1::BuildRecord>& pick = same_repo ? same_repo : latest;
  if (!pick) return std::nullopt;
  return buildview::MakeView(pick->build(), EventsOf(*pick));
}

void WebView::Build(const HttpRequest& req, const Tenant* caller,
                    const std::string& id, const std::string& what,
                    HttpResponse* resp) {
  if (what == "cancel") {
    if (req.method != "POST") return SendError(resp, 405, "POST");
    absl::Status s = source_->Cancel(caller, id);
    if (!s.ok()) return SendStatus(resp, s);
    return SendJson(resp, 200, {{"cancelled", id}});
  }
  absl::StatusOr<v1::BuildRecord> record = source_->Record(caller, id);
  if (!record.ok()) return SendStatus(resp, record.status());
  const std::vector<v1::Event> events = EventsOf(*record);
  buildview::BuildView view = buildview::MakeView(record->build(), events);
  if (what.empty()) {
    std::optional<buildview::BuildView> earlier =
        EarlierBuild(caller, view, record->build().spec().dockerfile());
    buildview::ExplainMisses(earlier ? &*earlier : nullptr, &view);
    json out = buildview::ToJson(view);
    out["compared_with"] = earlier ? earlier->id : "";
    std::string dockerfile = record->build().spec().dockerfile();
    if (dockerfile.size() > 256 * 1024) dockerfile.resize(256 * 1024);
    out["dockerfile_text"] = dockerfile;
    return SendJson(resp, 200, out);
  }
  if (what == "trace") {
    return resp->Send(
        200, "application/json; charset=utf-8",
        Dump(buildview::TraceEvents(view)),
        {{"Content-Disposition",
          absl::StrCat("attachment; filename=\"trace-", id, ".json\"")}});
  }
  if (what == "log") {
    int step = 0;
    if (!absl::SimpleAtoi(req.Query("step"), &step) || step < 1) {
      return SendError(resp, 400, "step: a step number >= 1");
    }
    const std::string stage = req.Query("stage");
    std::string text;
    bool found = false;
    for (const v1::Event& e : events) {
      if (e.step() != step || e.stage() != stage) continue;
      found = true;
      if (e.kind() == "log") text += e.text();
    }
    if (!found) return SendError(resp, 404, "no such step in this build");
    return resp->Send(200, "text/plain; charset=utf-8", text,
                      {{"Cache-Control", "no-store"}});
  }
  SendError(resp, 404, "no such page of a build");
}

void WebView::PruneStreamsLocked() {
  streams_.remove_if([](const std::shared_ptr<EventStream>& s) {
    return s->stream != nullptr && s->stream->closed();
  });
}

void WebView::Events(const HttpRequest& req, const Tenant* caller,
                     HttpResponse* resp) {
  // The stream says only that something changed: the same for everyone.
  auto slot = std::make_shared<EventStream>();
  slot->tenant = caller != nullptr ? caller->name : "";
  slot->address = req.remote_addr;
  {
    absl::MutexLock lock(&streams_mu_);
    PruneStreamsLocked();
    int tenant = 0, address = 0;
    for (const auto& s : streams_) {
      tenant += s->tenant == slot->tenant ? 1 : 0;
      address += s->address == slot->address ? 1 : 0;
    }
    if (caller != nullptr && tenant >= options_.max_streams_per_tenant) {
      return SendError(
          resp, 429,
          absl::StrCat("too many open event streams for tenant ", caller->name,
                       " (at most ", options_.max_streams_per_tenant,
                       "): close other pages of the web view"));
    }
    if (address >= options_.max_streams_per_address) {
      return SendError(
          resp, 429,
          absl::StrCat("too many open event streams from ", slot->address,
                       " (at most ", options_.max_streams_per_address,
                       "): close other pages of the web view"));
    }
    streams_.push_back(slot);
  }
  resp->Hold(200, "text/event-stream",
             [this, slot](std::shared_ptr<HttpStream> stream) {
               const std::string hello = absl::StrCat(
                   "retry: 2000\nevent: change\ndata: ", source_->ChangeCount(),
                   "\n\n");
               absl::MutexLock lock(&streams_mu_);
               if (stream == nullptr || stopping_ || !stream->Write(hello)) {
                 if (stream != nullptr) stream->Close();
                 streams_.remove(slot);
                 return;
               }
               slot->stream = std::move(stream);
             });
}

void WebView::Broadcast() {
  uint64_t seen = source_->ChangeCount();
  absl::Time last_write = absl::Now();
  while (!stopping_) {
    source_->WaitForChange(seen, absl::Now() + absl::Seconds(1));
    if (stopping_) break;
    const uint64_t now = source_->ChangeCount();
    std::string message;
    if (now != seen) {
      seen = now;
      message = absl::StrCat("event: change\ndata: ", seen, "\n\n");
    } else if (absl::Now() - last_write > absl::Seconds(15)) {
      message = ": keep-alive\n\n";
    } else {
      continue;
    }
    {
      absl::MutexLock lock(&streams_mu_);
      PruneStreamsLocked();
      for (const auto& s : streams_) {
        if (s->stream != nullptr) s->stream->Write(message);
      }
    }
    last_write = absl::Now();
    // Coalesce: a busy farm changes many times a second.
    if (message[0] == 'e') {
      absl::SleepFor(absl::Milliseconds(250));
    }
  }
  absl::MutexLock lock(&streams_mu_);
  for (const auto& s : streams_) {
    if (s->stream != nullptr) s->stream->Close();
  }
  streams_.clear();
}

void WebView::Cache(const Tenant* caller, HttpResponse* resp) {
  struct Counts {
    int64_t run = 0, cached = 0;
  };
  std::map<std::string, Counts> by_tenant;
  std::map<int64_t, Counts> by_hour;
  std::map<std::string, int64_t> misses;  // instruction -> times it ran
  // The most recent builds: the cost stays the same however many are kept.
  size_t total = 0;
  int read = 0;
  for (const v1::BuildSummary& b :
       source_->Summaries(caller, {}, 0, kCacheBuilds, &total)) {
    if (b.state() == "running") continue;
    Counts& t = by_tenant[b.tenant().empty() ? "-" : b.tenant()];
    t.run += b.steps_run();
    t.cached += b.steps_cached();
    Counts& h = by_hour[static_cast<int64_t>(b.submitted()) / 3600 * 3600];
    h.run += b.steps_run();
    h.cached += b.steps_cached();
    if (++read > kCacheRecords) continue;  // hit rates from the rest
    absl::StatusOr<v1::BuildRecord> record =
        source_->Record(caller, b.build_id());
    if (!record.ok()) continue;
    const std::vector<v1::Event> events = EventsOf(*record);
    for (const auto& st : buildview::MakeView(record->build(), events).stages) {
      for (const auto& step : st.steps) {
        if (step.state == "done" || step.state == "failed") {
          ++misses[step.instruction];
        }
      }
    }
  }
  auto rate = [](const Counts& c) {
    int64_t all = c.run + c.cached;
    return all == 0 ? 0.0 : static_cast<double>(c.cached) / all;
  };
  json tenants = json::array();
  for (const auto& [name, c] : by_tenant) {
    tenants.push_back({{"tenant", name},
                       {"steps_run", c.run},
                       {"steps_cached", c.cached},
                       {"hit_rate", rate(c)}});
  }
  json hours = json::array();
  for (const auto& [hour, c] : by_hour) {
    hours.push_back({{"hour", hour},
                     {"steps_run", c.run},
                     {"steps_cached", c.cached},
                     {"hit_rate", rate(c)}});
  }
  std::vector<std::pair<int64_t, std::string>> top;
  for (const auto& [instruction, n] : misses) top.push_back({n, instruction});
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (top.size() > 20) top.resize(20);
  json most = json::array();
  for (const auto& [n, instruction] : top) {
    most.push_back({{"instruction", instruction}, {"runs", n}});
  }
  SendJson(resp, 200,
           {{"store", source_->Store(caller)},
            {"tenants", std::move(tenants)},
            {"hours", std::move(hours)},
            {"most_run", std::move(most)}});
}

void WebView::Blob(const HttpRequest& req, const Tenant* caller,
                   const std::string& hash, const std::string& size,
                   HttpResponse* resp) {
  absl::StatusOr<Digest> digest = PathDigest(hash, size);
  if (!digest.ok()) return SendStatus(resp, digest.status());
  const int64_t n = digest->size();
  const bool raw = req.Query("raw") == "1";
  const int64_t max = raw ? kBlobDownloadBytes : kBlobViewBytes;
  if (raw && n > max) {
    return SendError(resp, 413, "blob over 256 MiB: fetch it with the CLI");
  }
  absl::StatusOr<std::string> data =
      source_->ReadBlob(caller, req.Query("instance"), *digest, max);
  if (!data.ok()) return SendStatus(resp, data.status());
  if (raw) {
    return resp->Send(
        200, "application/octet-stream", *data,
        {{"Content-Disposition",
          absl::StrCat("attachment; filename=\"", hash.substr(0, 16), "\"")}});
  }
  json out = DescribeBlob(*data, n > static_cast<int64_t>(data->size()));
  out["hash"] = hash;
  out["size"] = n;
  out["instance"] = req.Query("instance");
  SendJson(resp, 200, out);
}

void WebView::Action(const HttpRequest& req, const Tenant* caller,
                     const std::string& hash, const std::string& size,
                     HttpResponse* resp) {
  absl::StatusOr<Digest> digest = PathDigest(hash, size);
  if (!digest.ok()) return SendStatus(resp, digest.status());
  const int64_t n = digest->size();
  auto result =
      source_->ReadActionResult(caller, req.Query("instance"), *digest);
  if (!result.ok()) return SendStatus(resp, result.status());
  SendJson(resp, 200,
           {{"kind", "action_result"},
            {"action", hash},
            {"size", n},
            {"instance", req.Query("instance")},
            {"action_result", ActionResultJson(*result)}});
}

void WebView::Handle(const HttpRequest& req, HttpResponse* resp) {
  const std::string& path = req.path;
  if (!absl::StartsWith(path, "/api/")) {
    if (req.method != "GET" && req.method != "HEAD") {
      return SendError(resp, 405, "GET");
    }
    const Asset* asset = FindAsset(path == "/" ? "/index.html" : path);
    if (asset == nullptr) asset = FindAsset("/index.html");
    return resp->Send(200, asset->content_type, asset->data,
                      {{"Cache-Control", "no-cache"}});
  }
  if (!absl::StartsWith(path, "/api/v1/")) {
    return SendError(resp, 404, "the API is under /api/v1/");
  }
  const std::vector<std::string> parts =
      absl::StrSplit(path.substr(8), '/', absl::SkipEmpty());
  // Another site's page can make a browser POST (a form), but not with a
  // header of our own: signing in and cancelling need it.
  if ((req.method == "POST" || req.method == "DELETE") &&
      req.Header("x-stagefarm").empty()) {
    return SendError(resp, 403, "POST and DELETE need the X-Stagefarm header");
  }
  if (parts.size() == 1 && parts[0] == "session") {
    if (req.method == "POST") {
      // The answer carries the session cookie.
      if (!source_->TenantsOn()) {
        return SendError(resp, 409,
                         "this farm has no tenants: nothing to sign in");
      }
      absl::StatusOr<json> body = stagefarm::json::Parse(req.body, "body");
      if (!body.ok()) return SendStatus(resp, body.status());
      absl::StatusOr<std::optional<std::string>> token =
          stagefarm::json::OptionalString(*body, "token", "body");
      if (!token.ok()) return SendStatus(resp, token.status());
      if (!token->has_value() || (*token)->empty()) {
        return SendError(resp, 400, "token: missing");
      }
      absl::StatusOr<const Tenant*> t = source_->ByToken(**token);
      if (!t.ok()) return SendStatus(resp, t.status());
      const std::string id = RandomToken();
      {
        absl::MutexLock lock(&mu_);
        for (auto it = sessions_.begin(); it != sessions_.end();) {
          it = it->second.expires <= absl::Now() ? sessions_.erase(it) : ++it;
        }
        sessions_[id] = {*t, absl::Now() + options_.session_lifetime};
      }
      const int64_t seconds = absl::ToInt64Seconds(options_.session_lifetime);
      return resp->Send(
          200, "application/json; charset=utf-8",
          Dump({{"tenant", (*t)->name}}),
          {{"Set-Cookie", absl::StrCat(kCookie, "=", id, "; Path=/; Max-Age=",
                                       seconds, "; HttpOnly; SameSite=Strict",
                                       req.tls ? "; Secure" : "")},
           {"Cache-Control", "no-store"}});
    }
    return Session(req, resp);
  }
  const Tenant* caller = nullptr;
  if (!Authenticate(req, resp, &caller)) return;
  if (parts.size() == 1 && parts[0] == "builds") {
    return Builds(req, caller, resp);
  }
  if (parts.size() >= 2 && parts.size() <= 3 && parts[0] == "builds") {
    return Build(req, caller, parts[1], parts.size() == 3 ? parts[2] : "",
                 resp);
  }
  if (parts.size() == 1 && parts[0] == "events") {
    return Events(req, caller, resp);
  }
  if (parts.size() == 1 && parts[0] == "workers") {
    return SendJson(resp, 200, {{"workers", source_->Workers(caller)}});
  }
  if (parts.size() == 1 && parts[0] == "cache") return Cache(caller, resp);
  if (parts.size() == 3 && parts[0] == "blobs") {
    return Blob(req, caller, parts[1], parts[2], resp);
  }
  if (parts.size() == 3 && parts[0] == "actions") {
    return Action(req, caller, parts[1], parts[2], resp);
  }
  SendError(resp, 404, "no such API path");
}

}  // namespace stagefarm::webui
