// A layer's compression and its names on the command line and on the
// farm's wire ("gzip", "zstd", "uncompressed"): the one table of them.
#ifndef STAGEFARM_ARCHIVES_COMPRESSION_H_
#define STAGEFARM_ARCHIVES_COMPRESSION_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace stagefarm::archives {

enum class Compression { kGzip, kZstd, kNone };

inline const char* CompressionName(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "uncompressed";
}

// nullopt for any other name.
inline std::optional<Compression> ParseCompression(absl::string_view name) {
  for (Compression c :
       {Compression::kGzip, Compression::kZstd, Compression::kNone}) {
    if (name == CompressionName(c)) return c;
  }
  return std::nullopt;
}

}  // namespace stagefarm::archives

#endif  // STAGEFARM_ARCHIVES_COMPRESSION_H_
