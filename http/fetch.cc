#include "http/fetch.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "http/client.h"

namespace stagefarm::http {

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
  FILE* file = fopen(path.c_str(), "wbe");
  if (file == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create ", path));
  }
  Sha256 hash;
  int64_t size = 0;
  bool write_failed = false;
  HttpRequest request;
  request.url = url;
  request.connect_timeout_seconds = options.connect_timeout_seconds;
  request.low_speed_seconds = options.low_speed_seconds;
  request.want_filetime = true;
  request.sink = [&](absl::string_view chunk) -> absl::Status {
    if (size + static_cast<int64_t>(chunk.size()) > options.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "download of ", url, " exceeds ", options.max_bytes, " bytes"));
    }
    hash.Update(chunk);
    size += static_cast<int64_t>(chunk.size());
    if (fwrite(chunk.data(), 1, chunk.size(), file) != chunk.size()) {
      write_failed = true;
      return absl::InternalError(absl::StrCat("cannot write ", path));
    }
    return absl::OkStatus();
  };
  absl::StatusOr<HttpResponse> response = Perform(request);
  bool close_ok = fclose(file) == 0;
  absl::Status err;
  if (!response.ok()) {
    err = response.status();
    if (absl::IsUnavailable(err)) {
      // The client names the method and URL; say what was being done.
      err = absl::UnavailableError(
          absl::StrCat("download of ", url, " failed: ", err.message()));
    }
  } else if (response->status < 200 || response->status >= 300) {
    err = absl::NotFoundError(absl::StrCat(
        "download of ", url, " failed: HTTP status ", response->status));
  } else if (!close_ok && !write_failed) {
    err = absl::InternalError(absl::StrCat("cannot write ", path));
  }
  if (!err.ok()) {
    unlink(path.c_str());
    return err;
  }
  Fetched f;
  f.digest = absl::StrCat("sha256:", hash.FinalHex());
  f.size = size;
  f.mtime = response->filetime;
  f.filename = FilenameOfUrl(url);
  return f;
}

}  // namespace stagefarm::http
