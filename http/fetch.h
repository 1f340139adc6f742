// Downloads for ADD <url>: one file over HTTP(S) through the HTTP client
// (http/client.h), streamed to disk while hashed, with a size cap and
// timeouts. Thread-safe.
#ifndef STAGEFARM_HTTP_FETCH_H_
#define STAGEFARM_HTTP_FETCH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace stagefarm::http {

struct Fetched {
  std::string digest;  // "sha256:<hex>" of the body
  int64_t size = 0;
  int64_t mtime = -1;    // from Last-Modified, -1 if none
  std::string filename;  // the URL path's last segment, or "__unnamed__"
};

struct FetchOptions {
  int64_t max_bytes = int64_t{16} << 30;
  long connect_timeout_seconds = 30;
  long low_speed_seconds = 60;  // abort when under 1 B/s for this long
};

// Writes the body of `url` (http or https; redirects followed) to `path`.
// A non-2xx status, a transfer error or a body over the cap is an error
// naming the URL; `path` is removed then.
absl::StatusOr<Fetched> Fetch(const std::string& url, const std::string& path,
                              const FetchOptions& options = {});

// The file name Docker gives a download: the URL path's last segment
// (without query), "__unnamed__" when there is none.
std::string FilenameOfUrl(const std::string& url);

}  // namespace stagefarm::http

#endif  // STAGEFARM_HTTP_FETCH_H_
