// Where tests find ../shared (the corpus and the behaviour spec): the
// STAGEFARM_SHARED environment variable, else ../shared beside the source
// tree (found through the test's runfiles). Empty if neither exists.
#ifndef STAGEFARM_TESTS_SHARED_DIR_H_
#define STAGEFARM_TESTS_SHARED_DIR_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace stagefarm::testing {

inline std::string SharedDir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("STAGEFARM_SHARED"); env && *env) {
    return fs::is_directory(env) ? std::string(env) : std::string();
  }
  // A source file in the runfiles is a symlink into the source tree.
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir && workspace) {
    fs::path anchor = fs::path(srcdir) / workspace / "WORKSPACE";
    std::error_code ec;
    fs::path real = fs::canonical(anchor, ec);
    if (!ec) {
      fs::path shared = real.parent_path().parent_path() / "shared";
      if (fs::is_directory(shared)) return shared.string();
    }
  }
  if (fs::is_directory("../shared")) return fs::canonical("../shared").string();
  return "";
}

}  // namespace stagefarm::testing

#endif  // STAGEFARM_TESTS_SHARED_DIR_H_
