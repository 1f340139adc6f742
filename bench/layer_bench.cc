// Layer creation speed: WriteLayer over a directory with each compression,
// several rounds; prints uncompressed MB/s and the compressed size.
// Usage: layer_bench DIR [ROUNDS]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "archives/layer_tar.h"

namespace {

using stagefarm::archives::Compression;

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: layer_bench DIR [ROUNDS]\n");
    return 2;
  }
  std::string dir = argv[1];
  int rounds = argc > 2 ? atoi(argv[2]) : 3;
  std::string out = "/tmp/stagefarm-layer-bench." + std::to_string(getpid());
  // Uncompressed size first, for MB/s.
  stagefarm::archives::LayerOptions plain;
  plain.compression = Compression::kNone;
  auto base = stagefarm::archives::WriteLayer(dir, plain, out);
  if (!base.ok()) {
    fprintf(stderr, "%s\n", std::string(base.status().message()).c_str());
    return 1;
  }
  double tar_mb = static_cast<double>(base->digest.size()) / 1e6;
  printf("tar: %.1f MB, %lld entries\n", tar_mb,
         static_cast<long long>(base->entries));
  struct Case {
    const char* name;
    Compression c;
    int level;
  } cases[] = {{"none", Compression::kNone, 0},
               {"gzip 6 (default)", Compression::kGzip, 0},
               {"gzip 1", Compression::kGzip, 1},
               {"zstd 3 (default)", Compression::kZstd, 0}};
  for (const Case& c : cases) {
    double best = 1e9;
    int64_t size = 0;
    for (int i = 0; i < rounds; ++i) {
      stagefarm::archives::LayerOptions o;
      o.compression = c.c;
      o.level = c.level;
      double t0 = Now();
      auto r = stagefarm::archives::WriteLayer(dir, o, out);
      double t = Now() - t0;
      if (!r.ok()) {
        fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
        return 1;
      }
      size = r->digest.size();
      if (t < best) best = t;
    }
    printf("%-22s %8.1f MB/s  %8.1f MB (%.1f%%)  best of %d: %.2f s\n", c.name,
           tar_mb / best, static_cast<double>(size) / 1e6,
           100.0 * static_cast<double>(size) / 1e6 / tar_mb, rounds, best);
  }
  unlink(out.c_str());
  return 0;
}
