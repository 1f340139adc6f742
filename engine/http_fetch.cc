#include "engine/http_fetch.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "engine/curl_api.h"

namespace stagefarm::engine {
namespace {

struct Sink {
  FILE* file = nullptr;
  Sha256 hash;
  int64_t size = 0;
  int64_t max = 0;
  bool too_big = false;
};

size_t OnData(char* data, size_t size, size_t n, void* arg) {
  Sink* sink = static_cast<Sink*>(arg);
  size_t bytes = size * n;
  if (sink->size + static_cast<int64_t>(bytes) > sink->max) {
    sink->too_big = true;
    return 0;  // aborts the transfer
  }
  sink->hash.Update(absl::string_view(data, bytes));
  sink->size += static_cast<int64_t>(bytes);
  return fwrite(data, 1, bytes, sink->file);
}

}  // namespace

std::string FilenameOfUrl(const std::string& url) {
  std::string path = url;
  size_t scheme = path.find("://");
  if (scheme != std::string::npos) path = path.substr(scheme + 3);
  size_t cut = path.find_first_of("?#");
  if (cut != std::string::npos) path = path.substr(0, cut);
  size_t slash = path.find('/');
  if (slash == std::string::npos) return "__unnamed__";
  path = path.substr(slash);
  size_t last = path.rfind('/');
  std::string name = path.substr(last + 1);
  if (name.empty() || name == "." || name == "..") return "__unnamed__";
  return name;
}

absl::StatusOr<Fetched> Fetch(const std::string& url, const std::string& path,
                              const FetchOptions& options) {
  auto api = Curl();
  if (!api.ok()) return api.status();
  const CurlApi& c = **api;
  Sink sink;
  sink.max = options.max_bytes;
  sink.file = fopen(path.c_str(), "wbe");
  if (sink.file == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create ", path));
  }
  CURL* curl = c.easy_init();
  if (curl == nullptr) {
    fclose(sink.file);
    unlink(path.c_str());
    return absl::InternalError("curl_easy_init failed");
  }
  char error[CURL_ERROR_SIZE] = {0};
  c.easy_setopt(curl, CURLOPT_URL, url.c_str());
  c.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  c.easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  c.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  c.easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  c.easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  c.easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  c.easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  c.easy_setopt(curl, CURLOPT_FILETIME, 1L);
  c.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  c.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_seconds);
  c.easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  c.easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options.low_speed_seconds);
  c.easy_setopt(curl, CURLOPT_USERAGENT, "stagefarm");
  CURLcode rc = c.easy_perform(curl);
  long status = 0;
  c.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t filetime = -1;
  c.easy_getinfo(curl, CURLINFO_FILETIME_T, &filetime);
  c.easy_cleanup(curl);
  bool write_ok = fclose(sink.file) == 0;
  absl::Status err;
  if (sink.too_big) {
    err = absl::ResourceExhaustedError(absl::StrCat(
        "download of ", url, " exceeds ", options.max_bytes, " bytes"));
  } else if (rc != CURLE_OK) {
    err = absl::UnavailableError(
        absl::StrCat("download of ", url,
                     " failed: ", error[0] ? error : c.easy_strerror(rc)));
  } else if (status < 200 || status >= 300) {
    err = absl::NotFoundError(
        absl::StrCat("download of ", url, " failed: HTTP status ", status));
  } else if (!write_ok) {
    err = absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (!err.ok()) {
    unlink(path.c_str());
    return err;
  }
  Fetched f;
  f.digest = absl::StrCat("sha256:", sink.hash.FinalHex());
  f.size = sink.size;
  f.mtime = filetime;
  f.filename = FilenameOfUrl(url);
  return f;
}

}  // namespace stagefarm::engine
