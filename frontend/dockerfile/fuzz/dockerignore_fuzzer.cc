// libFuzzer target: a .dockerignore file (before the first NUL byte) and a
// path (after it) through reading, compiling and matching.
#include <cstddef>
#include <cstdint>
#include <string>

#include "frontend/dockerfile/dockerignore.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace stagefarm::dockerfile;
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string ignore = input.substr(0, nul);
  std::string path =
      nul == std::string::npos ? "a/b/c.txt" : input.substr(nul + 1);
  auto matcher = DockerignoreMatcher::Create(ReadDockerignore(ignore));
  if (!matcher.ok()) return 0;
  (void)matcher->Excluded(path);
  (void)CleanPath(path);
  return 0;
}
